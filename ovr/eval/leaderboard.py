"""Per-benchmark scores in each benchmark's own metric, with the denominator and the grading paths.

Metrics (``Benchmark.metric`` of :mod:`ovr.eval.benchmarks`), each a mean over the k samples of a
question (a metric over questions is computed for sample 1, 2, ... k and averaged, so k = 1 is the
benchmark's own number):

- ``accuracy``: share of items answered correctly (MATH500, AIME, MathVision, MathVista, LogicVista);
- ``mathverse``: accuracy per problem version; the headline is the Vision Only version's (the
  leaderboard's "vision-only" MathVerse) where the items include it, else all versions together;
- ``wemath``: We-Math's scores over its composite problems (sub-problems ``<n>steps_<i>`` and the
  composite ``<n>steps_multi`` sharing an ID): with IK (a step wrong, composite wrong), IG (steps
  right, composite wrong) and RM (composite right but steps wrong: strict = any step, loose = every
  step), score = (N - 0.5 IG - RM - IK) / N over N composite problems; headline: strict;
- ``dynamath``: average-case accuracy over all variants, and worst-case accuracy (share of seed
  questions answered correctly in every variant); headline: worst-case.

An item's grading path is ``ungraded`` if any of its responses was, else the path its responses
took (``rule``, ``string`` or ``judge``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from ovr.eval import benchmarks
from ovr.eval.records import BenchmarkScore, ResponseRecord
from ovr.rewards.grading import grading_path
from ovr.schema import Sample

_STEP = re.compile(r"^(\d+)steps?_(multi|\d+)$")
Metric = Callable[[Sequence[ResponseRecord]], tuple[str, float | None, dict[str, float | None]]]


def per_item(records: Sequence[ResponseRecord]) -> dict[str, list[ResponseRecord]]:
    """Responses by item (sample id), in input order."""
    out: dict[str, list[ResponseRecord]] = defaultdict(list)
    for r in records:
        out[r.sample_id].append(r)
    return out


def accuracy(records: Sequence[ResponseRecord]) -> float | None:
    """Mean over items of the mean accuracy of their responses (avg@k); None with no records."""
    items = per_item(records)
    return sum(sum(r.accuracy for r in rs) / len(rs) for rs in items.values()) / len(items) if items else None


def item_path(responses: Sequence[ResponseRecord]) -> str:
    """The grading path of one item from its responses' paths (see the module doc)."""
    paths = {r.grading or "ungraded" for r in responses}
    for path in ("ungraded", "judge", "string"):
        if path in paths:
            return path
    return "rule"


def grading_counts(records: Sequence[ResponseRecord]) -> dict[str, int]:
    """Items per grading path, every path listed."""
    counts = dict.fromkeys(("rule", "string", "judge", "ungraded"), 0)
    for responses in per_item(records).values():
        counts[item_path(responses)] += 1
    return counts


def _by_sample(records: Sequence[ResponseRecord]) -> dict[int, list[ResponseRecord]]:
    out: dict[int, list[ResponseRecord]] = defaultdict(list)
    for r in records:
        out[r.index].append(r)
    return out


def _mean_over_samples(records: Sequence[ResponseRecord], metric: Callable[[list[ResponseRecord]], float | None]):
    values = [v for rs in _by_sample(records).values() if (v := metric(rs)) is not None]
    return sum(values) / len(values) if values else None


def _accuracy_metric(records: Sequence[ResponseRecord]):
    return "accuracy", accuracy(records), {}


def _mathverse(records: Sequence[ResponseRecord]):
    by_version: dict[str, list[ResponseRecord]] = defaultdict(list)
    for r in records:
        by_version[r.role or r.subject or "all"].append(r)
    extra = {f"{v} accuracy": accuracy(rs) for v, rs in sorted(by_version.items())}
    if "Vision Only" in by_version:
        return "vision-only accuracy", extra["Vision Only accuracy"], extra
    return "accuracy", accuracy(records), extra


