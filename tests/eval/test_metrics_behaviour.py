"""Pure functions of eval: avg@k, pass@k, per-subject scores, emergence and transfer rates."""

from __future__ import annotations

import pytest

from ovr.eval import behaviour, metrics
from ovr.eval.records import ResponseRecord


def rec(qid, acc, bench="b", subject=None, modality="text", length=10, finish="stop", keywords=None, judge=None):
    return ResponseRecord(
        sample_id=qid,
        benchmark=bench,
        subject=subject,
        modality=modality,
        index=0,
        prompt="p",
        reference="1",
        text="t",
        finish_reason=finish,
        length=length,
        accuracy=acc,
        keywords=keywords or {},
        judge=judge or {},
    )


def test_avg_and_pass_at_k_hand_computed():
    per_q = {"a": [1, 0, 0, 0], "b": [1, 1, 1, 1], "c": [0, 0, 0, 0]}
    assert metrics.avg_at_k(per_q) == pytest.approx((0.25 + 1 + 0) / 3)
    assert metrics.pass_at_k(per_q) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        metrics.avg_at_k({})
    with pytest.raises(ValueError, match="no samples"):
        metrics.avg_at_k({"a": []})


def test_scores_per_benchmark_and_subject():
    records = [
        rec("q1", 1, subject="geo", length=4),
        rec("q1", 0, subject="geo", length=8, finish="length"),
        rec("q2", 1, subject="alg", length=6),
        rec("q2", 1, subject="alg", length=6),
        rec("v1", 0, bench="vis", modality="image", length=2),
        rec("v1", 1, bench="vis", modality="image", length=2),
    ]
    benches, subjects = metrics.score_benchmarks(records)
    b = {s.benchmark: s for s in benches}
    assert b["b"].avg_at_k == pytest.approx(0.75) and b["b"].pass_at_k == 1.0
    assert b["b"].truncation_rate == pytest.approx(0.25) and b["b"].mean_length == pytest.approx(6.0)
    assert b["b"].modality == "text" and b["vis"].modality == "image" and b["vis"].avg_at_k == 0.5
    assert [(s.subject, s.avg_at_k) for s in subjects] == [("alg", 1.0), ("geo", 0.5)]
    flat = metrics.metrics_for_tracking(benches, k=2)
    assert flat["b/avg_at_2"] == pytest.approx(0.75) and flat["vis/truncation_rate"] == 0.0


def test_emergence_counts_unknown_as_unknown_not_zero():
    records = [
        rec("a", 1, judge={"verification": 2}),
        rec("b", 1, judge={"verification": None}),
        rec("c", 1, judge={"verification": 0}),
        rec("d", 1, judge={"verification": None}),
    ]
    r = behaviour.rates("b", records)
    assert r.rates["verification"] == 0.5  # 1 of 2 known, not 1 of 4
    assert r.unknown["verification"] == 2
    assert r.mean_counts["verification"] == 1.0
    assert behaviour.emergence_rate([{"x": None}], "x") is None


def test_keyword_rates_and_transfer():
    records = [
        rec("t1", 1, keywords={"wait,": 1, "retry": 0}),
        rec("t2", 1, keywords={"wait,": 0, "retry": 0}),
        rec("v1", 1, bench="vis", modality="image", keywords={"wait,": 1, "retry": 1}),
        rec("v2", 1, bench="vis", modality="image", keywords={"wait,": 0, "retry": 0}),
        rec("v3", 1, bench="vis", modality="image", keywords={"wait,": 0, "retry": 0}),
        rec("v4", 1, bench="vis", modality="image", keywords={"wait,": 0, "retry": 0}),
    ]
    per_bench, by_mod, transfer = behaviour.analyse(records)
    assert [g.group for g in by_mod] == ["vision", "language"]
    lang = by_mod[1]
    assert lang.rates["kw_wait"] == 0.5 and lang.rates["kw_retry"] == 0.0
    assert by_mod[0].rates["reflection_words"] == 0.25
    assert transfer["kw_wait"] == pytest.approx(0.25 / 0.5)
    assert transfer["kw_retry"] is None  # language rate 0: undefined, not infinite
    flat = behaviour.metrics_for_tracking(per_bench, transfer)
    assert flat["vis/behaviour/kw_wait"] == 0.25 and "transfer/kw_retry" not in flat
