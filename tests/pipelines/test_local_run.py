"""The whole DAG under kfp.local on CPU: real vLLM, reward service, MLflow (sqlite), local store."""

from __future__ import annotations

import json

import pytest

from ovr.progress import PROGRESS_ENV, read_events

SMALL = [
    "sft.max_steps=6",
    "sft.save_every=3",
    "rl.max_steps=2",
    "rl.save_every=1",
    "rl.prompts_per_step=4",
    "rl.samples_per_prompt=4",
    "data.synthetic.text_samples=300",
    "data.synthetic.visual_samples=100",
    "data.synthetic.eval_samples=8",
    "eval.k=2",
    "rl.algorithm=grpo",  # the override the tiny recipe advertises, through every pod (the cluster twin runs PPO)
]


@pytest.mark.slow
@pytest.mark.vllm
def test_local_run_completes_every_stage_and_leaves_a_report(repo_root, tmp_path, rollout_python, monkeypatch):
    from mlflow.tracking import MlflowClient

    from ovr.config import load_config
    from ovr.store import Store
    from pipelines.local import run_local

    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "progress.jsonl"))  # the console's feed, read below
    run = run_local(str(repo_root / "recipes/tiny-cpu.yaml"), SMALL, workdir=tmp_path)

    client = MlflowClient(run.tracking_uri)
    mlrun = client.get_run(run.mlflow_run_id)
    stages = {key.split("/")[0] for key in mlrun.data.metrics}
    assert {"data", "sft", "rl", "eval"} <= stages
    assert mlrun.data.metrics["data/samples_rl"] > 0
    assert len(client.get_metric_history(run.mlflow_run_id, "sft/loss")) >= 1
    assert [m.step for m in client.get_metric_history(run.mlflow_run_id, "rl/reward_mean")] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.mlflow_run_id)}
    assert "report" in artifacts

    text = run.report.read_text()
    assert text.startswith("# ovr run report: tiny-cpu") and "synthetic_visual" in text
    assert "| sft (avg@2) | rl (avg@2) |" in text  # training order, though SFT ran more steps
    assert "data:image/png;base64," in text
    page = (run.report.parent / "html").read_text()  # the standalone HTML page beside it
    assert page.startswith("<!doctype html>") and "<table>" in page and 'src="data:image/png;base64,' in page
    assert [json.loads(p.read_text())["label"] for p in run.eval_results()] == ["sft", "rl"]

    cfg = load_config(repo_root / "recipes/tiny-cpu.yaml", [f"store.uri={run.store_uri}"], use_env=False)
    store = Store.from_config(cfg.store)
    key = f"tiny-cpu/{run.run_id}"
    assert store.latest(key, "sft-export").step == 6
    assert store.latest(key, "rl-export").step == 2
    assert str(tmp_path) in run.store_uri  # relative recipe paths were pinned to the work dir

    # GRPO as asked (the override reached every pod): no critic, group advantages, the preset's loss
    params = mlrun.data.params
    assert (params["rl.algorithm"], params["rl.advantage"], params["rl.loss_agg"]) == ("grpo", "grpo", "seq_mean")
    assert params["rl.critic_updates"] == "0" and params["rl.adv_norm"] == "none"
    checkpoint = store.latest(key, "rl")
    assert checkpoint.files and not any(f.path.startswith("critic") for f in checkpoint.files)
    assert "value_loss" not in {k.split("/", 1)[1] for k in mlrun.data.metrics if k.startswith("rl/")}

    # continuing the finished run: every stage says it has nothing to do, and nothing trains again
    again = run_local(str(repo_root / "recipes/tiny-cpu.yaml"), SMALL, workdir=tmp_path, resume_from=run.run_id)
    assert again.run_id == run.run_id and again.mlflow_run_id == run.mlflow_run_id
    notes = [e.note for e in read_events(tmp_path / "progress.jsonl")[0] if e.note]
    assert any(n.startswith(f"resuming run {run.run_id}") for n in notes)
    assert any("built earlier with these settings: reused" in n for n in notes)
    assert any(n.startswith(f"run {run.run_id} finished earlier (step 6)") for n in notes)  # SFT
    assert any(n.startswith(f"run {run.run_id} finished earlier (step 2 of 2)") for n in notes)  # RL
    assert [m.step for m in store.checkpoints(key, "sft-export")] == [6]
    assert [m.step for m in client.get_metric_history(run.mlflow_run_id, "rl/reward_mean")] == [0, 1]
    assert store.runs("tiny-cpu") == [
        run.run_id
    ]  # and a plain rerun would be a new run (tests/pipelines/test_runtime.py)
