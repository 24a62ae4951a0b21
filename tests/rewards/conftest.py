"""Reward-service fixtures: real uvicorn processes on free local ports, started once per session."""

from __future__ import annotations

import pytest

from services.reward.server import local_server

# Small limits so the 413/422/429 paths are cheap to reach; 1 s per item keeps timeouts quick.
LIMITS = dict(
    workers=2, time_limit_s=1.0, chunk_size=4, max_batch_items=40, max_pending_items=48,
    max_body_bytes=4 * 2**20, max_item_chars=1_500_000, memory_limit_mb=1024,
)
TOKEN = "s3cret-token"


@pytest.fixture(scope="session")
def reward_server():
    """The reward service without auth."""
    with local_server(**LIMITS) as srv:
        yield srv


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    """The reward service with bearer-token auth, the token read from a mounted-secret-style file."""
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    with local_server(workers=1, token_file=token_file) as srv:
        yield srv
