"""avg@k and friends: pure aggregation of scored responses into per-benchmark / per-subject scores.

avg@k (ORZ, OVR): sample k responses per question, score each 0/1, average over the k samples and
then over the questions. With questions q1 (1 of 4 correct) and q2 (4 of 4 correct), avg@4 is
(0.25 + 1.0) / 2 = 0.625 and pass@4 is 1.0.

>>> avg_at_k({"q1": [1, 0, 0, 0], "q2": [1, 1, 1, 1]})
0.625
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from ovr.eval.records import BenchmarkScore, ResponseRecord, Score


def avg_at_k(per_question: Mapping[str, Sequence[float]]) -> float:
    """Mean over questions of the mean accuracy of their samples."""
    if not per_question:
        raise ValueError("avg@k of no questions")
    for qid, accs in per_question.items():
        if not accs:
            raise ValueError(f"question {qid} has no samples")
    return sum(sum(a) / len(a) for a in per_question.values()) / len(per_question)


def pass_at_k(per_question: Mapping[str, Sequence[float]]) -> float:
    """Share of questions with at least one correct sample (accuracy >= 1)."""
    if not per_question:
        raise ValueError("pass@k of no questions")
    return sum(any(a >= 1.0 for a in accs) for accs in per_question.values()) / len(per_question)


def _modality(records: Sequence[ResponseRecord]) -> str:
    kinds = {r.modality for r in records}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def score_group(benchmark: str, subject: str | None, records: Sequence[ResponseRecord]) -> Score:
    """Score of one group of responses (all responses of its questions)."""
    if not records:
        raise ValueError(f"no responses for {benchmark}/{subject}")
    per_q: dict[str, list[float]] = defaultdict(list)
    for r in records:
        per_q[r.sample_id].append(r.accuracy)
    return Score(
        benchmark=benchmark,
        subject=subject,
        modality=_modality(records),
        questions=len(per_q),
        responses=len(records),
        avg_at_k=avg_at_k(per_q),
        pass_at_k=pass_at_k(per_q),
        truncation_rate=sum(r.truncated for r in records) / len(records),
        mean_length=sum(r.length for r in records) / len(records),
    )


def score_benchmarks(records: Iterable[ResponseRecord]) -> tuple[list[Score], list[Score]]:
    """(per-benchmark scores, per-subject scores), sorted by name; subjects only where samples have one."""
    by_bench: dict[str, list[ResponseRecord]] = defaultdict(list)
    by_subject: dict[tuple[str, str], list[ResponseRecord]] = defaultdict(list)
    for r in records:
        by_bench[r.benchmark].append(r)
        if r.subject is not None:
            by_subject[(r.benchmark, r.subject)].append(r)
    benches = [score_group(b, None, rs) for b, rs in sorted(by_bench.items())]
    subjects = [score_group(b, s, rs) for (b, s), rs in sorted(by_subject.items())]
    return benches, subjects


def metrics_for_tracking(benchmarks: Sequence[Score], k: int) -> dict[str, float]:
    """Flat ``<benchmark>/<metric>`` dict for MLflow (the tracker adds the ``eval/`` prefix)."""
    out: dict[str, float] = {}
    for s in benchmarks:
        out[f"{s.benchmark}/avg_at_{k}"] = s.avg_at_k
        out[f"{s.benchmark}/pass_at_{k}"] = s.pass_at_k
        out[f"{s.benchmark}/truncation_rate"] = s.truncation_rate
        out[f"{s.benchmark}/mean_length"] = s.mean_length
    return out


def leaderboard_for_tracking(scores: Sequence[BenchmarkScore]) -> dict[str, float]:
    """Flat ``<benchmark>/<metric>`` (its own metric, spaces as ``_``) and ``<benchmark>/graded_<path>``
    item counts for MLflow."""
    out: dict[str, float] = {}
    for b in scores:
        for name, value in {b.metric: b.score, **b.extra}.items():
            if value is not None:
                out[f"{b.benchmark}/{name.replace(' ', '_')}"] = value
        out[f"{b.benchmark}/items"] = float(b.items)
        out.update({f"{b.benchmark}/graded_{path}": float(n) for path, n in b.grading.items()})
    return out
