"""Does async RL learn as well as sync? The demo (``ovr run --local``, recipes/tiny-cpu.yaml) per seed,
once synchronous (the recipe as it is) and once one-step-off (``--set rl.max_staleness=1``), each in
its own working folder, from the same tiny base model (bench/demo_seeds.py runs and reads them).

Per seed: the RL reward gain (mean of the last steps - mean of the first, as the report computes
it) and the RL checkpoint's image eval (``synthetic_visual`` avg@k) of both modes. The goals: async's
mean gain over the seeds >= 0.8 x sync's, and its mean image eval within 10 points of sync's.

    .venv/bin/python bench/async_seeds.py --seeds 0 1 2          # 6 demo runs (~50 min on 2 quiet cores)
    .venv/bin/python bench/async_seeds.py --seeds 0 1 2 --read-only
    .venv/bin/python bench/async_seeds.py --seeds 0 1 2 --modes async   # rerun async only, read sync back
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo_seeds import SeedRun, read_back, run_seed  # noqa: E402

ASYNC = ["rl.max_staleness=1"]
IMAGE = "synthetic_visual"


def rl_image_eval(run: SeedRun) -> float | None:
    """The RL model's avg@k on the image benchmark (the last label that is not the SFT model's)."""
    labels = [lab for lab in run.accuracy if not lab.startswith("sft")]
    return run.accuracy[labels[-1]].get(IMAGE) if labels else None


def gain(run: SeedRun) -> float | None:
    return None if run.gain is None else run.gain[1] - run.gain[0]


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return sum(real) / len(real) if real else None


def comparison(sync: list[SeedRun], asyn: list[SeedRun]) -> str:
    """Per-seed rows and the two verdicts."""
    lines = [
        "| seed | sync gain | async gain | sync image eval (%) | async image eval (%) |",
        "|---|---|---|---|---|",
    ]
    fmt = lambda v, pct=False: "-" if v is None else (f"{100 * v:.1f}" if pct else f"{v:+.3f}")  # noqa: E731
    for s, a in zip(sync, asyn):
        lines.append(
            f"| {s.seed} | {fmt(gain(s))} | {fmt(gain(a))} | {fmt(rl_image_eval(s), True)} | "
            f"{fmt(rl_image_eval(a), True)} |"
        )
    gs, ga = _mean([gain(r) for r in sync]), _mean([gain(r) for r in asyn])
    es, ea = _mean([rl_image_eval(r) for r in sync]), _mean([rl_image_eval(r) for r in asyn])
    lines.append("")
    if gs is not None and ga is not None and gs > 0:
        ok = "meets" if ga >= 0.8 * gs else "misses"
        lines.append(f"mean reward gain: sync {gs:+.3f}, async {ga:+.3f} = {ga / gs:.2f}x sync ({ok} the goal >= 0.8x)")
    if es is not None and ea is not None:
        ok = "meets" if abs(ea - es) <= 0.10 else "misses"
        lines.append(
            f"mean image eval: sync {100 * es:.1f} %, async {100 * ea:.1f} %, {100 * (ea - es):+.1f} points "
            f"({ok} the goal: within 10)"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=str(REPO / "recipes" / "tiny-cpu.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--root", default=str(REPO / ".ovr" / "seeds"), help="Sync runs here, async ones in <root>-async.")
    p.add_argument("--model", default=str(REPO / ".ovr" / "models" / "tiny"), help="The shared tiny base model.")
    p.add_argument("--set", dest="sets", action="append", default=[], help="Extra overrides for both modes.")
    p.add_argument("--out", default=None, help="Also write the Markdown table here.")
    p.add_argument("--read-only", action="store_true", help="Tabulate finished runs without rerunning them.")
    p.add_argument(
        "--modes", nargs="+", choices=["sync", "async"], default=["sync", "async"], help="Run these; read the others."
    )
    a = p.parse_args()
    recipe, model = Path(a.recipe).resolve(), Path(a.model).resolve()
    roots = {"sync": (Path(a.root).resolve(), a.sets), "async": (Path(a.root + "-async").resolve(), a.sets + ASYNC)}
    runs: dict[str, list[SeedRun]] = {"sync": [], "async": []}
    for seed in a.seeds:
        for mode, (root, sets) in roots.items():
            if a.read_only or mode not in a.modes:
                work = root / f"seed-{seed}"
                wall = float((work / "wall_s.txt").read_text()) if (work / "wall_s.txt").is_file() else 0.0
                runs[mode].append(read_back(recipe, seed, work, model, sets, wall))
            else:
                runs[mode].append(run_seed(recipe, seed, root, model, sets))
    text = comparison(runs["sync"], runs["async"])
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
