"""Benchmarks in their own metrics (hand-computed We-Math, DynaMath, MathVerse cases), grading-path
counts, published sizes, the VLMEvalKit-style files and the report's table beside the paper."""

from __future__ import annotations

import csv

import pytest

from ovr.config import RunConfig
from ovr.eval import benchmarks, leaderboard, metrics
from ovr.eval.answer_judge import answer_prompt, parse_judgement
from ovr.eval.records import EvalResult, ResponseRecord
from ovr.eval.report import build_report
from ovr.eval.vlmeval import write_results


def rec(bench, sid, acc, index=0, group=None, role=None, grading="rule", subject=None) -> ResponseRecord:
    return ResponseRecord(
        sample_id=sid,
        benchmark=bench,
        subject=subject,
        modality="image",
        index=index,
        prompt="q",
        reference="r",
        text="t",
        finish_reason="stop",
        length=3,
        accuracy=float(acc),
        grading=grading,
        group=group,
        role=role,
    )


# We-Math composite problems (sub-problem results..., composite result) for the first sample:
# P1 all right -> complete mastery; P2 steps wrong, composite right -> rote memorisation (strict and
# loose); P3 a step wrong, composite wrong -> insufficient knowledge; P4 steps right, composite wrong ->
# inadequate generalisation; P5 one step right, composite right -> rote memorisation (strict only).
WEMATH = {"P1": [1, 1, 1], "P2": [0, 0, 1], "P3": [1, 0, 1, 0], "P4": [1, 1, 0], "P5": [1, 0, 1]}


def wemath_records() -> list[ResponseRecord]:
    out = []
    for problem, results in WEMATH.items():
        n = len(results) - 1
        roles = [f"{n}steps_{i + 1}" for i in range(n)] + [f"{n}steps_multi"]
        for role, ok in zip(roles, results, strict=True):
            sid = f"wemath-{problem}@{role}"
            out += [rec("wemath", sid, ok, 0, problem, role), rec("wemath", sid, 1, 1, problem, role)]
    return out


def test_wemath_strict_and_loose_scores():
    one = [r for r in wemath_records() if r.index == 0]
    # N = 5, IG = 1, IK = 1, RM strict = 2, RM loose = 1: (N - 0.5 IG - RM - IK) / N
    assert leaderboard.wemath_scores(one) == {"strict": pytest.approx(1.5 / 5), "loose": pytest.approx(2.5 / 5)}
    (board,) = leaderboard.leaderboard(wemath_records())
    # the second sample is right everywhere (scores 1.0); the metric is averaged over the k samples
    assert board.metric == "strict score" and board.score == pytest.approx((0.3 + 1.0) / 2)
    assert board.extra["loose score"] == pytest.approx((0.5 + 1.0) / 2)
    assert (board.items, board.published, board.complete) == (16, 1740, False)


def dynamath_records() -> list[ResponseRecord]:
    # seed 1 right in both variants, seed 2 in one, seed 3 in none (two sources mapped to dynamath)
    results = {"1": (1, 1), "2": (1, 0), "3": (0, 0)}
    return [
        rec("dynamath", f"dynamath_v{v + 1}-{seed}", oks[v], group=seed, role=f"variant{v + 1}")
        for seed, oks in results.items()
        for v in range(2)
    ]


def test_dynamath_average_and_worst_case():
    (board,) = leaderboard.leaderboard(dynamath_records())
    assert board.metric == "worst-case accuracy" and board.score == pytest.approx(1 / 3)
    assert board.extra == {"average-case accuracy": pytest.approx(3 / 6)}
    assert board.paper["OVR-7B (RL)"] == 33.5 and board.published == 5010


def test_mathverse_headline_is_vision_only_and_grading_paths_are_counted():
    records = [
        rec("mathverse", "mv-1", 1, role="Vision Only"),
        rec("mathverse", "mv-2", 0, role="Vision Only", grading="judge"),
        rec("mathverse", "mv-3", 1, role="Text Lite", grading="string"),
        rec("mathverse", "mv-4", 1, 0, role="Text Lite"),
        rec("mathverse", "mv-4", 0, 1, role="Text Lite", grading="ungraded"),  # one response of mv-4 ungraded
    ]
    (board,) = leaderboard.leaderboard(records)
    assert board.metric == "vision-only accuracy" and board.score == 0.5
    assert board.extra == {"Text Lite accuracy": 0.75, "Vision Only accuracy": 0.5}
    assert board.grading == {"rule": 1, "string": 1, "judge": 1, "ungraded": 1}
    tracked = metrics.leaderboard_for_tracking([board])
    assert tracked["mathverse/vision-only_accuracy"] == 0.5 and tracked["mathverse/graded_ungraded"] == 1.0


