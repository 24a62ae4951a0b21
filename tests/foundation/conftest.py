"""Real servers for the foundation tests: an S3-protocol server (moto's server mode, a separate
process speaking the S3 HTTP API; no MinIO binary is obtainable here), an MLflow server, and an
MLflow server running its basic-auth app (as the Helm chart does)."""

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
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        health_path="/health",
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        name="mlflow",
        startup_timeout_s=120,
    ) as srv:
        yield srv


#: the admin login of ``mlflow_auth_server`` (MLflow's password policy wants 12+ characters)
MLFLOW_ADMIN = ("ovr-admin", "test-Passw0rd-2c6f1e")


@pytest.fixture(scope="session")
def mlflow_admin() -> tuple[str, str]:
    """The admin login the authenticated MLflow server of these tests is started with."""
    return MLFLOW_ADMIN


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory):
    """``mlflow server --app-name basic-auth``: users in its own sqlite database, the admin created
    from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD on first start."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/auth.db\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    with ManagedServer(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        health_path="/health",
        env={
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_ADMIN[0],
            "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_ADMIN[1],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-key-for-tests",
        },
        name="mlflow-auth",
        startup_timeout_s=180,
    ) as srv:
        yield srv
