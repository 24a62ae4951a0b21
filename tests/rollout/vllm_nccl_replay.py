"""vLLM 0.32's own NCCL weight transfer, trainer side and replica side, judging ovr's weight stream.

Run with the rollout venv's interpreter (vLLM is not in the project venv), the repository on
``PYTHONPATH``: ``vllm_nccl_replay.py --config CONFIG.json --names NAMES.json --out RESULT.json --work DIR``.

The trainer side is ovr's real path: transformers' ``Qwen2_5_VLForConditionalGeneration`` built from
``--config`` on the meta device (names, dtypes and shapes; no weights), its stream from
``TorchEngine.weights(model, vllm_grouping)`` (what ``ovr.rl.step.push_weights`` builds for
``weight_sync: nccl``) and ovr's engine factory ``ovr.rollout.nccl_sync.vllm_nccl_engine``, i.e.
vLLM's ``NCCLTrainerWeightTransferEngine.trainer_init`` + ``send_weights`` with its metadata and
order checks and its packed producer. The replica side is vLLM's worker engine
(``NCCLWeightTransferEngine.update_weights``: packed consumer, chunks cut from the metadata) loading
into vLLM's own ``Qwen2_5_VLForConditionalGeneration`` built on the meta device, through its
``load_weights`` (``hf_to_vllm_mapper`` + the stacked qkv / gate_up loaders).

Replaced, because they need CUDA: the NCCL communicators (:class:`Wire`), the CUDA streams and the
accelerator calls (:func:`cpu_streams`), and the HTTP hop from the trainer to the replica's worker
(:class:`InProcessReplica`). Not run: the replica's ``start_weight_update`` /
``finish_weight_update`` (layerwise reload: it materialises each layer and copies processed
weights into the kernel tensors, which meta tensors cannot do).

``--names`` is the project venv's ``named_parameters()`` list of the same model (its transformers is
newer than the rollout venv's); the result says whether the two agree. The result JSON holds one
entry per scenario: ``ovr`` (the stream as ovr sends it) and ``misnamed`` (the same stream with
``lm_head.weight`` sent as ``model.lm_head.weight``: a control that the replica side rejects a name).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import traceback
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import torch


class NoStream:
    """Stands in for a ``torch.cuda.Stream``: on CPU nothing is queued, so there is nothing to wait for."""

    def synchronize(self) -> None:
        pass


def cpu_streams() -> None:
    """Make vLLM's packed producer/consumer and worker ``update_weights`` run without CUDA: streams
    are :class:`NoStream`, ``torch.cuda.stream(s)`` is a no-op context, the accelerator is device 0
    and its synchronize a no-op."""
    import vllm.distributed.weight_transfer.packed_tensor as packed

    packed._get_streams = lambda device_index, num_buffers: tuple(NoStream() for _ in range(num_buffers))
    torch.cuda.stream = lambda stream=None: contextlib.nullcontext()
    torch.cuda.current_stream = lambda device=None: NoStream()
    torch.accelerator.current_device_index = lambda: 0
    torch.accelerator.synchronize = lambda device=None: None


class Wire:
    """The NCCL group of one trainer (rank 0) and one replica worker, as two communicators.

    ``sender.broadcast`` records and queues what rank 0 sends; ``receiver.broadcast`` takes the next
    one and raises where NCCL would hang or corrupt (the worker's buffer has another size or dtype).
    Nothing is copied: the tensors are on the meta device.
    """

    def __init__(self, timeout_s: float = 60.0):
        self.queue: queue.Queue = queue.Queue()
        self.sent: list[tuple[str, list[int]]] = []
        self.received: list[tuple[str, list[int]]] = []
        self.timeout_s = timeout_s
        wire = self

        class Sender:
            def broadcast(self, tensor, src, stream=None):
                assert src == 0
                wire.sent.append((str(tensor.dtype), list(tensor.shape)))
                wire.queue.put((tensor.dtype, tuple(tensor.shape)))

            def destroy(self):
                pass

        class Receiver:
            def broadcast(self, tensor, src, stream=None):
                dtype, shape = wire.queue.get(timeout=wire.timeout_s)
                wire.received.append((str(tensor.dtype), list(tensor.shape)))
                if (dtype, shape) != (tensor.dtype, tuple(tensor.shape)):
                    raise RuntimeError(
                        f"worker posted {tensor.dtype} {tuple(tensor.shape)}, rank 0 sent {dtype} {shape}"
                    )

            def destroy(self):
                pass

        self.sender, self.receiver = Sender(), Receiver()


def count_writes(model) -> Counter:
    """Elements each parameter's own ``weight_loader`` is handed, by parameter name (a spy around
    vLLM's loaders: a name its mapping drops, e.g. an unexpected ``.bias``, never reaches one)."""
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader

    written: Counter = Counter()
    for name, param in model.named_parameters():
        inner = getattr(param, "weight_loader", default_weight_loader)

        def counting(param, loaded_weight, *args, _inner=inner, _name=name, **kwargs):
            written[_name] += loaded_weight.numel()
            return _inner(param, loaded_weight, *args, **kwargs)

        param.weight_loader = counting
    return written


class InProcessReplica:
    """``VLLMWeightSyncClient`` whose four calls go straight to vLLM's worker engine, as a replica's
    ``/init_weight_transfer_engine``, ``/start_weight_update``, ``/update_weights`` and
    ``/finish_weight_update`` routes reach ``Worker.*`` (minus HTTP and the start/finish layerwise
    reload, see the module doc). ``loaded`` collects what the model's ``load_weights`` reports."""

    def __init__(self, worker_engine, vllm_config):
        self.engine, self.vllm_config = worker_engine, vllm_config
        self.calls: list[str] = []
        self.loaded: set[str] = set()
        model = worker_engine.model
        load = type(model).load_weights.__get__(model)

        def load_weights(weights):  # a spy: vLLM's own loader does the work
            out = load(weights)
            self.loaded |= out
            return out

        model.load_weights = load_weights

    def _in_config(self):
        from vllm.config import set_current_vllm_config

        return set_current_vllm_config(self.vllm_config)

    def init_weight_transfer_engine(self, init_info):
        self.calls.append("init")
        with self._in_config():
            self.engine.init_transfer_engine(self.engine.parse_init_info(init_info))

    def start_weight_update(self):
        self.calls.append("start")

    def update_weights(self, update_info):
        self.calls.append("update")
        self.update_names = list(update_info["names"])
        with self._in_config():
            self.engine.update_weights(update_info)

    def finish_weight_update(self, weight_version=None):
        self.calls.append("finish")


def hf_model(config: dict):
    """transformers' Qwen2.5-VL from ``config`` on the meta device, in bf16 (the trainer's dtype)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config))
    finally:
        torch.set_default_dtype(previous)


def vllm_model(config: dict, work: Path):
    """vLLM's Qwen2.5-VL (TP 1) for ``config`` on the meta device, and its ``VllmConfig``."""
    from vllm.config import DeviceConfig, LoadConfig, ModelConfig, VllmConfig, set_current_vllm_config
    from vllm.distributed import ensure_model_parallel_initialized, init_distributed_environment
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration
    from vllm.utils.torch_utils import set_default_torch_dtype

    (work / "model").mkdir()
    (work / "model" / "config.json").write_text(json.dumps(config))
    model_config = ModelConfig(model=str(work / "model"), skip_tokenizer_init=True, dtype="bfloat16")
    vllm_config = VllmConfig(
        model_config=model_config, device_config=DeviceConfig("cpu"), load_config=LoadConfig(load_format="dummy")
    )
    with set_current_vllm_config(vllm_config):
        init_distributed_environment(1, 0, f"file://{work / 'pg'}", 0, backend="gloo")
        ensure_model_parallel_initialized(1, 1)
        with set_default_torch_dtype(torch.bfloat16), torch.device("meta"):
            return Qwen2_5_VLForConditionalGeneration(vllm_config=vllm_config), vllm_config


def ovr_weights(hf):
    """The trainer's weight stream for an NCCL push, built as ``ovr.rl.step.push_weights`` builds it."""
    from ovr.rl.engine import TorchEngine
    from ovr.rl.gathered import vllm_grouping

    return TorchEngine(hf, 1e-6, (0.9, 0.95), 0.0, 0, 1.0).weights(hf, vllm_grouping)


def misnamed(weights):
    """``weights`` whose ``weight_source()`` renames ``lm_head.weight`` to ``model.lm_head.weight`` in
    metadata and iteration alike (a control: only the replica's loader can object)."""
    from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource

    def rename(name):
        return "model.lm_head.weight" if name == "lm_head.weight" else name

    class Renamed(WeightSource):
        def __init__(self, source):
            self.source = source

        def metadata(self):
            return [ParamMeta(rename(m.name), m.dtype, m.shape) for m in self.source.metadata()]

        def __iter__(self):
            return ((rename(n), t) for n, t in self.source)

    return SimpleNamespace(weight_source=lambda: Renamed(weights.weight_source()))


def push(wrap, hf, vllm, vllm_config, written: Counter) -> dict:
    """One ``send_weights`` of ``wrap(ovr's weights)`` through ovr's engine factory into a fresh
    replica engine; what happened."""
    from vllm.config.weight_transfer import WeightTransferConfig
    from vllm.distributed.weight_transfer import nccl_engine
    from vllm.distributed.weight_transfer.base import WeightSource

    from ovr.rollout.nccl_sync import vllm_nccl_engine

    wire = Wire()
    written.clear()
    nccl_engine.open_trainer_endpoint = lambda init_info: wire.sender
    nccl_engine.worker_init_process_group = lambda init_info, parallel_config: wire.receiver
    worker = nccl_engine.NCCLWeightTransferEngine(
        WeightTransferConfig(backend="nccl"), vllm_config, torch.device("meta"), vllm
    )
    replica = InProcessReplica(worker, vllm_config)
    out: dict = {"ok": True, "error": None}
    try:
        init_info = {"master_address": "127.0.0.1", "master_port": 29555, "world_size": 2}
        engine = vllm_nccl_engine(init_info, replica, wrap(ovr_weights(hf)))
        source = engine.source
        out["declared"] = [[m.name, str(m.dtype), list(m.shape)] for m in source.metadata()]
        out["groups_are_vllms"] = WeightSource.groups(source) == source.groups()
        engine.send_weights()
    except Exception as e:
        traceback.print_exc()
        out.update(ok=False, error=f"{type(e).__name__}: {e}"[:600])
    vllm_params = dict(vllm.named_parameters())
    out.update(
        calls=replica.calls,
        update_names=getattr(replica, "update_names", None),
        sent=wire.sent,
        received=wire.received,
        loaded=sorted(replica.loaded),
        not_loaded=sorted(set(vllm_params) - replica.loaded),
        short_written={n: [written[n], p.numel()] for n, p in vllm_params.items() if written[n] != p.numel()},
        written_numel=sum(written.values()),
        trainer_numel=sum(p.numel() for p in hf.parameters()),
    )
    return out


def vllm_default_iter_groups(hf) -> str | None:
    """vLLM's own ``WeightSource.iter_groups`` (its group-order check) over ovr's source; its error."""
    from vllm.distributed.weight_transfer.base import WeightSource

    source = ovr_weights(hf).weight_source()
    try:
        for _ in WeightSource.iter_groups(source):
            pass
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="Qwen2.5-VL config.json (a dict) to build both models from")
    ap.add_argument("--names", required=True, help="[[name, dtype, shape], ...] of the project venv's model")
    ap.add_argument("--out", required=True, help="where to write the result JSON")
    ap.add_argument("--work", required=True, help="an empty folder for vLLM's model config and process group")
    args = ap.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    cpu_streams()
    hf = hf_model(config)
    result: dict = {
        "trainer_names": [[n, str(p.dtype), list(p.shape)] for n, p in hf.named_parameters()],
        "project_names": json.loads(Path(args.names).read_text()),
    }
    vllm, vllm_config = vllm_model(config, Path(args.work))
    written = count_writes(vllm)
    result["vllm_default_iter_groups_error"] = vllm_default_iter_groups(hf)
    result["ovr"] = push(lambda weights: weights, hf, vllm, vllm_config, written)
    result["misnamed"] = push(misnamed, hf, vllm, vllm_config, written)
    Path(args.out).write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # a failed push leaves vLLM's update_weights thread waiting on the wire: do not join it


if __name__ == "__main__":
    main()
