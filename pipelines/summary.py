"""The short summary a local pipeline run ends with: accuracy SFT vs RL per benchmark, the RL reward
from start to end, behaviour rates when the eval results carry them, and where everything is.

:func:`gather_summary` reads the run's eval results (``result.json`` of each eval task's output),
MLflow and the store; :func:`render_summary` prints it with rich (a few tables, ~20-40 lines).
Behaviour figures are read generically: any numeric field of an eval result whose name path
contains "behaviour" (rates preferred over counts), or else MLflow metrics whose names contain it,
so new behaviour metrics show up here without a change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

#: behaviour rows shown at most (the report has all of them)
MAX_BEHAVIOUR_ROWS = 12
SKIPPED_LEAVES = {"responses", "questions", "unknown", "step"}


@dataclass
class RunSummary:
    labels: list[str] = field(default_factory=list)  # checkpoints in training order (sft, rl)
    k: int | None = None
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # benchmark -> label -> avg@k
    reward: tuple[float, float] | None = None  # RL reward_mean at start and end
    reward_note: str = ""
    behaviour: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> label -> value
    behaviour_more: int = 0  # rows left out for length
    behaviour_zero: int = 0  # figures at 0 in every eval, not shown
    places: list[tuple[str, str]] = field(default_factory=list)  # (what, where)
    notes: list[str] = field(default_factory=list)  # stages that resumed or had nothing to do
    run_id: str | None = None  # the ovr run id (resume it with --resume-from)


def _leaves(value, path: tuple[str, ...] = ()):
    """(path, number) of every numeric leaf; list items are named by their ``group``/``name``."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, path + (str(k),))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            name = str(item.get("group") or item.get("name") or i) if isinstance(item, dict) else str(i)
            yield from _leaves(item, path + (name,))


def behaviour_values(result: dict) -> dict[str, float]:
    """``{"behaviour_by_modality/vision/kw_wait": 0.5, ...}``: the numeric behaviour fields of one
    eval result (rates only, when it has rates), in the result's order."""
    fields = []
    for key, value in result.items():
        if "behaviour" in key.lower():
            leaves = {p: v for p, v in _leaves(value, (key,)) if p[-1] not in SKIPPED_LEAVES}
            fields.append(leaves)
    found = {p: v for leaves in fields for p, v in leaves.items()}
    if any("rates" in p for p in found):
        found = {p: v for p, v in found.items() if "rates" in p}
    return {"/".join(x for x in p if x != "rates"): v for p, v in found.items()}


def _eval_results(paths: list[Path]) -> list[dict]:
    results = [json.loads(p.read_text()) for p in paths if p.is_file()]
    # cold start before RL, then by step (the report's order)
    return sorted(results, key=lambda r: (0 if str(r.get("label", "")).startswith("sft") else 1, r.get("step", 0)))


def _reward(client, run_id: str) -> tuple[tuple[float, float] | None, str]:
    from ovr.eval.report import GAIN_HEAD, GAIN_TAIL, reward_gain

    curve = [(m.step, m.value) for m in client.get_metric_history(run_id, "rl/reward_mean")]
    if not curve:
        return None, ""
    gain = reward_gain(curve)
    if gain is not None:
        return gain, f"mean of the first {GAIN_HEAD} vs the last {GAIN_TAIL} of {len(curve)} steps"
    values = [v for _, v in sorted(curve)]
    return (values[0], values[-1]), f"first vs last of {len(curve)} steps"


def _mlflow_behaviour(client, run_id: str) -> dict[str, dict[str, float]]:
    metrics = client.get_run(run_id).data.metrics  # latest value of each
    return {k: {"latest": v} for k, v in sorted(metrics.items()) if "behaviour" in k.lower()}


