"""Results files laid out as VLMEvalKit writes them, so a run sits beside its leaderboard numbers.

VLMEvalKit names a model's score file for a dataset ``<model>_<dataset>_score.csv`` (``_acc.csv`` for
some VQA sets), with one row per category: MathVista's has columns ``Task&Skill, tot, hit, acc``
(``acc`` in percent), We-Math's ``Score (Strict)`` / ``Score (Loose)``. ovr writes, under
``<eval out_dir>/vlmeval/``:

- ``<model>_<Dataset>_score.csv`` per benchmark (``Dataset`` = VLMEvalKit's dataset name, e.g.
  ``MathVerse_MINI_Vision_Only``), columns ``Category, tot, hit, acc``: the row ``Overall`` (tot =
  items, hit = items answered correctly, averaged over the k samples, acc = 100 * hit / tot), then one
  row per metric of the benchmark's own (MathVerse's versions such as ``Vision Only``, We-Math's
  ``Score (Strict)`` / ``Score (Loose)``, DynaMath's ``Worst Case`` / ``Average Case``; tot = items,
  only ``acc`` filled), then one row per subject;
- ``<model>_leaderboard.csv``: one row per benchmark: headline metric and score (%), items,
  published size, items per grading path, and the OVR paper's numbers.

``model`` is the eval's label (e.g. ``rl-step-80``) with characters other than letters, digits,
``.``, ``-`` and ``_`` replaced by ``_``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ovr.eval.benchmarks import PAPER
from ovr.eval.records import BenchmarkScore, EvalResult, Score

FOLDER = "vlmeval"
_METRIC_ROWS = {
    "strict score": "Score (Strict)",
    "loose score": "Score (Loose)",
    "worst-case accuracy": "Worst Case",
    "average-case accuracy": "Average Case",
}


def model_name(label: str) -> str:
    """A file-name-safe model name from an eval label.

    >>> model_name("rl step/80")
    'rl_step_80'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def score_rows(bench: BenchmarkScore, overall: Score | None, subjects: list[Score]) -> list[list[str]]:
    """The rows of one benchmark's ``_score.csv`` (header first)."""
    rows = [["Category", "tot", "hit", "acc"]]
    if overall is not None:
        hit = overall.avg_at_k * overall.questions
        rows.append(["Overall", str(overall.questions), f"{hit:.2f}", _pct(overall.avg_at_k)])
    metrics = ({bench.metric: bench.score} if bench.metric in _METRIC_ROWS else {}) | bench.extra
    for name, value in metrics.items():
        if name != "accuracy":
            rows.append([_METRIC_ROWS.get(name, name.removesuffix(" accuracy")), str(bench.items), "", _pct(value)])
    for s in subjects:
        rows.append([s.subject or "", str(s.questions), f"{s.avg_at_k * s.questions:.2f}", _pct(s.avg_at_k)])
    return rows


def leaderboard_rows(result: EvalResult) -> list[list[str]]:
    """The rows of ``<model>_leaderboard.csv`` (header first)."""
    header = ["benchmark", "dataset", "metric", "score", "items", "published", "rule", "string", "judge", "ungraded"]
    rows = [header + list(PAPER)]
    for b in result.leaderboard:
        counts = [str(b.grading.get(p, 0)) for p in ("rule", "string", "judge", "ungraded")]
        paper = ["" if b.paper.get(m) is None else f"{b.paper[m]:.1f}" for m in PAPER]
        published = "" if b.published is None else str(b.published)
        rows.append([b.benchmark, b.title, b.metric, _pct(b.score), str(b.items), published, *counts, *paper])
    return rows


def _write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def write_results(result: EvalResult, out_dir: Path) -> list[Path]:
    """Write the files of the module doc under ``out_dir/vlmeval``; returns their paths."""
    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    model = model_name(result.label)
    scores = {s.benchmark: s for s in result.benchmarks}
    paths = []
    for bench in result.leaderboard:
        subjects = [s for s in result.subjects if s.benchmark == bench.benchmark]
        rows = score_rows(bench, scores.get(bench.benchmark), subjects)
        paths.append(_write(folder / f"{model}_{bench.title}_score.csv", rows))
    paths.append(_write(folder / f"{model}_leaderboard.csv", leaderboard_rows(result)))
    return paths
