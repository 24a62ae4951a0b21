"""Markdown tables of eval results (one checkpoint, or several side by side)."""

from __future__ import annotations

from collections.abc import Sequence

from ovr.eval.benchmarks import PAPER
from ovr.eval.records import BehaviourRates, BenchmarkScore, EvalResult, Score


def fmt(value: float | None, pct: bool = True) -> str:
    """``0.625 -> '62.5'`` (percent) or ``'0.62'``; ``None -> '–'``."""
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if pct else f"{value:.2f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def score_table(scores: Sequence[Score], k: int, subjects: bool = False) -> str:
    """Accuracy (avg@k, pass@k), truncation and length per benchmark (or per subject)."""
    header = (
        ["benchmark"]
        + (["subject"] if subjects else [])
        + ["modality", "questions", f"avg@{k}", f"pass@{k}", "truncated %", "mean length"]
    )
    rows = [
        [s.benchmark]
        + ([s.subject or ""] if subjects else [])
        + [
            s.modality,
            str(s.questions),
            fmt(s.avg_at_k),
            fmt(s.pass_at_k),
            fmt(s.truncation_rate),
            f"{s.mean_length:.1f}",
        ]
        for s in scores
    ]
    return table(header, rows)


def behaviour_table(groups: Sequence[BehaviourRates]) -> str:
    """Emergence rate (%) per behaviour (columns) per benchmark or modality (rows); unknowns noted."""
    names = sorted({n for g in groups for n in g.rates})
    rows = []
    for g in groups:
        cells = []
        for n in names:
            cell = fmt(g.rates.get(n))
            if g.unknown.get(n):
                cell += f" ({g.unknown[n]} unknown)"
            cells.append(cell)
        rows.append([g.group, g.modality, str(g.responses)] + cells)
    return table(["group", "modality", "responses"] + names, rows)


def transfer_table(transfer: dict[str, float | None]) -> str:
    return table(["behaviour", "transfer (vision / language)"], [[n, fmt(v, pct=False)] for n, v in transfer.items()])


def denominator(b: BenchmarkScore) -> str:
    """``788 / 788`` (the published size), ``747 / 788 (short)``, or ``12 / unknown``."""
    if b.published is None:
        return f"{b.items} / unknown"
    return f"{b.items} / {b.published}" + ("" if b.complete else " (not the published set)")


def _paper(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def leaderboard_table(results: Sequence[EvalResult]) -> str:
    """Each benchmark in its own metric (rows) per checkpoint, beside the OVR paper's numbers, with
    the denominator (items scored / published size) of the last checkpoint."""
    last = {b.benchmark: b for b in results[-1].leaderboard}
    names = sorted({b.benchmark for r in results for b in r.leaderboard})
    rows = []
    for name in names:
        cells = []
        for r in results:
            b = next((b for b in r.leaderboard if b.benchmark == name), None)
            cells.append(fmt(b.score) if b else "–")
        ref = last.get(name) or next(b for r in results for b in r.leaderboard if b.benchmark == name)
        others = "; ".join(f"{k} {fmt(v)}" for k, v in ref.extra.items() if k != ref.metric)
        paper = [_paper(ref.paper.get(m)) for m in PAPER]
        rows.append([name, ref.metric, *cells, *paper, denominator(ref), others or "–"])
    header = ["benchmark", "metric", *[f"{r.label} (%)" for r in results], *[f"{m} (paper)" for m in PAPER]]
    return table(header + ["items / published", "other metrics (last)"], rows)


def grading_table(scores: Sequence[BenchmarkScore]) -> str:
    """Items per grading path per benchmark, and the denominator against the published size."""
    rows = [
        [b.benchmark, *[str(b.grading.get(p, 0)) for p in ("rule", "string", "judge", "ungraded")], denominator(b)]
        for b in scores
    ]
    return table(["benchmark", "rule", "string match", "judge", "ungraded", "items / published"], rows)


def result_markdown(result: EvalResult) -> str:
    """The tables of one evaluation (``results.md``)."""
    parts = [
        f"# Eval: {result.label} (step {result.step})",
        f"k={result.k}, temperature={result.temperature}, top_p={result.top_p}, max_tokens={result.max_tokens}; "
        f"{result.questions} questions, {result.responses} responses in {result.wall_s:.1f} s "
        f"({result.questions_per_s:.2f} questions/s; "
        + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in result.timings.items())
        + ").",
        "## Accuracy by benchmark",
        score_table(result.benchmarks, result.k),
    ]
    if result.leaderboard:
        parts += [
            "## Benchmarks in their own metrics (beside the OVR paper)",
            leaderboard_table([result]),
            "## Grading paths (items per path; denominator against the published size)",
            grading_table(result.leaderboard),
        ]
    if result.subjects:
        parts += ["## Accuracy by subject", score_table(result.subjects, result.k, subjects=True)]
    if result.behaviour:
        parts += [
            "## Behaviour emergence rate (% of responses with count > 0)",
            behaviour_table(list(result.behaviour) + list(result.behaviour_by_modality)),
        ]
    if result.transfer:
        parts += ["## Behaviour transfer", transfer_table(result.transfer)]
    return "\n\n".join(parts) + "\n"


def comparison_table(results: Sequence[EvalResult]) -> str:
    """avg@k per benchmark (rows) per checkpoint (columns)."""
    benches = sorted({s.benchmark for r in results for s in r.benchmarks})
    rows = []
    for b in benches:
        cells = []
        for r in results:
            s = next((s for s in r.benchmarks if s.benchmark == b), None)
            cells.append(fmt(s.avg_at_k) if s else "–")
        rows.append([b] + cells)
    return table(["benchmark"] + [f"{r.label} (avg@{r.k})" for r in results], rows)
