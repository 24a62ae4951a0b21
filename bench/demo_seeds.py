"""The demo across seeds: does RL learn in every one, and what range should the README quote?

Runs the whole local pipeline (``ovr run --local``, the DAG ``make demo`` runs) once per seed, each
in its own working folder with its own store and MLflow database, all from one tiny base model (the
stand-in for a pretrained checkpoint; ``model.tiny_seed`` stays fixed, the run's ``seed`` moves the
data, SFT and RL draws). Per seed it reads back what the run left: the RL reward curve from MLflow
(gain = mean of the last steps - mean of the first, as the report computes it), avg@k of the SFT
and RL checkpoints per benchmark, behaviour rates of the SFT data and of both models per modality,
and the wall time with the machine's load average while the seed ran. The baseline of each run is
its own SFT checkpoint: the ratio printed is RL accuracy / SFT accuracy on each benchmark.

It writes ``bench/results/demo_seeds.json`` (:mod:`bench.demo_results`: the figures, the acceptance
checks per seed, and a content hash of the recipe and data generators they were measured on);
``--update-readme`` also renders README's demo block from it (a test keeps the two equal).

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 3 4 --update-readme   # ~40 min on 2 idle cores
    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --read-only --results /tmp/x.json  # tabulate finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import demo_results  # noqa: E402


@dataclass
class SeedRun:
    seed: int
    wall_s: float
    gain: tuple[float, float] | None = None
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> benchmark -> avg@k
    behaviour: dict[str, dict[str, float | None]] = field(default_factory=dict)  # "stage/modality" -> rates
    steps: int = 0  # RL steps on the reward curve
    load: float | None = None  # mean 1-minute load average while the seed ran

    def record(self) -> dict:
        """This seed's entry of the results file."""
        return demo_results.seed_record(
            self.seed, self.wall_s, self.gain, self.steps, self.accuracy, self.behaviour, self.load
        )


class LoadSampler:
    """Mean of the 1-minute load average, sampled every ``every_s`` seconds while in a ``with`` block."""

    def __init__(self, every_s: float = 20.0):
        self.every_s, self.samples, self._stop = every_s, [], threading.Event()

    def __enter__(self) -> LoadSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def run_seed(recipe: Path, seed: int, root: Path, model_dir: Path, extra: list[str]) -> SeedRun:
    """One whole pipeline run in ``root/seed-<seed>``; its console goes to ``console.txt`` there."""
    work = root / f"seed-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    sets = [f"seed={seed}", f"model.path={model_dir}", *extra]
    cmd = [sys.executable, "-m", "ovr", "run", "--local", "--recipe", str(recipe)]
    cmd += [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}
    print(f"seed {seed}: {' '.join(cmd[1:])}  (console: {work / 'console.txt'})", flush=True)
    (work / "inputs.json").write_text(json.dumps(demo_results.input_hashes(), indent=1) + "\n")
    t0 = time.monotonic()
    with open(work / "console.txt", "w") as out, LoadSampler() as load:
        rc = subprocess.call(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    (work / "wall_s.txt").write_text(f"{wall:.1f}\n")
    (work / "load_avg.txt").write_text(f"{load.mean:.2f}\n")
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
    curve = training_history(cfg, mlflow_run_id).get("rl/reward_mean", [])
    out = SeedRun(seed, wall, gain=reward_gain(curve), steps=len(curve))
    if (work / "load_avg.txt").is_file():
        out.load = float((work / "load_avg.txt").read_text())
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
    p.add_argument(
        "--results",
        default=None,
        help=f"Results file (default: {demo_results.RESULTS.relative_to(REPO)} for the default recipe without --set).",
    )
    p.add_argument("--update-readme", action="store_true", help="Render README's demo block from the results file.")
    a = p.parse_args()
    recipe, root, model_dir = Path(a.recipe).resolve(), Path(a.root).resolve(), Path(a.model).resolve()
    default_run = recipe == (REPO / "recipes" / "tiny-cpu.yaml").resolve() and not a.sets
    results = Path(a.results).resolve() if a.results else (demo_results.RESULTS if default_run else None)
    if a.update_readme and results != demo_results.RESULTS:
        raise SystemExit("--update-readme quotes the default results file: run the default recipe without --set")
    if not a.read_only:
        ensure_model(model_dir)
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
    if results is not None:
        write_results(runs, root, results, a)


def ensure_model(model_dir: Path) -> None:
    """Build the shared tiny base model when it is not there (every seed starts from it)."""
    if not (model_dir / "config.json").is_file():
        from ovr.models.tiny import make_tiny

        print(f"building the tiny base model in {model_dir}", flush=True)
        make_tiny(model_dir)


def write_results(runs: list[SeedRun], root: Path, results: Path, a: argparse.Namespace) -> None:
    """The results file (and README's block with ``--update-readme``), on the inputs the runs started with."""
    recorded = {json.dumps(json.loads(p.read_text()), sort_keys=True) for r in runs if (p := inputs_file(root, r.seed))}
    if len(recorded) > 1:
        raise SystemExit("the seeds ran on different recipes or generators: rerun them all")
    command = "bench/demo_seeds.py --seeds " + " ".join(str(r.seed) for r in runs)
    command += "".join(f" --set {shlex.quote(s)}" for s in a.sets)
    doc = demo_results.results_doc([r.record() for r in runs], command)
    if recorded:
        doc["inputs"] = json.loads(recorded.pop())
    changed = demo_results.changed_inputs(doc["inputs"])
    if changed:
        print(f"note: {', '.join(changed)} changed since these runs started; the results file records what they ran on")
    demo_results.save(doc, results)
    print(f"results: {results} ({doc['passed']} of {len(runs)} seeds pass every check)")
    if a.update_readme:
        readme = demo_results.README.read_text()
        demo_results.README.write_text(demo_results.with_block(readme, demo_results.readme_block(doc)))
        print(f"README's demo block rendered from {results.name}")


def inputs_file(root: Path, seed: int) -> Path | None:
    path = root / f"seed-{seed}" / "inputs.json"
    return path if path.is_file() else None


if __name__ == "__main__":
    main()
