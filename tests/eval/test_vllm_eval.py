"""The real path: the tiny Qwen2.5-VL served by vLLM (CPU), evaluated on procedural image and text
questions through the rollout client and the reward functions, then reported."""

from __future__ import annotations

import pytest

from ovr.data.synthetic import text_samples, visual_samples
from ovr.eval.metrics import avg_at_k
from ovr.eval.records import read_records
from ovr.eval.report import build_report
from ovr.eval.runner import evaluate

pytestmark = pytest.mark.vllm


def test_tiny_model_on_vllm_end_to_end(tiny_model_dir, rollout_python, eval_cfg, tmp_path):
    from services.rollout.launch import local_server

    cfg = eval_cfg("eval.k=2", "eval.max_tokens=12", "eval.temperature=1.0",
                   "eval.benchmarks=[synthetic_visual, synthetic_text]", f"rollout.python={rollout_python}")
    data = visual_samples(4, seed=1, split="eval") + text_samples(4, seed=1, split="eval")
    assert {s.source for s in data} == {"synthetic_visual", "synthetic_text"}

    with local_server(tiny_model_dir, cfg.rollout) as srv:
        result = evaluate(cfg, [srv.url], data, out_dir=tmp_path / "eval", progress=False, label="tiny", step=0)

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

    text = build_report(cfg, [result], tmp_path / "report").read_text()
    for score in result.benchmarks:
        assert f"| {score.benchmark} | {100 * score.avg_at_k:.1f} |" in text
    assert (tmp_path / "report/figures/accuracy.png").stat().st_size > 1000
