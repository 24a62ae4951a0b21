"""Resume an RL run's newest checkpoint under ``torchrun`` and check what each rank restored:
its optimiser partitions (saved again, compared tensor by tensor with the downloaded ones), the
step, prompt cursor and weight version. Writes ``<out>/rank<r>.json``.

    torchrun --nproc-per-node 2 tests/distributed/resume_probe.py --recipe R --out DIR
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

RUN_ID = "t1"  # the run test_rl_two_ranks.py trains under (--run-id t1)


def same(a, b) -> bool:
    """Nested dicts/lists of tensors and plain values are equal."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return True  # config echoes, versions: not state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    from ovr.config import load_config
    from ovr.context import RunContext
    from ovr.rl.setup import setup_rl

    cfg = load_config(args.recipe, use_env=False)
    run = setup_rl(cfg, RunContext.for_config(cfg, RUN_ID), resume="auto")
    r = run.dist.rank
    name = f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt"
    downloaded = run.work / f"resume-{run.resumed_from}"
    again = Path(tempfile.mkdtemp(prefix="probe-"))
    run.actor_engine.save_optim(again / "actor_optim")
    load = lambda p: torch.load(p, map_location="cpu", weights_only=False)  # noqa: E731
    optim_equal = same(
        load(downloaded / "actor_optim/ds" / name)["optimizer_state_dict"],
        load(again / "actor_optim/ds" / name)["optimizer_state_dict"],
    )
    others = sorted(
        p.name for p in (downloaded / "actor_optim/ds").glob("zero_pp_rank_*") if f"rank_{r}_" not in p.name
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{r}.json").write_text(
        json.dumps(
            {
                "resumed_from": run.resumed_from,
                "step": run.state.step,
                "cursor": vars(run.state.cursor),
                "weight_version": run.state.weight_version,
                "optim_equal": optim_equal,
                "other_ranks_files": others,
                "lr": run.actor_engine.lr,
            }
        )
    )


if __name__ == "__main__":
    main()
