"""Real servers for the foundation tests: an S3-protocol server (moto's server mode, a separate
process speaking the S3 HTTP API; no MinIO binary is obtainable here) and an MLflow server."""

from __future__ import annotations

import sys

import pytest

from ovr.serving import ManagedServer


@pytest.fixture(scope="session")
def s3_server():
    with ManagedServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
        health_path="/moto-api/",
        name="moto-s3",
        startup_timeout_s=60,
    ) as srv:
        yield srv


@pytest.fixture()
def s3_store_cfg(s3_server, monkeypatch, request):
    from ovr.config import StoreConfig

    monkeypatch.setenv("OVR_S3_ACCESS_KEY", "testing-access")
    monkeypatch.setenv("OVR_S3_SECRET_KEY", "testing-secret")
    import hashlib

    bucket = "ovr-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    return StoreConfig(uri=f"s3://{bucket}/prefix", endpoint=f"127.0.0.1:{s3_server.port}", retries=2, backoff_s=0.05)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    with ManagedServer(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination", str(root / "artifacts"),
        ],
        health_path="/health",
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        name="mlflow",
        startup_timeout_s=120,
    ) as srv:
        yield srv
