"""What an RL run leaves in the store: checkpoints every ``rl.save_every`` steps (every rank
takes part: ZeRO gathers and DeepSpeed saves are collective, and each rank uploads its own
partitions part by part and deletes them locally; the store keeps the newest
``rl.keep_checkpoints``) and, at the end, the final policy — the uniform average of the last
``rl.average_last`` checkpoints — committed as ``rl-export`` by the main rank."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ovr.rl import state as S
from ovr.rl.setup import RLRun
from ovr.store import export_prefix


def save_checkpoint(run: RLRun, metrics: dict, extra: Callable[[Path], None] | None = None) -> None:
    """Write this step's checkpoint, each part committed to the store as soon as it is written and
    deleted locally (manifest last), then keep the newest ``rl.keep_checkpoints`` in the store;
    ``extra`` (main rank) adds its own files last (the async queue, ovr/rl/async_queue.py)."""
    folder = run.work / f"ckpt-{run.state.step:08d}"
    run.state.world = run.dist.world

    def write(written) -> None:
        S.save_checkpoint(
            folder,
            actor=run.actor,
            processor=run.processor,
            actor_engine=run.actor_engine,
            critic=run.critic,
            critic_engine=run.critic_engine,
            state=run.state,
            is_main=run.dist.is_main,
            written=written,
        )
        if extra is not None and run.dist.is_main:
            extra(folder)  # uploaded with the rest by the commit's finish

    S.commit_streamed(run.store, run.dist, run.ctx.key, run.state.step, folder, write, metrics=metrics)
    S.retain(run.store, run.dist, run.ctx.key, run.rl.keep_checkpoints)


def export_final(run: RLRun) -> str:
    """Average the last checkpoints into the final policy and commit it; returns its store prefix."""
    from ovr.rl.averaging import average_models

    store, name = run.store, run.ctx.key
    done = store.checkpoints(name, S.CHECKPOINT_KIND)[-run.rl.average_last :]
    folders = []
    for m in done:
        local = run.work / f"avg-{m.step:08d}"
        if not local.exists():  # the actor's weights only: no optimiser partitions
            store.download_checkpoint(name, m.step, local, S.CHECKPOINT_KIND, select=lambda p: p.startswith("actor/"))
        folders.append(local / "actor")
    out = average_models(folders, run.work / "export")
    for f in folders:  # the averaged checkpoints' weights are in the export now
        shutil.rmtree(f.parent, ignore_errors=True)
    metrics = done[-1].metadata.get("metrics", {}) if done else {}
    store.commit_checkpoint(
        name,
        run.state.step,
        out,
        kind=S.EXPORT_KIND,
        metadata={"averaged_steps": [m.step for m in done], "metrics": metrics},
    )
    return export_prefix(name, "rl", run.state.step)
