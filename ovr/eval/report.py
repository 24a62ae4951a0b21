"""The run report: Markdown + PNG figures, logged to MLflow, ready to be a KFP Markdown artifact.

``build_report`` writes into ``out_dir``:

- ``report.md`` — accuracy tables (avg@k per benchmark across checkpoints, per subject, truncation,
  length), each benchmark in its own metric beside the OVR paper's numbers with its denominator and
  grading paths, behaviour emergence and transfer tables, training curves and figures referenced by
  relative paths (``figures/*.png``);
- ``report_inline.md`` — the same text with every figure embedded as a base64 data URL, a single
  self-contained file for viewers that cannot follow relative links (the KFP UI);
- ``report.html`` — that file as one standalone styled page (:mod:`ovr.eval.html`);
- ``figures/accuracy.png``, ``figures/training.png`` (reward / accuracy / length / SFT loss curves
  read back from the run's MLflow history), ``figures/behaviour.png`` (emergence rates across
  checkpoints), ``figures/transfer.png`` and ``figures/behaviour_rl.png`` (the behaviour transfer
  section of :mod:`ovr.eval.transfer`: cold-start data -> SFT -> RL, text vs image, and per RL step).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path

from ovr.config import RunConfig
from ovr.context import RunContext
from ovr.eval.html import write_html_report
from ovr.eval.plots import figure as _figure
from ovr.eval.records import EvalResult
from ovr.eval.tables import (
    behaviour_table,
    comparison_table,
    grading_table,
    leaderboard_table,
    score_table,
    transfer_table,
)
from ovr.eval.transfer import transfer_section

REPORT_FILE = "report.md"
INLINE_FILE = "report_inline.md"
CURVES: dict[str, str] = {
    "rl/reward_mean": "RL reward (mean)",
    "rl/accuracy": "RL accuracy",
    "rl/response_len_mean": "RL response length (tokens)",
    "sft/loss": "SFT loss",
}
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


# --------------------------------------------------------------------------- figures
def accuracy_figure(results: Sequence[EvalResult], path: Path) -> Path:
    """Grouped bars: avg@k per benchmark, one bar per checkpoint."""
    benches = sorted({s.benchmark for r in results for s in r.benchmarks})
    fig, (ax,) = _figure(width=max(6.0, 1.2 * len(benches) * max(1, len(results)) ** 0.5))
    width = 0.8 / len(results)
    for j, r in enumerate(results):
        scores = {s.benchmark: s.avg_at_k for s in r.benchmarks}
        xs = [i + j * width for i in range(len(benches))]
        ax.bar(xs, [100 * scores.get(b, 0.0) for b in benches], width, label=f"{r.label} (avg@{r.k})")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(benches))], benches, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 118)
    ax.set_title("Accuracy by benchmark")
    ax.legend(fontsize=8, loc="upper left", ncols=min(len(results), 4))
    fig.tight_layout()
    fig.savefig(path)
    return path


def curves_figure(history: dict[str, list[tuple[int, float]]], path: Path) -> Path | None:
    """One panel per training metric that has a history; None when there is none."""
    present = [k for k in CURVES if history.get(k)]
    if not present:
        return None
    fig, axes = _figure(ncols=len(present), width=4.0)
    for ax, key in zip(axes, present, strict=True):
        steps, values = zip(*sorted(history[key]), strict=True)
        ax.plot(steps, values, marker="." if len(steps) < 50 else None)
        ax.set_title(CURVES[key], fontsize=10)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    return path


def behaviour_figure(results: Sequence[EvalResult], path: Path) -> Path | None:
    """Emergence rate of each behaviour across checkpoints, vision (solid) and language (dashed)."""
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for x, r in enumerate(results):
        for g in r.behaviour_by_modality:
            for name, rate in g.rates.items():
                if rate is not None:
                    series.setdefault((name, g.group), []).append((x, 100 * rate))
    if not series:
        return None
    from matplotlib import colormaps

    names = sorted({name for name, _ in series})
    palette = colormaps["tab20"].resampled(max(len(names), 2))
    fig, (ax,) = _figure(width=9.0, height=4.0)
    for (name, group), pts in sorted(series.items()):
        xs, ys = zip(*pts, strict=True)
        ax.plot(
            xs,
            ys,
            "-" if group == "vision" else "--",
            marker="o" if group == "vision" else "s",
            color=palette(names.index(name)),
            label=f"{name} ({group})",
        )
    ax.set_xticks(range(len(results)), [r.label for r in results], rotation=20)
    ax.set_ylabel("responses with behaviour (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("Behaviour emergence across checkpoints (solid: vision, dashed: language)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- text
def inline_images(markdown: str, base_dir: Path) -> str:
    """Replace ``![alt](figures/x.png)`` links by base64 data URLs (self-contained Markdown)."""

    def embed(m: re.Match) -> str:
        data = base64.b64encode((base_dir / m.group(2)).read_bytes()).decode()
        return f"![{m.group(1)}](data:image/png;base64,{data})"

    return _IMAGE.sub(embed, markdown)


def training_history(cfg: RunConfig, run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    """The run's training curves (``CURVES`` keys) from MLflow; empty without tracking or run."""
    if not cfg.tracking.enabled or run_id is None:
        return {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in CURVES}


def training_order(result: EvalResult) -> tuple[int, int]:
    """Sort key of checkpoints in training order: cold-start (``sft*`` labels) before RL, then by
    step. SFT and RL count their steps separately (a 160-step SFT precedes RL step 80)."""
    return (0 if result.label.startswith("sft") else 1, result.step)


