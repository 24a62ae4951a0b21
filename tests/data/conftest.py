"""Fixtures of the data tests: every source written once per session in its real layouts."""

from __future__ import annotations

import pytest
from layouts import write_all


@pytest.fixture(scope="session")
def source_files(tmp_path_factory):
    """``fixture name -> Layout`` (adapter, path, source fields, expected good rows) for every
    real layout of every built-in adapter."""
    return write_all(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server mode (a real HTTP server speaking the S3 API; no MinIO binary exists here)."""
    import sys

    from ovr.serving import ManagedServer

    with ManagedServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
        health_path="/moto-api/",
        name="moto-s3",
        startup_timeout_s=60,
    ) as srv:
        yield srv


@pytest.fixture()
def s3_cfg(s3_server, monkeypatch):
    from ovr.config import StoreConfig

    monkeypatch.setenv("OVR_S3_ACCESS_KEY", "testing-access")
    monkeypatch.setenv("OVR_S3_SECRET_KEY", "testing-secret")
    return StoreConfig(uri="s3://ovr-data/store", endpoint=f"127.0.0.1:{s3_server.port}", retries=1, backoff_s=0.05)
