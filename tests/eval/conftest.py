"""Fixtures of the eval tests: configs (the scripted OpenAI-compatible server is in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture()
def eval_cfg(repo_root, tmp_path):
    """Factory: the tiny recipe with MLflow in a temp sqlite file and extra overrides."""
    from ovr.config import load_config

    def make(*overrides: str):
        base = [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"store.uri={tmp_path}/store"]
        return load_config(repo_root / "recipes/tiny-cpu.yaml", base + list(overrides), use_env=False)

    return make
