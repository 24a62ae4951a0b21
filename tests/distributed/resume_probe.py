"""Resume an RL run's newest checkpoint under ``torchrun`` and check what each rank restored:
its optimiser partitions (saved again, compared tensor by tensor with the committed ones), the
step, prompt cursor and weight version, what it downloaded (its own partitions and the small shared
files: ZeRO restores the weights, so no ``.safetensors``) and what it left on local disk. Writes ``<out>/rank<r>.json``.

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
    from ovr.store import Kind, Store, step_prefix

    cfg = load_config(args.recipe, use_env=False)
    downloaded: list[str] = []  # what this rank fetched (the resume deletes it once restored)
    fetch = Store.download

    def download(self, prefix, dest, select=None):
        folder = fetch(self, prefix, dest, select)
        downloaded.extend(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())
        return folder

    Store.download = download
    run = setup_rl(cfg, RunContext.for_config(cfg, RUN_ID), resume="auto")
    Store.download = fetch
    r = run.dist.rank
    name = f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt"
    saved = run.store.download(
        step_prefix(run.ctx.key, run.resumed_from, Kind.RL),
        Path(tempfile.mkdtemp(prefix="probe-saved-")),
        select=lambda p: p == f"actor_optim/ds/{name}",
    )
    again = Path(tempfile.mkdtemp(prefix="probe-"))
    run.actor_engine.save_optim(again / "actor_optim")
    load = lambda p: torch.load(p, map_location="cpu", weights_only=False)  # noqa: E731
    optim_equal = same(
        load(saved / "actor_optim/ds" / name)["optimizer_state_dict"],
        load(again / "actor_optim/ds" / name)["optimizer_state_dict"],
    )
    others = sorted(p for p in downloaded if "zero_pp_rank_" in p and f"rank_{r}_" not in p)
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
                "weights_files": sorted(p for p in downloaded if p.endswith(".safetensors")),
                "left_on_disk": sorted(str(p) for p in run.work.rglob("*") if p.is_file()),
                "lr": run.actor_engine.lr,
            }
        )
    )


if __name__ == "__main__":
    main()
