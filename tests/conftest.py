"""Fixtures shared by the whole suite. Stage-specific fixtures live in each test folder's conftest."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROLLOUT_PYTHON = Path(os.environ.get("OVR_ROLLOUT_PYTHON", REPO / ".venv-rollout/bin/python"))

# Keep torch from oversubscribing the 2 cores when servers run beside the tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny offline Qwen2.5-VL (seed 0), built once per session."""
    from ovr.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def rollout_python() -> Path:
    """Interpreter of the rollout venv (vLLM); tests marked `vllm` need it."""
    if not ROLLOUT_PYTHON.exists():
        pytest.fail(f"rollout venv missing at {ROLLOUT_PYTHON}: run scripts/env/make_venvs.sh rollout")
    return ROLLOUT_PYTHON


@pytest.fixture()
def scripted_server(tmp_path):
    """Factory: ``start(rules) -> ManagedServer`` running tests/eval/scripted_openai.py; stopped after the test."""
    from ovr.serving import ManagedServer

    servers: list[ManagedServer] = []

    def start(rules: list[dict]) -> ManagedServer:
        script = tmp_path / f"rules-{len(servers)}.json"
        script.write_text(json.dumps(rules))
        srv = ManagedServer(
            [sys.executable, str(REPO / "tests/eval/scripted_openai.py"), "--script", str(script), "--port", "{port}"],
            health_path="/health",
            name="scripted-openai",
            startup_timeout_s=60,
        )
        servers.append(srv.start())
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def dataset_prefix_for():
    """``f(recipe, sets) -> "datasets/<id>"``: where a stage run with ``recipe`` and the ``--set`` values
    ``sets`` reads its dataset (the id hashes the data settings)."""
    from ovr.config import load_config
    from ovr.store import dataset_prefix

    def prefix(recipe, sets: list[str]) -> str:
        return dataset_prefix(load_config(recipe, [s for s in sets if s != "--set"], use_env=False).data.dataset_id)

    return prefix
