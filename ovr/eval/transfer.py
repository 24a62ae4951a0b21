"""The transfer story of a run: behaviours in the cold-start data, in the SFT model's and the RL
model's answers to text and to image questions, over the RL steps, and whether they pay.

OVR's claim is that reflection and verification learnt from *language-only* cold start show up in
*visual* answers, and that RL keeps the ones that pay. The same detectors
(:mod:`ovr.rewards.detectors`) count every stage: the dataset build counts the SFT split's assistant
turns (manifest ``splits.sft.behaviours``), eval counts responses per modality, the RL step counts
its rollouts per modality (``rl/behaviour/<text|image>/<name>`` in MLflow). This module reads the
three back, tabulates them, plots them and says in a sentence, computed from the numbers, whether
the run shows transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ovr.config import RunConfig
from ovr.eval.plots import figure as _figure
from ovr.eval.records import BehaviourRates, EvalResult
from ovr.eval.tables import fmt, table
from ovr.rewards.detectors import BEHAVIOURS

MODALITY_GROUPS = {"language": "text", "vision": "image"}  # eval's modality groups -> prompt modality
SHOWN = 0.01  # a behaviour "shows up" in a set of responses from this rate on
CHANGE = 0.02  # RL "amplified" or "suppressed" a behaviour when its rate moved by more than this
PAYS = 0.05  # a behaviour "pays" when responses showing it are this much more often correct
MIN_COMPARED = 10  # answers needed on each side (with / without a behaviour) to say whether it pays
SMOOTH = 5  # steps of the running mean drawn over the per-step RL behaviour rates


@dataclass
class Row:
    """Behaviour rates (and accuracy with / without each) of one set of responses."""

    stage: str  # "SFT data", "SFT model", "RL model"
    modality: str  # text | image
    responses: int
    rates: dict[str, float | None]
    accuracy_with: dict[str, float | None] = field(default_factory=dict)
    accuracy_without: dict[str, float | None] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading back
def sft_data_rates(cfg: RunConfig) -> dict | None:
    """``splits.sft.behaviours`` of the run's dataset manifest (written at build); for a dataset
    built before those figures existed, counted here from the stored SFT split's first items. None
    when the dataset is not in the store or has no SFT assistant turns."""
    from ovr.data.build import BEHAVIOUR_SAMPLE, trace_behaviours
    from ovr.data.reader import dataset_manifest, load_samples
    from ovr.store import Store, StoreError

    try:
        store = Store.from_config(cfg.store)
        manifest = dataset_manifest(store, cfg.data.dataset_id)
        sft = manifest.metadata.get("splits", {}).get("sft", {})
        rates = sft.get("behaviours")
        if rates is None and sft.get("count"):
            rates = trace_behaviours(load_samples(store, cfg.data.dataset_id, "sft", limit=BEHAVIOUR_SAMPLE))
    except (StoreError, OSError, ValueError):
        return None
    return rates if rates and rates.get("responses") else None


def rl_behaviour_keys() -> list[str]:
    """The MLflow keys of the RL step's behaviour rates (``rl/behaviour/<modality>/<name>``)."""
    return [f"rl/behaviour/{m}/{n}" for m in ("text", "image") for n in BEHAVIOURS]


