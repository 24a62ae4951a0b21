"""Fixtures of the eval tests: a scripted OpenAI-compatible server (real uvicorn process) and configs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ovr.serving import ManagedServer

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def scripted_server(tmp_path):
    """Factory: ``start(rules) -> ManagedServer`` running tests/eval/scripted_openai.py; stopped after the test."""
    servers: list[ManagedServer] = []

    def start(rules: list[dict]) -> ManagedServer:
        script = tmp_path / f"rules-{len(servers)}.json"
        script.write_text(json.dumps(rules))
        srv = ManagedServer(
            [sys.executable, str(HERE / "scripted_openai.py"), "--script", str(script), "--port", "{port}"],
            health_path="/health", name="scripted-openai", startup_timeout_s=60,
        )
        servers.append(srv.start())
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture()
def eval_cfg(repo_root, tmp_path):
    """Factory: the tiny recipe with MLflow in a temp sqlite file and extra overrides."""
    from ovr.config import load_config

    def make(*overrides: str):
        base = [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"store.uri={tmp_path}/store"]
        return load_config(repo_root / "recipes/tiny-cpu.yaml", base + list(overrides), use_env=False)

    return make
