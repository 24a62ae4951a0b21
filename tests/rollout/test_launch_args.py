"""The replica launcher's command line and environment (no server started)."""

from __future__ import annotations

import json
import os

import pytest

from ovr.config import RolloutConfig
from services.rollout.launch import EXTENSION, REPO, checkpoint_max_pixels, local_server, vllm_args, vllm_env


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_cpu_args_carry_extension_eager_and_plain_sampling():
    args = vllm_args("/m", host="127.0.0.1", port=9, served_model_name="pi", max_model_len=512, dtype="float32")
    assert flag(args, "--worker-extension-cls") == EXTENSION
    assert flag(args, "--served-model-name") == "pi" and flag(args, "--max-model-len") == "512"
    assert flag(args, "--generation-config") == "vllm" and flag(args, "--dtype") == "float32"
    assert "--enforce-eager" in args and "--weight-transfer-config" not in args


def test_gpu_args_add_parallelism_and_nccl_transfer_and_extra_args_come_last():
    args = vllm_args(
        "/m",
        host="0.0.0.0",
        port=8000,
        device="cuda",
        tensor_parallel_size=4,
        nccl_weight_transfer=True,
        extra_args=["--dtype=bfloat16"],
    )
    assert flag(args, "--tensor-parallel-size") == "4" and "--enforce-eager" not in args
    assert json.loads(flag(args, "--weight-transfer-config")) == {"backend": "nccl"}
    assert args[-1] == "--dtype=bfloat16"


def test_env_enables_dev_routes_and_imports_the_extension(tmp_path):
    env = vllm_env("cpu", 2, weights_dir=tmp_path)
    assert env["VLLM_SERVER_DEV_MODE"] == "1" and env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert str(REPO) in env["PYTHONPATH"].split(":") and env["OVR_WEIGHTS_DIR"] == str(tmp_path.resolve())
    assert "VLLM_CPU_KVCACHE_SPACE" not in vllm_env("cuda")


def test_local_server_rejects_a_folder_without_a_model(tmp_path, rollout_python):
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        local_server(tmp_path, RolloutConfig(), python=rollout_python)
    with pytest.raises(FileNotFoundError, match="rollout interpreter"):
        local_server(tmp_path, RolloutConfig(), python=tmp_path / "nope")


def test_worker_extension_imports_without_ovr():
    """The rollout image has no ovr: the extension's module may import only stdlib and torch."""
    import ast

    tree = ast.parse((REPO / "services/rollout/worker_ext.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= {"__future__", "hashlib", "os", "time", "pathlib", "torch"}


def test_local_server_requires_a_token_and_exports_it_to_its_clients(tiny_model_dir, rollout_python, monkeypatch):
    """No server started: the command loads the middleware, the token travels only in the environment."""
    from services.rollout.auth import MIDDLEWARE, SERVER_TOKEN_ENV

    cfg = RolloutConfig(token_env="OVR_TEST_ROLLOUT_TOKEN")
    monkeypatch.delenv(cfg.token_env, raising=False)
    first = local_server(tiny_model_dir, cfg, python=rollout_python)
    token = first.env[SERVER_TOKEN_ENV]
    assert flag(first.cmd, "--middleware") == MIDDLEWARE and len(token) >= 32
    assert token not in " ".join(first.cmd)
    assert os.environ[cfg.token_env] == token  # clients built from cfg in this process send it
    assert local_server(tiny_model_dir, cfg, python=rollout_python).env[SERVER_TOKEN_ENV] == token
    monkeypatch.setenv(cfg.token_env, "given-token")
    assert local_server(tiny_model_dir, cfg, python=rollout_python).env[SERVER_TOKEN_ENV] == "given-token"


def middlewares(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "--middleware"]


def test_image_launcher_loads_the_token_middleware_only_with_a_token_and_gzip_always():
    from services.rollout.auth import MIDDLEWARE
    from services.rollout.compress import MIDDLEWARE as GZIP

    assert middlewares(vllm_args("/m", host="0.0.0.0", port=8000, require_token=True)) == [MIDDLEWARE, GZIP]
    assert middlewares(vllm_args("/m", host="0.0.0.0", port=8000)) == [GZIP]


def test_images_are_bounded_like_the_trainers_processor(tiny_model_dir):
    """vLLM's multimodal processor gets min(model.max_pixels, the checkpoint's own), the bound the
    trainer's processor applies (ovr.models.loading.load_processor): both count the same image tokens."""
    from ovr.models.loading import load_processor

    own = checkpoint_max_pixels(tiny_model_dir)
    assert own == dict(load_processor(tiny_model_dir).image_processor.size)["longest_edge"]
    for asked in (own // 4, 1_003_520):
        args = vllm_args(tiny_model_dir, host="127.0.0.1", port=9, max_pixels=asked)
        served = json.loads(flag(args, "--mm-processor-kwargs"))["max_pixels"]
        trainer = dict(load_processor(tiny_model_dir, asked).image_processor.size)["longest_edge"]
        assert served == trainer == min(asked, own)
    assert "--mm-processor-kwargs" not in vllm_args(tiny_model_dir, host="127.0.0.1", port=9)