def gather_summary(
    result_files: list[Path], tracking_uri: str | None, run_id: str | None, places: list[tuple[str, str]]
) -> RunSummary:
    """The summary of a finished run (anything missing is left out, never an error)."""
    out = RunSummary(places=list(places))
    behaviour: dict[str, dict[str, float]] = {}
    for r in _eval_results(result_files):
        label = str(r.get("label", "?"))
        out.labels.append(label)
        out.k = r.get("k", out.k)
        for score in r.get("benchmarks", []):
            out.accuracy.setdefault(score["benchmark"], {})[label] = float(score["avg_at_k"])
        for name, value in behaviour_values(r).items():
            behaviour.setdefault(name, {})[label] = value
    client = None
    if tracking_uri and run_id:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        out.reward, out.reward_note = _reward(client, run_id)
        if not behaviour:
            behaviour = _mlflow_behaviour(client, run_id)
    rows = _distinct_rows(behaviour)
    out.behaviour = dict(list(rows.items())[:MAX_BEHAVIOUR_ROWS])
    out.behaviour_more = len(rows) - len(out.behaviour)
    out.behaviour_zero = len(behaviour) - len(rows) - _duplicates(behaviour)
    return out


def _duplicates(rows: dict[str, dict[str, float]]) -> int:
    seen, dup = set(), 0
    for name, values in rows.items():
        key = (name.rsplit("/", 1)[-1], tuple(sorted(values.items())))
        dup += key in seen and any(values.values())
        seen.add(key)
    return dup


def _distinct_rows(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Rows with some non-zero value, each behaviour's values once (a breakdown by benchmark
    equals the one by modality when there is one benchmark per modality)."""
    seen, out = set(), {}
    for name, values in rows.items():
        key = (name.rsplit("/", 1)[-1], tuple(sorted(values.items())))
        if any(values.values()) and key not in seen:
            out[name] = values
        seen.add(key)
    return out


def _table(title: str, first: str, columns: list[str], rows: dict[str, dict[str, float]], pct: bool) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column(first)
    for c in columns:
        table.add_column(c, justify="right")
    if len(columns) == 2:
        table.add_column("Δ", justify="right")
    fmt = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    for name, values in rows.items():
        cells = [fmt(values[c]) if c in values else "-" for c in columns]
        if len(columns) == 2 and all(c in values for c in columns):
            d = values[columns[1]] - values[columns[0]]
            cells.append(f"{100 * d:+.1f}" if pct else f"{d:+.3f}")
        elif len(columns) == 2:
            cells.append("-")
        table.add_row(name, *cells)
    return table


def render_summary(console: Console, s: RunSummary) -> None:
    """Print the summary: the run, what stages resumed or skipped, accuracy table, reward line,
    behaviour table, locations."""
    if s.run_id:
        console.print(f"run {s.run_id} (continue it: --resume-from {s.run_id})", markup=False, highlight=False)
    for note in s.notes:
        console.print(f"  {note}", markup=False, highlight=False, soft_wrap=True)
    if s.accuracy:
        k = f" (avg@{s.k}, %)" if s.k else " (%)"
        console.print(_table(f"Eval accuracy{k}", "benchmark", s.labels, s.accuracy, pct=True))
    if s.reward is not None:
        start, end = s.reward
        console.print(
            f"RL reward (mean): {start:.3f} → {end:.3f} ({end - start:+.3f}; {s.reward_note})", soft_wrap=True
        )
    if s.behaviour:
        columns = s.labels if any(set(v) & set(s.labels) for v in s.behaviour.values()) else ["latest"]
        console.print(_table("Behaviour rates", "behaviour", columns, s.behaviour, pct=False))
    notes = [f"{s.behaviour_more} more in the report"] if s.behaviour_more else []
    notes += [f"{s.behaviour_zero} at 0 in every eval not shown"] if s.behaviour_zero else []
    if notes:
        console.print(f"  (behaviour figures: {'; '.join(notes)})", soft_wrap=True)
    width = max((len(what) for what, _ in s.places), default=0)
    for what, where in s.places:
        console.print(f"{what:<{width}} : {where}", markup=False, highlight=False, soft_wrap=True)
