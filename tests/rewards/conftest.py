"""Reward-service fixtures: real uvicorn processes on free local ports, started once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ovr.serving import ManagedServer
from services.reward.server import local_server, settings_env

# Small limits so the 413/422/429 paths are cheap to reach; 1 s per item keeps timeouts quick.
LIMITS = dict(
    workers=2,
    time_limit_s=1.0,
    chunk_size=4,
    max_batch_items=40,
    max_pending_items=48,
    max_body_bytes=4 * 2**20,
    max_item_chars=1_500_000,
    memory_limit_mb=1024,
)
TOKEN = "s3cret-token"


@pytest.fixture(scope="session")
def reward_server():
    """The reward service without auth."""
    with local_server(**LIMITS) as srv:
        yield srv


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory, repo_root):
    """The reward service with bearer-token auth (token read from a mounted-secret-style file),
    started through the container's entry point ``ovr serve reward``."""
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    ovr_cli = str(Path(sys.executable).parent / "ovr")
    cmd = [ovr_cli, "serve", "reward", "--host", "127.0.0.1", "--port", "{port}"]
    env = settings_env(workers=1, token_file=token_file, log_level="warning")
    with ManagedServer(cmd, health_path="/readyz", env=env, cwd=repo_root, name="reward-auth") as srv:
        yield srv