def wemath_scores(one_sample: Sequence[ResponseRecord]) -> dict[str, float] | None:
    """We-Math's strict and loose scores of one response per item (see the module doc); None when
    no composite problem is complete."""
    groups: dict[str, dict[str, bool]] = defaultdict(dict)
    for r in one_sample:
        if r.group and r.role and _STEP.match(r.role):
            groups[r.group][r.role] = r.accuracy >= 1.0
    counts = dict.fromkeys(("IK", "IG", "RM_strict", "RM_loose"), 0)
    n = 0
    for roles in groups.values():
        multi = next((ok for role, ok in roles.items() if role.endswith("_multi")), None)
        steps = [ok for role, ok in roles.items() if not role.endswith("_multi")]
        if multi is None or not steps:
            continue
        n += 1
        counts["IG"] += all(steps) and not multi
        counts["IK"] += not all(steps) and not multi
        counts["RM_strict"] += not all(steps) and multi
        counts["RM_loose"] += not any(steps) and multi
    if not n:
        return None
    base = n - 0.5 * counts["IG"] - counts["IK"]
    return {"strict": (base - counts["RM_strict"]) / n, "loose": (base - counts["RM_loose"]) / n}


def _wemath(records: Sequence[ResponseRecord]):
    strict = _mean_over_samples(records, lambda rs: (wemath_scores(rs) or {}).get("strict"))
    loose = _mean_over_samples(records, lambda rs: (wemath_scores(rs) or {}).get("loose"))
    return "strict score", strict, {"loose score": loose, "accuracy": accuracy(records)}


def worst_case(one_sample: Sequence[ResponseRecord]) -> float | None:
    """Share of seed questions (``group``) answered correctly in every variant, one response per item."""
    seeds: dict[str, bool] = {}
    for r in one_sample:
        key = r.group or r.sample_id
        seeds[key] = seeds.get(key, True) and r.accuracy >= 1.0
    return sum(seeds.values()) / len(seeds) if seeds else None


def _dynamath(records: Sequence[ResponseRecord]):
    worst = _mean_over_samples(records, worst_case)
    return "worst-case accuracy", worst, {"average-case accuracy": accuracy(records)}


METRICS: dict[str, Metric] = {
    "accuracy": _accuracy_metric,
    "mathverse": _mathverse,
    "wemath": _wemath,
    "dynamath": _dynamath,
}


def score_benchmark(name: str, records: Sequence[ResponseRecord]) -> BenchmarkScore:
    """One benchmark's :class:`BenchmarkScore` from all responses to its items."""
    bench = benchmarks.info(name)
    metric, score, extra = METRICS[bench.metric](records)
    return BenchmarkScore(
        benchmark=name,
        title=bench.title,
        metric=metric,
        score=score,
        extra=extra,
        items=len(per_item(records)),
        published=bench.published,
        grading=grading_counts(records),
        paper=benchmarks.paper_scores(name),
    )


def leaderboard(records: Sequence[ResponseRecord]) -> list[BenchmarkScore]:
    """Every benchmark of ``records`` (their ``benchmark`` field), sorted by name."""
    by_bench: dict[str, list[ResponseRecord]] = defaultdict(list)
    for r in records:
        by_bench[r.benchmark].append(r)
    return [score_benchmark(b, rs) for b, rs in sorted(by_bench.items())]


def planned_grading(
    samples: Sequence[Sample], benchmark_ids: dict[str, str] | None = None, judge: bool = False
) -> list[BenchmarkScore]:
    """Before any model runs: per benchmark, its items (against the published size) and the path
    each item's reference takes (``string`` items go to the judge when ``judge``); no score."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[benchmarks.benchmark_of(s.source, benchmark_ids or {})].append(s)
    out = []
    for name, items in sorted(groups.items()):
        counts = dict.fromkeys(("rule", "string", "judge", "ungraded"), 0)
        for s in items:
            path = grading_path(s.answer, s.answer_type, s.choices)
            counts["judge" if judge and path == "string" else path] += 1
        bench = benchmarks.info(name)
        out.append(
            BenchmarkScore(
                benchmark=name,
                title=bench.title,
                metric=bench.metric,
                score=None,
                items=len(items),
                published=bench.published,
                grading=counts,
                paper=benchmarks.paper_scores(name),
            )
        )
    return out
