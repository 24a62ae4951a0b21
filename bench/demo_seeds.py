"""The demo across seeds: does RL learn in every one, and what range should the README quote?

Runs the whole local pipeline (``ovr run --local``, the DAG ``make demo`` runs) once per seed, each
in its own working folder with its own store and MLflow database, all from one tiny base model (the
stand-in for a pretrained checkpoint; ``model.tiny_seed`` stays fixed, the run's ``seed`` moves the
data, SFT and RL draws). Per seed it reads back what the run left: the RL reward curve from MLflow
(gain = mean of the last steps - mean of the first, as the report computes it), avg@k of the SFT
and RL checkpoints per benchmark, behaviour rates of the SFT data and of both models per modality,
and the wall time. The baseline of each run is its own SFT checkpoint: the ratio printed is RL
accuracy / SFT accuracy on each benchmark.

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --out bench-demo-seeds.md   # ~25 min on 2 cores
    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --read-only                  # tabulate finished runs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SeedRun:
    seed: int
    wall_s: float
    gain: tuple[float, float] | None = None
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> benchmark -> avg@k
    behaviour: dict[str, dict[str, float | None]] = field(default_factory=dict)  # "stage/modality" -> rates


def run_seed(recipe: Path, seed: int, root: Path, model_dir: Path, extra: list[str]) -> SeedRun:
    """One whole pipeline run in ``root/seed-<seed>``; its console goes to ``console.txt`` there."""
    work = root / f"seed-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    sets = [f"seed={seed}", f"model.path={model_dir}", *extra]
    cmd = [sys.executable, "-m", "ovr", "run", "--local", "--recipe", str(recipe)]
    cmd += [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}
    print(f"seed {seed}: {' '.join(cmd[1:])}  (console: {work / 'console.txt'})", flush=True)
    t0 = time.monotonic()
    with open(work / "console.txt", "w") as out:
        rc = subprocess.call(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    (work / "wall_s.txt").write_text(f"{wall:.1f}\n")
    if rc != 0:
        raise SystemExit(f"seed {seed}: the pipeline failed (exit {rc}); see {work / 'console.txt'}")
    return read_back(recipe, seed, work, model_dir, extra, wall)


def newest_run_dir(work: Path) -> Path:
    runs = sorted((work / ".ovr" / "kfp").glob("ovr-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"no pipeline run under {work / '.ovr' / 'kfp'}")
    return runs[-1]


def read_back(recipe: Path, seed: int, work: Path, model_dir: Path, extra: list[str], wall: float) -> SeedRun:
    """Figures of one finished run, from its eval results, its dataset manifest and MLflow."""
    from ovr.config import load_config
    from ovr.eval.records import EvalResult
    from ovr.eval.report import reward_gain, training_history, training_order
    from ovr.eval.transfer import sft_data_rates, transfer_rows
    from pipelines.local import absolute_overrides, run_ids

    overrides = absolute_overrides(recipe, [f"seed={seed}", f"model.path={model_dir}", *extra], work)
    cfg = load_config(recipe, overrides, use_env=False)
    run_dir = newest_run_dir(work)
    results = sorted(
        (EvalResult.load(p.parent) for p in run_dir.glob("evaluate-model*/**/result.json")), key=training_order
    )
    _, mlflow_run_id = run_ids(run_dir)
    out = SeedRun(seed, wall, gain=reward_gain(training_history(cfg, mlflow_run_id).get("rl/reward_mean", [])))
    for r in results:
        out.accuracy[r.label] = {s.benchmark: s.avg_at_k for s in r.benchmarks}
    for row in transfer_rows(results, sft_data_rates(cfg)):
        out.behaviour[f"{row.stage}/{row.modality}"] = row.rates
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown(runs: list[SeedRun]) -> str:
    """Per-seed table (gain, eval per checkpoint and benchmark, wall time), behaviours, and the range."""
    labels = sorted({lab for r in runs for lab in r.accuracy}, key=lambda s: (not s.startswith("sft"), s))
    benches = sorted({b for r in runs for acc in r.accuracy.values() for b in acc})
    cols = [f"{lab} {b}" for lab in labels for b in benches]
    lines = [
        "| seed | RL reward first→last | gain | "
        + " | ".join(f"{c} (%)" for c in cols)
        + " | RL/SFT ratio | wall (min) |",
        "|" + "---|" * (5 + len(cols)),
    ]
    for r in runs:
        g = f"{r.gain[0]:.3f}→{r.gain[1]:.3f} | {r.gain[1] - r.gain[0]:+.3f}" if r.gain else "- | -"
        accs = [r.accuracy.get(lab, {}).get(b) for lab in labels for b in benches]
        ratio = _ratio(r, labels, benches)
        lines.append(f"| {r.seed} | {g} | " + " | ".join(_pct(a) for a in accs) + f" | {ratio} | {r.wall_s / 60:.1f} |")
    lines += ["", "Behaviour rates (% of responses; SFT data: % of traces):", ""]
    names = sorted({n for r in runs for rates in r.behaviour.values() for n in rates})
    lines += ["| seed | set | " + " | ".join(names) + " |", "|" + "---|" * (2 + len(names))]
    for r in runs:
        for key, rates in r.behaviour.items():
            lines.append(f"| {r.seed} | {key} | " + " | ".join(_pct(rates.get(n)) for n in names) + " |")
    gains = [r.gain[1] - r.gain[0] for r in runs if r.gain]
    if gains:
        lines += [
            "",
            f"RL reward gain over {len(gains)} seed(s): {min(gains):+.3f} to {max(gains):+.3f}; "
            f"wall time {min(r.wall_s for r in runs) / 60:.1f} to {max(r.wall_s for r in runs) / 60:.1f} min.",
        ]
    return "\n".join(lines) + "\n"


def _ratio(r: SeedRun, labels: list[str], benches: list[str]) -> str:
    """RL / SFT avg@k per benchmark (the run's own SFT checkpoint is its baseline)."""
    sft = next((lab for lab in labels if lab.startswith("sft")), None)
    rl = next((lab for lab in reversed(labels) if not lab.startswith("sft")), None)
    if sft is None or rl is None:
        return "-"
    parts = []
    for b in benches:
        s, t = r.accuracy.get(sft, {}).get(b), r.accuracy.get(rl, {}).get(b)
        parts.append(f"{b} {t / s:.2f}x" if s and t is not None else f"{b} -")
    return ", ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny-cpu.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--root", default=str(REPO / ".ovr" / "seeds"), help="One working folder per seed under it.")
    p.add_argument("--model", default=str(REPO / ".ovr" / "models" / "tiny"), help="The shared tiny base model.")
    p.add_argument("--set", dest="sets", action="append", default=[], help="Extra recipe overrides.")
    p.add_argument("--out", default=None, help="Also write the Markdown tables here.")
    p.add_argument("--read-only", action="store_true", help="Tabulate the seeds' finished runs without rerunning them.")
    a = p.parse_args()
    recipe, root, model_dir = Path(a.recipe).resolve(), Path(a.root).resolve(), Path(a.model).resolve()
    runs = []
    for seed in a.seeds:
        if a.read_only:
            work = root / f"seed-{seed}"
            wall = float((work / "wall_s.txt").read_text()) if (work / "wall_s.txt").is_file() else 0.0
            runs.append(read_back(recipe, seed, work, model_dir, a.sets, wall))
        else:
            runs.append(run_seed(recipe, seed, root, model_dir, a.sets))
            print(markdown(runs[-1:]), flush=True)
    text = markdown(runs)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