def test_published_sizes_and_paper_numbers():
    sizes = {name: b.published for name, b in benchmarks.BENCHMARKS.items()}
    assert sizes == {
        "math500": 500,
        "aime24": 30,
        "aime25": 30,
        "mathvision": 3040,
        "mathvision_testmini": 304,
        "mathverse": 3940,
        "mathverse_vision_only": 788,
        "mathverse_text_only": 788,
        "mathvista": 1000,
        "wemath": 1740,
        "dynamath": 5010,
        "logicvista": 448,
        "amc": None,
        "gsm8k": None,
    }
    assert benchmarks.paper_scores("mathverse_vision_only") == {"OVR-7B (RL)": 54.6, "Qwen2.5-VL-7B": 41.1}
    assert benchmarks.paper_scores("aime25") == {"OVR-7B (RL)": 52.1, "Qwen2.5-VL-7B": None}
    assert benchmarks.benchmark_of("dynamath_v3", {"dynamath_v3": "dynamath"}) == "dynamath"


def _result(records: list[ResponseRecord]) -> EvalResult:
    benches, subjects = metrics.score_benchmarks(records)
    return EvalResult(
        label="rl step/80",
        k=2,
        temperature=1.0,
        top_p=1.0,
        max_tokens=64,
        benchmarks=benches,
        subjects=subjects,
        leaderboard=leaderboard.leaderboard(records),
        questions=len({r.sample_id for r in records}),
        responses=len(records),
        wall_s=1.0,
        questions_per_s=1.0,
    )


def _csv(path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return {row[next(iter(row))]: row for row in csv.DictReader(f)}


def test_vlmevalkit_files(tmp_path):
    result = _result(wemath_records() + dynamath_records())
    paths = write_results(result, tmp_path)
    assert sorted(p.name for p in paths) == [
        "rl_step_80_DynaMath_score.csv",
        "rl_step_80_WeMath_score.csv",
        "rl_step_80_leaderboard.csv",
    ]
    wemath = _csv(tmp_path / "vlmeval" / "rl_step_80_WeMath_score.csv")
    assert wemath["Score (Strict)"]["acc"] == "65.00" and wemath["Score (Loose)"]["acc"] == "75.00"
    assert wemath["Overall"]["tot"] == "16"
    dyna = _csv(tmp_path / "vlmeval" / "rl_step_80_DynaMath_score.csv")
    assert dyna["Worst Case"]["acc"] == "33.33" and dyna["Average Case"]["acc"] == "50.00"
    board = _csv(tmp_path / "vlmeval" / "rl_step_80_leaderboard.csv")
    assert board["dynamath"]["published"] == "5010" and board["dynamath"]["OVR-7B (RL)"] == "33.5"
    assert board["wemath"]["rule"] == "16" and board["wemath"]["score"] == "65.00"


def test_report_places_scores_beside_the_paper(tmp_path):
    records = [rec("mathverse_vision_only", f"mv-{i}", i % 2, role="Vision Only") for i in range(4)]
    cfg = RunConfig.model_validate({"store": {"uri": str(tmp_path / "store")}, "tracking": {"enabled": False}})
    text = build_report(cfg, [_result(records)], tmp_path / "report").read_text()
    assert "## Benchmarks in their own metrics" in text
    row = next(line for line in text.splitlines() if line.startswith("| mathverse_vision_only | vision-only"))
    assert "| 50.0 | 54.6 | 41.1 | 4 / 788 (not the published set) |" in row
    assert "| mathverse_vision_only | 4 | 0 | 0 | 0 | 4 / 788 (not the published set) |" in text


def test_judge_prompt_and_verdicts():
    prompt = answer_prompt("[q1] Which way?", "N 30° E", "... so the bearing is thirty east of north", "30")
    assert "<reference>\nN 30° E\n</reference>" in prompt and "extracted by rule" in prompt
    assert parse_judgement("<judgement>0</judgement>") is False
    assert parse_judgement("<judgement>1</judgement> ... <judgement>0</judgement>") is None
    assert parse_judgement("<judgement>yes</judgement>") is None and parse_judgement(None) is None
