"""The demo's measured figures as one file that README quotes, tied to the inputs they were measured on.

``bench/demo_seeds.py`` writes ``bench/results/demo_seeds.json``: the command, the machine's load
while it ran, a content hash of every file that decides what the demo trains on (the tiny recipe,
the procedural data generators, the prompt template, the tiny base model's builder), the per-seed
figures and their range over seeds. README's demo section is rendered from that file
(:func:`readme_block`, between :data:`README_START` and :data:`README_END`), and
``tests/bench/test_demo_results.py`` fails when README's block differs from the rendering or when
one of those inputs has changed since the measurement: a recipe or generator change forces a
re-measure (``bench/demo_seeds.py --seeds 0 1 2 3 4 --update-readme``).

>>> fmt_range([0.25, 0.5])
'25.0–50.0'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from ovr.eval.report import GAIN_HEAD, GAIN_TAIL

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "demo_seeds.json"
README = REPO / "README.md"
#: files whose content decides the demo's data, base model and settings (repo-relative)
DEMO_INPUTS = (
    "recipes/tiny-cpu.yaml",
    "ovr/data/synthetic.py",
    "ovr/data/text_tasks.py",
    "ovr/data/visual_tasks.py",
    "ovr/data/prompts.py",
    "ovr/models/tiny.py",
)
README_START = "<!-- demo-seeds:start (rendered from bench/results/demo_seeds.json by bench/demo_seeds.py) -->"
README_END = "<!-- demo-seeds:end -->"
#: acceptance of one seed: RL reward gain, image eval points SFT -> RL, SFT model reflection on
#: text as a share of the traces' rate, SFT model reflection on images
MIN_GAIN, MIN_IMAGE_POINTS, MIN_TEXT_SHARE, MIN_IMAGE_REFLECTION = 0.2, 20.0, 0.5, 0.05
IMAGE_BENCH, TEXT_BENCH = "synthetic_visual", "synthetic_text"


def input_hashes(repo: Path = REPO) -> dict[str, str]:
    """sha256 of each of :data:`DEMO_INPUTS` (``"missing"`` for a file that is not there)."""
    out = {}
    for rel in DEMO_INPUTS:
        path = repo / rel
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    return out


def changed_inputs(recorded: dict[str, str], repo: Path = REPO) -> list[str]:
    """The inputs whose content differs from ``recorded`` (also those added to or dropped from the list)."""
    now = input_hashes(repo)
    return sorted(p for p in set(now) | set(recorded) if now.get(p) != recorded.get(p))


# --------------------------------------------------------------------------- one seed's figures
def _pick(acc: dict[str, dict[str, float]], sft: bool) -> dict[str, float]:
    """Accuracy per benchmark of the SFT checkpoint (first ``sft*`` label) or of the RL one (last other)."""
    labels = sorted(acc, key=lambda s: (not s.startswith("sft"), s))
    chosen = [lab for lab in labels if lab.startswith("sft") == sft]
    if not chosen:
        return {}
    return acc[chosen[0] if sft else chosen[-1]]


def seed_record(seed: int, wall_s: float, gain, steps: int, accuracy, behaviour, load: float | None) -> dict:
    """The JSON record of one seed (figures as fractions; ``gain`` = (first, last) reward means)."""
    sft, rl = _pick(accuracy, True), _pick(accuracy, False)
    rec = {
        "seed": seed,
        "wall_s": round(wall_s, 1),
        "load_avg": None if load is None else round(load, 2),
        "rl_steps": steps,
        "reward_first": None if gain is None else round(gain[0], 4),
        "reward_last": None if gain is None else round(gain[1], 4),
        "eval": {"sft": sft, "rl": rl},
        "behaviour": {k: dict(rates) for k, rates in behaviour.items()},
    }
    rec["checks"] = checks(rec)
    return rec


def checks(rec: dict) -> dict[str, bool]:
    """The issue's acceptance for one seed, each named."""
    gain = None if rec["reward_first"] is None else rec["reward_last"] - rec["reward_first"]
    sft_img, rl_img = rec["eval"]["sft"].get(IMAGE_BENCH), rec["eval"]["rl"].get(IMAGE_BENCH)
    beh = rec["behaviour"]
    data = (beh.get("SFT data/text") or {}).get("reflection")
    text = (beh.get("SFT model/text") or {}).get("reflection")
    image = (beh.get("SFT model/image") or {}).get("reflection")
    return {
        f"gain >= {MIN_GAIN}": gain is not None and gain >= MIN_GAIN,
        f"image eval +{MIN_IMAGE_POINTS:g} points": sft_img is not None
        and rl_img is not None
        and 100 * (rl_img - sft_img) >= MIN_IMAGE_POINTS,
        "SFT reflection on text >= half the traces'": data is not None
        and text is not None
        and text >= MIN_TEXT_SHARE * data,
        f"SFT reflection on images >= {100 * MIN_IMAGE_REFLECTION:g} %": image is not None
        and image >= MIN_IMAGE_REFLECTION,
    }


