"""Fixtures of the cluster twin: its API server (kmock's emulator with RBAC and CRD pruning)."""

from __future__ import annotations

import pytest_asyncio
from apiserver import ApiServer
from kmock import Server


@pytest_asyncio.fixture()
async def api_server():
    """An :class:`apiserver.ApiServer` on a free port (allows everything until ``rbac`` is set)."""
    async with ApiServer() as api, Server(api):
        yield api
