"""Tracking against a real `mlflow server` process."""

from __future__ import annotations

import pytest

from ovr.config import load_config
from ovr.context import RunContext
from ovr.tracking import Tracker


def test_stages_share_one_run_on_a_real_mlflow_server(mlflow_server, repo_root, tmp_path):
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", [f"tracking.uri={mlflow_server.url}"], use_env=False)
    with Tracker.open(cfg, "sft") as sft:
        sft.log_metrics({"loss": 2.0, "nan": float("nan")}, step=1)
        sft.log_metrics({"loss": 1.5}, step=2)
        report = tmp_path / "report.md"
        report.write_text("# hello")
        sft.log_artifact(report, "reports")
    with Tracker.open(cfg, "rl", RunContext.new(cfg.name, "t1", mlflow_run_id=sft.run_id)) as rl:
        rl.log_metrics({"reward_mean": 0.25}, step=1)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.url)
    run = client.get_run(sft.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["rl.actor_lr"] == str(cfg.rl.actor_lr)
    assert [(m.step, m.value) for m in client.get_metric_history(sft.run_id, "sft/loss")] == [(1, 2.0), (2, 1.5)]
    assert "sft/nan" not in run.data.metrics
    assert run.data.metrics["rl/reward_mean"] == 0.25
    assert [a.path for a in client.list_artifacts(sft.run_id, "reports")] == ["reports/report.md"]


def test_disabled_tracking_is_a_no_op(repo_root):
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", ["tracking.enabled=false"], use_env=False)
    with Tracker.open(cfg, "sft") as tr:
        tr.log_metrics({"loss": 1.0}, step=1)
    assert tr.run_id is None and tr.metric_history("sft/loss") == []


def test_local_database_keeps_artifacts_beside_it(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "track" / "mlflow.db"
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", [f"tracking.uri=sqlite:///{db}"], use_env=False)
    note = tmp_path / "note.md"
    note.write_text("hello")
    with Tracker.open(cfg, "eval") as tr:
        tr.log_artifact(note, "reports")
    assert list((db.parent / "mlartifacts").rglob("note.md"))
    assert not (tmp_path / "mlruns").exists()


def test_an_authenticated_server_refuses_strangers_and_takes_the_login_from_the_env(
    mlflow_auth_server, mlflow_admin, repo_root, monkeypatch
):
    """MLflow's basic-auth app (what the Helm chart runs): no login, no access; MLflow's own client
    sends MLFLOW_TRACKING_USERNAME/PASSWORD, and neither reaches the run's params."""
    import httpx

    MLFLOW_ADMIN = mlflow_admin
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    url = mlflow_auth_server.url
    search = url + "/api/2.0/mlflow/experiments/search?max_results=5"
    assert httpx.get(search).status_code == 401
    assert httpx.get(search, auth=(MLFLOW_ADMIN[0], "wrong-password-123")).status_code == 401
    assert httpx.get(url + "/health").status_code == 200

    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", [f"tracking.uri={url}"], use_env=False)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(MlflowException, match="401|authenticated"):
        Tracker.open(cfg, "sft")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_ADMIN[1])
    with Tracker.open(cfg, "sft") as tracker:
        tracker.log_metrics({"loss": 0.5}, step=1)
    run = MlflowClient(url).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["sft/loss"] == 0.5
    assert not [k for k, v in run.data.params.items() if MLFLOW_ADMIN[1] in v]
    assert httpx.get(search, auth=MLFLOW_ADMIN).status_code == 200


def test_a_password_in_a_config_url_is_masked_in_params_and_urls(repo_root, tmp_path):
    from mlflow.tracking import MlflowClient

    from ovr.tracking import redact_credentials

    db = f"sqlite:///{tmp_path}/m.db"
    cfg = load_config(
        repo_root / "recipes/tiny-cpu.yaml",
        [f"tracking.uri={db}", "reward.url=http://ovr:hunter2@reward:8000"],
        use_env=False,
    )
    with Tracker.open(cfg, "rl") as tracker:
        pass
    params = MlflowClient(db).get_run(tracker.run_id).data.params
    assert params["reward.url"] == "http://ovr:***@reward:8000"
    assert not [k for k, v in params.items() if "hunter2" in v]
    remote = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"uri": "https://u:pw1@ml.example"})})
    assert Tracker(remote, "rl", client=object(), run_id="r1").url.startswith("https://u:***@ml.example (")
    assert redact_credentials("no url here @ all") == "no url here @ all"
    assert redact_credentials("http://host:notaport@x") == "http://host:***@x"
