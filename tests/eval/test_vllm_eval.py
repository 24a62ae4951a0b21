"""The real path: `ovr eval --model` starts vLLM (CPU) on the tiny Qwen2.5-VL, evaluates stored
procedural image and text eval questions through the rollout client and the reward functions;
`ovr report` then renders that evaluation's numbers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ovr.cli import app
from ovr.config import StoreConfig
from ovr.data.shards import write_split
from ovr.data.synthetic import text_samples, visual_samples
from ovr.eval.metrics import avg_at_k
from ovr.eval.records import EvalResult, read_records
from ovr.store import Store

pytestmark = pytest.mark.vllm


def test_tiny_model_on_vllm_end_to_end(tiny_model_dir, rollout_python, repo_root, tmp_path, dataset_prefix_for):
    data = visual_samples(4, seed=1, split="eval") + text_samples(4, seed=1, split="eval")
    write_split(data, "eval", tmp_path / "ds", shard_size=4)
    common = [
        "--recipe",
        str(repo_root / "recipes/tiny-cpu.yaml"),
        "--set",
        f"store.uri={tmp_path / 'store'}",
        "--set",
        f"tracking.uri=sqlite:///{tmp_path}/m.db",
        "--set",
        "data.name=tinyeval",
        "--set",
        "eval.k=2",
        "--set",
        "eval.max_tokens=12",
        "--set",
        "eval.benchmarks=[synthetic_visual, synthetic_text]",
        "--set",
        f"rollout.local_server.python={rollout_python}",
    ]
    Store.from_config(StoreConfig(uri=str(tmp_path / "store"))).commit(
        dataset_prefix_for(common[1], common[2:]), tmp_path / "ds", run="tinyeval", kind="dataset"
    )
    runner = CliRunner()
    res = runner.invoke(
        app, ["eval", *common, "--model", str(tiny_model_dir), "--out", str(tmp_path / "eval"), "--label", "tiny"]
    )
    assert res.exit_code == 0, res.output

    result = EvalResult.load(tmp_path / "eval")
    records = read_records(tmp_path / "eval/responses.jsonl")
    assert len(records) == 16 and result.questions == 8 and result.questions_per_s > 0
    assert all(0 < r.length <= 12 for r in records)
    for score in result.benchmarks:
        mine = [r for r in records if r.benchmark == score.benchmark]
        per_q: dict[str, list[float]] = {}
        for r in mine:
            per_q.setdefault(r.sample_id, []).append(r.accuracy)
        assert score.avg_at_k == pytest.approx(avg_at_k(per_q))
        assert score.truncation_rate == pytest.approx(sum(r.finish_reason == "length" for r in mine) / len(mine))
        assert score.mean_length == pytest.approx(sum(r.length for r in mine) / len(mine))
    assert {s.modality for s in result.benchmarks} == {"image", "text"}

    res = runner.invoke(app, ["report", *common, "--eval", str(tmp_path / "eval"), "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "report/report.md").read_text()
    for score in result.benchmarks:
        assert f"| {score.benchmark} | {100 * score.avg_at_k:.1f} |" in text
    assert f"MLflow run: `{result.mlflow_run_id}`" in text
    assert (tmp_path / "report/figures/accuracy.png").stat().st_size > 1000