def results_doc(records: Sequence[dict], command: str, repo: Path = REPO) -> dict:
    """The results file's content: how it was measured, on which inputs, per seed, and the summary."""
    loads = [r["load_avg"] for r in records if r["load_avg"] is not None]
    return {
        "command": command,
        "cores": _cores(),
        "load_avg": round(sum(loads) / len(loads), 2) if loads else None,
        "inputs": input_hashes(repo),
        "seeds": list(records),
        "passed": sum(all(r["checks"].values()) for r in records),
    }


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def load(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text())


def save(doc: dict, path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- README's block
def fmt_range(values: Sequence[float | None], scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
    """``lo–hi`` of the known values (one value when they agree; ``-`` when none is known)."""
    known = sorted(v * scale for v in values if v is not None)
    if not known:
        return "-"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    lo, hi = f.format(known[0]), f.format(known[-1])
    return lo if lo == hi else f"{lo}–{hi}"


def _rows(recs: Sequence[dict]) -> list[tuple[str, str]]:
    """(row name, cell) of the README table over ``recs`` (one record: that seed's own figures)."""

    def r(key):
        return fmt_range([x[key] for x in recs], 1, 3)

    def ev(stage, bench):
        return fmt_range([x["eval"][stage].get(bench) for x in recs])

    def beh(key, name):
        return fmt_range([(x["behaviour"].get(key) or {}).get(name) for x in recs])

    def pair(key):
        return f"{beh(key, 'reflection')} / {beh(key, 'verification')}"

    gains = [x["reward_last"] - x["reward_first"] for x in recs if x["reward_first"] is not None]
    steps = fmt_range([x["rl_steps"] for x in recs], 1, 0)
    return [
        (
            f"RL reward, mean of the first {GAIN_HEAD} → last {GAIN_TAIL} of {steps} steps",
            f"{r('reward_first')} → {r('reward_last')} (gain {fmt_range(gains, 1, 3, sign=True)})",
        ),
        ("eval avg@4, image questions, SFT → RL (%)", f"{ev('sft', IMAGE_BENCH)} → {ev('rl', IMAGE_BENCH)}"),
        ("eval avg@4, text questions, SFT → RL (%)", f"{ev('sft', TEXT_BENCH)} → {ev('rl', TEXT_BENCH)}"),
        ("reflection / verification, SFT data (traces, %)", pair("SFT data/text")),
        ("reflection / verification, SFT model on text (%)", pair("SFT model/text")),
        ("reflection / verification, SFT model on images (%)", pair("SFT model/image")),
        ("reflection / verification, RL model on text (%)", pair("RL model/text")),
        ("reflection / verification, RL model on images (%)", pair("RL model/image")),
        ("wall time of the pipeline (min)", fmt_range([x["wall_s"] / 60 for x in recs], 1)),
    ]


def readme_block(doc: dict, default_seed: int = 0) -> str:
    """README's demo figures: the range over the seeds and the default seed's own column."""
    recs = doc["seeds"]
    own = [x for x in recs if x["seed"] == default_seed]
    head = f"| | range over {len(recs)} seeds | seed {default_seed} (`make demo`) |"
    lines = [
        README_START,
        f"Measured with `{doc['command']}`: one whole `ovr run --local --set seed=N` per seed, from the",
        f"shared tiny base model; load average {doc['load_avg']} on {doc['cores']} cores while it ran. "
        f"{doc['passed']} of {len(recs)} seeds pass every check",
        f"of the demo's acceptance (gain >= {MIN_GAIN}, image eval +{MIN_IMAGE_POINTS:g} points, the SFT model "
        f"reflecting in >= {MIN_TEXT_SHARE:g} x the traces' rate on text and >= {100 * MIN_IMAGE_REFLECTION:g} % "
        "on images):",
        "",
        head,
        "|---|---|---|",
    ]
    own_rows = dict(_rows(own)) if own else {}
    lines += [f"| {name} | {cell} | {own_rows.get(name, '-')} |" for name, cell in _rows(recs)]
    missed = [
        f"seed {x['seed']}: {', '.join(sorted(name for name, ok in x['checks'].items() if not ok))}"  # file order
        for x in recs
        if not all(x["checks"].values())
    ]
    if missed:
        lines += ["", "Checks missed — " + "; ".join(missed) + "."]
    lines.append(README_END)
    return "\n".join(lines)


def quoted_block(readme: str) -> str | None:
    """README's rendered block (markers included), or None when it has none."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        return None
    return readme[start : end + len(README_END)]


def with_block(readme: str, block: str) -> str:
    """``readme`` with its rendered block replaced by ``block``."""
    old = quoted_block(readme)
    if old is None:
        raise ValueError(f"README has no demo block: put {README_START!r} and {README_END!r} where it goes")
    return readme.replace(old, block)