def rl_behaviour_history(cfg: RunConfig, run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    """Per-step behaviour rates of the RL rollouts from the run's MLflow history (empty without one)."""
    if not cfg.tracking.enabled or run_id is None:
        return {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    out = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in rl_behaviour_keys()}
    return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- rows
def _model_rows(stage: str, result: EvalResult) -> list[Row]:
    rows = []
    for g in result.behaviour_by_modality:
        if g.group in MODALITY_GROUPS:
            rows.append(_row(stage, MODALITY_GROUPS[g.group], g))
    return sorted(rows, key=lambda r: r.modality != "text")


def _row(stage: str, modality: str, g: BehaviourRates) -> Row:
    pick = {n: g.rates.get(n) for n in BEHAVIOURS}
    return Row(
        stage,
        modality,
        g.responses,
        pick,
        {n: g.accuracy_with.get(n) for n in BEHAVIOURS},
        {n: g.accuracy_without.get(n) for n in BEHAVIOURS},
    )


def transfer_rows(results: Sequence[EvalResult], data: dict | None) -> list[Row]:
    """SFT data (text), then the SFT model and the RL model on text and on image questions.

    ``results`` are in training order; the SFT model is the first ``sft*`` checkpoint, the RL model
    the last other one."""
    rows = []
    if data:
        rows.append(Row("SFT data", "text", int(data["responses"]), {n: data.get(n) for n in BEHAVIOURS}))
    sft = next((r for r in results if r.label.startswith("sft")), None)
    rl = next((r for r in reversed(results) if not r.label.startswith("sft")), None)
    for stage, result in (("SFT model", sft), ("RL model", rl)):
        if result is not None:
            rows += _model_rows(stage, result)
    return rows


def _find(rows: Sequence[Row], stage: str, modality: str) -> Row | None:
    return next((r for r in rows if r.stage == stage and r.modality == modality), None)


def _count(row: Row, name: str) -> int:
    """Responses of ``row`` showing behaviour ``name``."""
    return round((row.rates.get(name) or 0.0) * row.responses)


# --------------------------------------------------------------------------- tables
def rates_table(rows: Sequence[Row]) -> str:
    """Share (%) of responses showing each behaviour, per stage and modality."""
    return table(
        ["stage", "questions", "responses"] + [f"{n} %" for n in BEHAVIOURS],
        [[r.stage, r.modality, str(r.responses)] + [fmt(r.rates.get(n)) for n in BEHAVIOURS] for r in rows],
    )


def pays_table(rows: Sequence[Row], name: str = "reflection") -> str:
    """Accuracy (%) of the model's responses with vs without behaviour ``name``."""
    body = []
    for r in rows:
        if r.stage == "SFT data":
            continue
        w, wo = r.accuracy_with.get(name), r.accuracy_without.get(name)
        gap = f"{100 * (w - wo):+.1f}" if w is not None and wo is not None else "–"
        body.append([r.stage, r.modality, f"{_count(r, name)} of {r.responses}", fmt(w), fmt(wo), gap])
    return table(
        [
            "model",
            "questions",
            f"answers with {name}",
            f"accuracy with {name} %",
            f"accuracy without {name} %",
            "gap (points)",
        ],
        body,
    )


# --------------------------------------------------------------------------- the verdict
def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _rate(rows: Sequence[Row], stage: str, modality: str, name: str) -> float | None:
    row = _find(rows, stage, modality)
    return row.rates.get(name) if row else None


def _sft_sentence(rows: Sequence[Row], name: str) -> str:
    d, st, si = (
        _rate(rows, s, m, name) for s, m in (("SFT data", "text"), ("SFT model", "text"), ("SFT model", "image"))
    )
    data = f"{_pct(d)} of the cold-start traces" if d is not None else "the cold-start data (not counted)"
    if si is None:
        return f"{name.capitalize()}: {data}; the SFT model was not evaluated on image questions."
    if (st or 0) < SHOWN and si < SHOWN:
        return (
            f"{name.capitalize()}: {data} show it, but the SFT model hardly does (text answers {_pct(st)}, "
            f"image answers {_pct(si)}): nothing to transfer."
        )
    if si >= SHOWN:
        ratio = f" (image / text {si / st:.2f})" if st else ""
        return (
            f"{name.capitalize()} learnt from text shows up in image answers: {data}, the SFT model's text "
            f"answers {_pct(st)}, its image answers {_pct(si)}{ratio}."
        )
    return (
        f"{name.capitalize()} does not transfer: {data}, the SFT model's text answers {_pct(st)}, but its "
        f"image answers only {_pct(si)}."
    )


def _pays(row: Row | None, name: str) -> tuple[str | None, str]:
    """("pays" | "costs" | "makes no clear difference" | None, the sentence part saying why)."""
    if row is None:
        return None, "no answers to compare"
    shown = _count(row, name)
    w, wo = row.accuracy_with.get(name), row.accuracy_without.get(name)
    if w is None or wo is None or min(shown, row.responses - shown) < MIN_COMPARED:
        return None, f"too few answers with and without it ({shown} of {row.responses}) to tell whether it pays"
    pays = "pays" if w - wo > PAYS else "costs" if wo - w > PAYS else "makes no clear difference"
    return (
        pays,
        f"answers with it were right {_pct(w)} of the time vs {_pct(wo)} without "
        f"({shown} of {row.responses} show it): it {pays}",
    )


def _rl_sentence(rows: Sequence[Row], name: str) -> str | None:
    """What RL did to behaviour ``name`` on image questions, and whether that follows what paid when
    it started (the SFT model's image answers)."""
    si, ri = _rate(rows, "SFT model", "image", name), _rate(rows, "RL model", "image", name)
    if si is None or ri is None or max(si, ri) < SHOWN:
        return None
    moved = "amplified" if ri - si > CHANGE else "suppressed" if si - ri > CHANGE else "kept"
    before, why = _pays(_find(rows, "SFT model", "image"), name)
    text = f"On image questions RL {moved} it ({_pct(si)} → {_pct(ri)} of the answers); before RL, {why}"
    judged = {
        ("pays", "amplified"): "RL kept the behaviour that pays",
        ("pays", "kept"): "RL kept the behaviour that pays",
        ("pays", "suppressed"): "RL dropped a behaviour that paid",
        ("costs", "suppressed"): "RL dropped a behaviour that cost accuracy",
        ("costs", "amplified"): "RL amplified a behaviour that cost accuracy",
        ("makes no clear difference", "suppressed"): "RL dropped a behaviour that did not pay",
    }.get((before, moved))
    after, why_after = _pays(_find(rows, "RL model", "image"), name)
    tail = f"; after RL, {why_after}" if after is not None else ""
    return f"{text}{'; ' + judged if judged else ''}{tail}."


def verdict(rows: Sequence[Row]) -> str:
    """The transfer story in sentences, every figure and word choice computed from ``rows``."""
    data = _find(rows, "SFT data", "text")
    taught = [n for n in BEHAVIOURS if data and (data.rates.get(n) or 0) >= SHOWN]
    names = taught or [n for n in BEHAVIOURS if any((r.rates.get(n) or 0) >= SHOWN for r in rows)]
    if not names:
        return "No behaviour shows up in the cold-start data or in any answer: there is no transfer to measure."
    seen = [
        n
        for n in names
        if (_rate(rows, "SFT model", "image", n) or 0) >= SHOWN or (_rate(rows, "RL model", "image", n) or 0) >= SHOWN
    ]
    verb = "shows" if len(seen) == 1 else "show"
    head = (
        f"This run shows transfer: {' and '.join(seen)} from the language-only cold start {verb} up in image answers."
        if seen
        else "This run shows no transfer: no behaviour of the cold-start data shows up in image answers "
        f"(threshold {100 * SHOWN:.0f} % of responses)."
    )
    parts = [head]
    for n in names:
        parts.append(_sft_sentence(rows, n))
        rl = _rl_sentence(rows, n)
        if rl:
            parts.append(rl)
    return " ".join(parts)


# --------------------------------------------------------------------------- figures
def rates_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Grouped bars: the share of responses showing each behaviour, per stage and modality."""
    if not rows:
        return None
    fig, (ax,) = _figure(width=max(6.0, 1.3 * len(rows)), height=3.8)
    width = 0.8 / len(BEHAVIOURS)
    for j, name in enumerate(BEHAVIOURS):
        ax.bar(
            [i + j * width for i in range(len(rows))], [100 * (r.rates.get(name) or 0) for r in rows], width, label=name
        )
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(rows))], [f"{r.stage}\n{r.modality}" for r in rows], fontsize=8
    )
    ax.set_ylabel("responses with behaviour (%)")
    ax.set_ylim(0, 118)
    ax.set_title("Behaviours: cold-start data → SFT model → RL model, text vs image", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", ncols=len(BEHAVIOURS))
    fig.tight_layout()
    fig.savefig(path)
    return path


def rl_curves_figure(history: dict[str, list[tuple[int, float]]], path: Path) -> Path | None:
    """Behaviour rates of the RL rollouts over the steps, one panel per prompt modality."""
    modalities = [m for m in ("text", "image") if any(k.startswith(f"rl/behaviour/{m}/") for k in history)]
    if not modalities:
        return None
    fig, axes = _figure(ncols=len(modalities), width=5.0)
    for ax, m in zip(axes, modalities, strict=True):
        for name in BEHAVIOURS:
            pts = sorted(history.get(f"rl/behaviour/{m}/{name}", []))
            if pts:
                steps, values = zip(*pts, strict=True)
                (line,) = ax.plot(
                    steps,
                    [100 * v for v in values],
                    alpha=0.35 if len(pts) >= 2 * SMOOTH else 1.0,
                    label=None if len(pts) >= 2 * SMOOTH else name,
                )
                if len(pts) >= 2 * SMOOTH:  # one step's batch is noisy: a running mean over SMOOTH steps
                    ax.plot(
                        steps[SMOOTH - 1 :],
                        [100 * sum(values[i - SMOOTH + 1 : i + 1]) / SMOOTH for i in range(SMOOTH - 1, len(values))],
                        color=line.get_color(),
                        label=f"{name} (mean of {SMOOTH} steps)",
                    )
        ax.set_title(f"RL rollouts, {m} prompts", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("responses with behaviour (%)")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- the section
def transfer_section(cfg: RunConfig, results: Sequence[EvalResult], run_id: str | None, figures_dir: Path) -> str:
    """The report's "Behaviour transfer" section (Markdown; figures written to ``figures_dir``)."""
    rows = transfer_rows(results, sft_data_rates(cfg))
    history = rl_behaviour_history(cfg, run_id)
    bars = rates_figure(rows, figures_dir / "transfer.png")
    curves = rl_curves_figure(history, figures_dir / "behaviour_rl.png")
    parts = ["## Behaviour transfer", verdict(rows)]
    if rows:
        parts += [
            "Share of responses showing each behaviour (detectors of `ovr.rewards.detectors`, the same for "
            "the data, eval and RL):",
            rates_table(rows),
        ]
    if bars:
        parts += [f"![behaviour transfer](figures/{bars.name})"]
    parts += ["### During RL"]
    if curves:
        parts += [
            "Share of the RL rollouts showing each behaviour, per step (`rl/behaviour/<modality>/<name>`):",
            f"![behaviours over RL steps](figures/{curves.name})",
        ]
    else:
        parts += ["No per-step behaviour metrics (rl/behaviour/*) in this run."]
    if any(r.stage != "SFT data" for r in rows):
        parts += ["### Does reflection pay?", pays_table(rows)]
    return "\n\n".join(parts)