GAIN_HEAD, GAIN_TAIL = 3, 5  # steps averaged at each end of the RL reward curve


def reward_gain(
    curve: Sequence[tuple[int, float]], head: int = GAIN_HEAD, tail: int = GAIN_TAIL
) -> tuple[float, float] | None:
    """(mean of the first ``head`` values, mean of the last ``tail``) of a per-step curve: the RL
    learning figure, averaged because one step's batch mean is noisy. ``None`` if the curve is
    shorter than ``head + tail`` (the two windows would overlap)."""
    values = [v for _, v in sorted(curve)]
    if len(values) < head + tail:
        return None
    return sum(values[:head]) / head, sum(values[-tail:]) / tail


def report_markdown(
    cfg: RunConfig,
    results: Sequence[EvalResult],
    figures: dict[str, Path | None],
    history: dict[str, list[tuple[int, float]]],
    run_id: str | None,
    transfer: str = "",
) -> str:
    """The report text; figures are linked relative to the report's folder."""
    last = results[-1]
    parts = [
        f"# ovr run report: {cfg.name}",
        f"MLflow run: `{run_id}`" if run_id else "No MLflow run (tracking disabled).",
        "## Accuracy",
        comparison_table(results),
        "![accuracy](figures/accuracy.png)",
        f"### {last.label}: details",
        score_table(last.benchmarks, last.k),
    ]
    if last.leaderboard:
        parts += [
            "## Benchmarks in their own metrics",
            "Each benchmark as its leaderboard scores it (MathVerse vision-only, We-Math strict, DynaMath "
            "worst-case; avg over the k samples), beside the OVR paper's published numbers; the denominator is "
            "the items scored against the benchmark's published size.",
            leaderboard_table(results),
            f"### {last.label}: grading paths",
            "Items graded by rule (math-verify and exact rewritings), by normalised string match, by the LLM "
            "judge, or not at all:",
            grading_table(last.leaderboard),
        ]
    if last.subjects:
        parts += [f"### {last.label}: by subject", score_table(last.subjects, last.k, subjects=True)]
    parts += ["## Training curves"]
    if figures.get("training"):
        finals = [f"{CURVES[k]}: {v[-1][1]:.4g} at step {v[-1][0]}" for k, v in history.items() if v]
        parts += ["; ".join(finals) + "."]
        gain = reward_gain(history.get("rl/reward_mean", []))
        if gain:
            parts += [
                f"RL reward: mean {gain[0]:.3f} over the first {GAIN_HEAD} steps, {gain[1]:.3f} over the "
                f"last {GAIN_TAIL} "
                f"({gain[1] - gain[0]:+.3f})."
            ]
        parts += ["![training curves](figures/training.png)"]
    else:
        parts += ["No training metrics (rl/*, sft/loss) in this run."]
    parts += ["## Behaviours"]
    if last.behaviour:
        parts += [
            f"Emergence rate (% of responses with count > 0) at {last.label}:",
            behaviour_table(list(last.behaviour) + list(last.behaviour_by_modality)),
        ]
    if last.transfer:
        parts += ["Transfer rate (emergence on image questions / on text questions):", transfer_table(last.transfer)]
    if figures.get("behaviour"):
        parts += ["![behaviour rates](figures/behaviour.png)"]
    if transfer:
        parts += [transfer]
    settings = "\n".join(
        f"- {r.label} (step {r.step}): k={r.k}, temperature={r.temperature}, top_p={r.top_p}, "
        f"max_tokens={r.max_tokens}; {r.questions} questions, {r.responses} responses, "
        f"{r.questions_per_s:.2f} questions/s"
        for r in results
    )
    parts += ["## Eval settings", settings]
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- entry
def build_report(cfg: RunConfig, results: Sequence[EvalResult], out_dir: Path, ctx: RunContext | None = None) -> Path:
    """Write the report (see module doc) for ``results`` (checkpoints in order), log it into the run's
    MLflow run (``ctx``'s, else the one the eval results name); returns report.md."""
    if not results:
        raise ValueError("a report needs at least one eval result")
    results = sorted(results, key=training_order)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    named = next((r.mlflow_run_id for r in reversed(results) if r.mlflow_run_id), None)
    run_id = (ctx.mlflow_run_id if ctx is not None else None) or named
    history = training_history(cfg, run_id)

    figures = {
        "accuracy": accuracy_figure(results, out_dir / "figures/accuracy.png"),
        "training": curves_figure(history, out_dir / "figures/training.png"),
        "behaviour": behaviour_figure(results, out_dir / "figures/behaviour.png"),
    }
    transfer = transfer_section(cfg, results, run_id, out_dir / "figures")
    text = report_markdown(cfg, results, figures, history, run_id, transfer)
    report = out_dir / REPORT_FILE
    report.write_text(text)
    (out_dir / INLINE_FILE).write_text(inline_images(text, out_dir))
    write_html_report(out_dir)  # report.html: the same, one standalone page for a browser

    if cfg.tracking.enabled:
        from ovr.tracking import Tracker

        run = RunContext.new(cfg.name, ctx.run_id if ctx is not None else None, mlflow_run_id=run_id)
        with Tracker.open(cfg, "report", run) as tracker:
            tracker.log_artifact(out_dir, "report")
    return report
