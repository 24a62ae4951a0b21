"""Tracking against a real `mlflow server` process."""

from __future__ import annotations

from ovr.config import load_config
from ovr.tracking import Tracker


def test_stages_share_one_run_on_a_real_mlflow_server(mlflow_server, repo_root, tmp_path):
    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", [f"tracking.uri={mlflow_server.url}"], use_env=False)
    with Tracker.open(cfg, "sft") as sft:
        sft.log_metrics({"loss": 2.0, "nan": float("nan")}, step=1)
        sft.log_metrics({"loss": 1.5}, step=2)
        report = tmp_path / "report.md"
        report.write_text("# hello")
        sft.log_artifact(report, "reports")
    cfg.tracking.run_id = sft.run_id
    with Tracker.open(cfg, "rl") as rl:
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
