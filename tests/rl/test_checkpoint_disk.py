"""Checkpoints a node can hold: nothing of a committed checkpoint stays on local disk (each part
leaves as soon as it is in the store), the store keeps what the final average and resume read, and a
resume builds the critic in the run's dtype without a float32 copy and restores it exactly."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ovr.config import RLConfig, load_config
from ovr.context import RunContext
from ovr.rl.state import CHECKPOINT_KIND
from ovr.store import Store


def _cfg(tmp_path, model_dir, *sets):
    return load_config(
        None,
        [
            f"model.path={model_dir}",
            f"store.uri={tmp_path}/store",
            "tracking.enabled=false",
            "rl.algorithm=ppo",
            "rl.warmup_steps=0",
            *sets,
        ],
        use_env=False,
    )


def _files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def _bytes(folder) -> int:
    return sum(p.stat().st_size for p in _files(folder))


def _saved(store, key, step, sub):
    """The tensors of ``sub`` (actor/critic) in checkpoint ``step``, read from the store."""
    from ovr.rl.averaging import load_weights

    folder = store.download_checkpoint(key, step, store_tmp(store) / f"{sub}-{step}", CHECKPOINT_KIND)
    return load_weights(folder / sub)


def _norm(weights: dict) -> dict:
    """Tensors keyed without the wrapper prefix (the saved layout differs from the module's)."""
    return {k.replace("model.language_model.", "model.").removeprefix("model."): v for k, v in weights.items()}


def store_tmp(store):
    return store.backend.root.parent / "dl"


class Float32Allocations(TorchDispatchMode):
    """Counts the float32 elements of every new tensor storage created while it is active."""

    def __init__(self):
        super().__init__()
        self.seen: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type != "meta":
                s = t.untyped_storage()
                self.seen[s.data_ptr()] = max(self.seen.get(s.data_ptr(), 0), s.nbytes() // 4)
        return out

    @property
    def elements(self) -> int:
        return sum(self.seen.values())


def test_keep_checkpoints_defaults_to_what_the_average_reads():
    assert RLConfig().keep_checkpoints == 1
    rl = RLConfig(average_last=4)
    assert rl.keep_checkpoints == 4 and "keep_checkpoints" not in rl.model_fields_set
    rl.average_last = 6  # an unset retention follows the average
    assert rl.keep_checkpoints == 6
    assert RLConfig(average_last=4, keep_checkpoints=10).keep_checkpoints == 10
    with pytest.raises(ValueError, match=r"rl.keep_checkpoints=2 keeps fewer .* rl.average_last=4"):
        RLConfig(average_last=4, keep_checkpoints=2)


def test_checkpoints_leave_no_local_copy_and_the_store_keeps_the_newest(tmp_path, tiny_model_dir, visual, monkeypatch):
    from ovr.rl.checkpoint import save_checkpoint
    from ovr.rl.setup import setup_rl

    cfg = _cfg(tmp_path, tiny_model_dir, "rl.average_last=2")
    ctx = RunContext.for_config(cfg, "d1")
    run = setup_rl(cfg, ctx, samples=visual, resume="never")
    store = Store.from_config(cfg.store)
    on_disk: list[int] = []  # bytes under the run's scratch folder whenever files go to the store
    upload = Store.upload
    monkeypatch.setattr(
        Store, "upload", lambda self, *a, **k: (on_disk.append(_bytes(run.work)), upload(self, *a, **k))[1]
    )
    for step in (1, 2, 3, 4):
        run.state.step = step
        save_checkpoint(run, {"reward_mean": float(step)})
        assert _files(run.work) == []  # committed, then gone from local disk
    assert [m.step for m in store.checkpoints(ctx.key, CHECKPOINT_KIND)] == [3, 4]  # keep = average_last
    whole = sum(f.size for f in store.latest(ctx.key, CHECKPOINT_KIND).files)
    assert 0 < max(on_disk) < 0.6 * whole  # one part at a time, never the whole checkpoint

    resumed = setup_rl(cfg, ctx, samples=visual, resume="auto")
    assert resumed.resumed_from == 4 and resumed.state.step == 4
    assert _files(resumed.work) == []  # the downloaded checkpoint left once restored
    critic = _saved(store, ctx.key, 4, "critic")
    assert critic.keys() == resumed.critic.state_dict().keys()
    assert all(torch.equal(v, critic[k]) for k, v in resumed.critic.state_dict().items())


def _status(key: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM, RssAnon, ...)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f.read().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def test_critic_loads_in_the_run_dtype_holding_only_itself(tmp_path, tiny_model_dir):
    """A 55M-parameter critic in bf16 (110 MB): loading it grows the process by the critic, not by
    the critic plus a host copy of its file (or of a float32 model)."""
    from transformers import Qwen2_5_VLModel

    from ovr.models.critic import Critic
    from ovr.models.tiny import TinySpec, build_config, build_tokenizer

    spec = TinySpec(hidden_size=1024, intermediate_size=2816, num_layers=4, num_heads=8, mrope_section=(16, 24, 24))
    config = build_config(build_tokenizer(spec, 0), spec)
    config.dtype = torch.bfloat16
    with torch.device("cpu"):
        saved = Critic(Qwen2_5_VLModel._from_config(config, dtype=torch.bfloat16), spec.hidden_size)
    saved.init_value_head(5**0.5, seed=1)
    saved.to(torch.bfloat16).save(tmp_path / "critic")
    size = sum(p.numel() * p.element_size() for p in saved.parameters())
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # restart this process's peak RSS (VmHWM)
    before = _status("VmRSS")
    loaded = Critic.load(tmp_path / "critic", torch.bfloat16)
    grew = _status("VmHWM") - before
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert grew < 1.4 * size, f"loading a {size / 2**20:.0f} MB critic grew the process by {grew / 2**20:.0f} MB"
    want = saved.state_dict()
    assert loaded.state_dict().keys() == want.keys()
    assert all(torch.equal(v, want[k]) for k, v in loaded.state_dict().items())  # the value head too
    for name, buf in saved.named_buffers():  # rotary tables as from_policy leaves them
        assert torch.equal(dict(loaded.named_buffers())[name], buf), name
    spy = Float32Allocations()
    with spy:
        Critic.load(tmp_path / "critic", torch.bfloat16)
    assert spy.elements < 0.01 * size / 2  # nothing of the model passed through float32


def test_bf16_run_resumes_actor_and_critic_in_bf16(tmp_path, tiny_model_dir, visual):
    from ovr.rl.checkpoint import save_checkpoint
    from ovr.rl.setup import setup_rl

    cfg = _cfg(tmp_path, tiny_model_dir, "model.dtype=bfloat16")
    ctx = RunContext.for_config(cfg, "b1")
    run = setup_rl(cfg, ctx, samples=visual, resume="never")
    run.state.step = 1
    save_checkpoint(run, {})
    store = Store.from_config(cfg.store)
    resumed = setup_rl(cfg, ctx, samples=visual, resume="auto")
    for model, sub in ((resumed.actor, "actor"), (resumed.critic, "critic")):
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}, sub
    actor = _norm(_saved(store, ctx.key, 1, "actor"))
    state = _norm(resumed.actor.state_dict())
    assert state.keys() == actor.keys() and all(torch.equal(v, actor[k]) for k, v in state.items())


def test_folder_sync_needs_the_replicas_folder(tmp_path, tiny_model_dir, visual, monkeypatch):
    """Folder sync with no ``rollout.weights_dir`` is refused before any push: a folder only the
    trainer's pod sees reaches no replica (it used to be a temp folder that kept a model per push).
    The run stops after its set-up, and its scratch leaves the disk all the same."""
    import tempfile

    from ovr.rl.trainer import run_rl

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the pod's temp dir, where the run's scratch goes
    cfg = _cfg(tmp_path, tiny_model_dir, "rollout.endpoints=[http://127.0.0.1:9]", "rollout.weight_sync=folder")
    ctx = RunContext.for_config(cfg, "t1")
    assert ctx.weights_dir is None and ctx.rollout_endpoints
    with pytest.raises(ValueError, match="needs rollout.weights_dir"):
        run_rl(cfg, ctx, samples=visual, progress=False)
    assert list(scratch.iterdir()) == []
