"""One RL update on fixed rows, run under ``torchrun`` (or alone): the tiny model, ZeRO-3 over gloo.

Writes ``<out>/rank<r>.json`` with this rank's advantages per row, the step's metrics and a
checksum of the updated weights, so tests compare 1 and 2 ranks on the same rows.

    torchrun --nproc-per-node 2 tests/distributed/rows_worker.py --model DIR --out DIR [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch


def fixed_rows(run, n_prompts: int, per_prompt: int):
    """Deterministic experience: responses of varied length, scores that differ within groups."""
    from ovr.rl.experience import Experience
    from ovr.rl.forward import encode_prompt

    gen = torch.Generator().manual_seed(0)
    rows = []
    for g, sample in enumerate(run.samples[:n_prompts]):
        enc = encode_prompt(run.processor, sample)
        for j in range(per_prompt):
            n = 3 + (g * per_prompt + j) % 7
            ids = torch.randint(40, 500, (n,), generator=gen).tolist()
            score = float((g + j) % 2)
            rows.append(Experience(enc, ids, score, score, g, False, [], 0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--prompts", type=int, default=5, help="Groups in the step (fewer than ranks: empty ranks).")
    args = parser.parse_args()

    from ovr.config import load_config
    from ovr.context import RunContext
    from ovr.data.synthetic import text_samples, visual_samples
    from ovr.rl.setup import setup_rl
    from ovr.rl.step import train_on

    cfg = load_config(
        None,
        [
            f"model.path={args.model}",
            f"store.uri={args.out}/store",
            "tracking.enabled=false",
            "rl.zero_stage=3",
            "rl.warmup_steps=0",
            "rl.actor_lr=1e-3",
            "rl.critic_lr=1e-3",
            *args.sets,
        ],
        use_env=False,
    )
    # image and text-only prompts: a rank may get a text-only micro-batch while another shows images
    samples = visual_samples(3, seed=5) + text_samples(2, seed=5, split="rl")
    run = setup_rl(cfg, RunContext.for_config(cfg, "rows"), samples, resume="never")
    rows = fixed_rows(run, n_prompts=args.prompts, per_prompt=3)
    metrics = train_on(run, rows, max_tokens=16, step=0)
    weights = run.actor_engine.weights(run.actor)
    if run.dist.is_main:
        state = weights.state_dict()
        checksum = {k: float(v.double().sum()) for k, v in sorted(state.items()) if "layers.0." in k or "lm_head" in k}
    else:
        weights.drain()
        checksum = {}
    # advantages of this rank's groups, keyed by (group, row in group), for the 1-vs-2 comparison
    mine = [
        r
        for r in rows
        if r.group
        in set(
            run.dist.shard_groups(
                [
                    sum(len(x.prompt.input_ids) + len(x.response_ids) for x in rows if x.group == g)
                    for g in range(args.prompts)
                ]
            )
        )
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{run.dist.rank}.json").write_text(
        json.dumps(
            {
                "groups": sorted({r.group for r in mine}),
                "metrics": metrics,
                "checksum": checksum,
                "world": run.dist.world,
                "advantage": cfg.rl.advantage,
            }
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
