"""Resumable RL state: the prompt cursor, RNG, and checkpoints through ``ovr.store``.

A checkpoint folder holds ``actor/`` (``save_pretrained`` + processor), ``critic/`` (when PPO),
``actor_optim/`` and ``critic_optim/`` (optimiser + schedule; under ZeRO one partition file per
rank), ``rng.pt`` and ``state.json`` (next step, prompt cursor, weight version, world size). Every
rank uploads its own files as each part is written and deletes them locally, and the manifest is
written last (:mod:`ovr.sharded`) as ``runs/<run>/rl/step-<N>``, so an interrupted save is invisible,
``--resume auto`` picks the newest complete one, and local disk holds one part at a time. The store
keeps the newest ``rl.keep_checkpoints`` (:func:`retain`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ovr.store import Kind, Store, step_prefix

CHECKPOINT_KIND = Kind.RL
EXPORT_KIND = Kind.RL_EXPORT


@dataclass
class PromptCursor:
    """Walks the RL prompts in a seeded order, epoch after epoch; its position is saved."""

    n: int
    seed: int
    epoch: int = 0
    index: int = 0

    def order(self, epoch: int) -> list[int]:
        idx = list(range(self.n))
        random.Random(f"rl-prompts:{self.seed}:{epoch}").shuffle(idx)
        return idx

    def take(self, k: int) -> list[int]:
        """The next ``k`` prompt indices (wrapping into a freshly shuffled epoch)."""
        if self.n == 0:
            raise ValueError("the RL prompt set is empty")
        out: list[int] = []
        while len(out) < k:
            order = self.order(self.epoch)
            grab = order[self.index : self.index + (k - len(out))]
            out += grab
            self.index += len(grab)
            if self.index >= self.n:
                self.epoch, self.index = self.epoch + 1, 0
        return out


@dataclass
class TrainState:
    """Everything besides weights and optimisers that a resumed run needs."""

    step: int = 0  # the next step to run
    cursor: PromptCursor = field(default_factory=lambda: PromptCursor(0, 0))
    weight_version: int = 0
    mlflow_run_id: str | None = None  # a resumed run keeps logging into the same MLflow run
    world: int = 1  # ranks that wrote the checkpoint (ZeRO partitions fit only the same world size)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        d = json.loads(text)
        return cls(
            step=d["step"],
            cursor=PromptCursor(**d["cursor"]),
            weight_version=d["weight_version"],
            mlflow_run_id=d.get("mlflow_run_id"),
            world=d.get("world", 1),
        )


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    folder: Path,
    *,
    actor,
    processor,
    actor_engine,
    critic=None,
    critic_engine=None,
    state: TrainState,
    is_main: bool = True,
    written: Callable[[], None] | None = None,
) -> Path:
    """Write this rank's part of a checkpoint folder (call on every rank: ZeRO gathers and
    DeepSpeed saves are collective). The main rank writes the full weights and the state.
    ``written`` is called after each part (actor, critic, state, each optimiser): a streamed
    commit uploads and deletes the part there, so the disk never holds the whole checkpoint."""
    done = written or (lambda: None)
    folder.mkdir(parents=True, exist_ok=True)
    actor_weights = actor_engine.weights(actor)
    if is_main:
        actor_weights.save_pretrained(folder / "actor", safe_serialization=True)
        processor.save_pretrained(folder / "actor")
    else:
        actor_weights.drain()
    done()
    if critic is not None:
        critic_weights = critic_engine.weights(critic)
        if is_main:
            critic.save(folder / "critic", state_dict=critic_weights.state_dict())
        else:
            critic_weights.drain()
        done()
    if is_main:
        torch.save(rng_state(), folder / "rng.pt")
        (folder / "state.json").write_text(state.to_json())
    actor_engine.save_optim(folder / "actor_optim")
    done()
    if critic is not None:
        critic_engine.save_optim(folder / "critic_optim")
        done()
    return folder


def commit_streamed(store: Store, dist, run: str, step: int, folder: Path, write: Callable[[Callable], None], **meta):
    """Write checkpoint ``step`` into ``folder`` with ``write(written)`` while every rank uploads each
    part as soon as it is written and deletes it locally; the manifest comes last, once all ranks
    uploaded (:class:`ovr.sharded.ShardedCommit`). Nothing of the checkpoint stays on local disk.
    Ranks meet on the CPU group after each part, so a slow upload is waited for under
    ``rl.wait_timeout_s``, not inside the next part's collectives (``rl.dist_timeout_s``)."""
    from ovr.sharded import ShardedCommit

    commit = ShardedCommit(store, dist, step_prefix(run, step, CHECKPOINT_KIND), folder, delete_local=True)

    def written() -> None:
        commit.push()
        dist.barrier()  # the next part's gathers start once every rank uploaded (waits under wait_timeout_s)

    write(written)
    commit.finish(run=run, step=step, kind=CHECKPOINT_KIND, metadata=meta)


def retain(store: Store, dist, run: str, keep: int | None) -> list[int]:
    """The main rank deletes all but the newest ``keep`` complete checkpoints of ``run`` from the
    store (after a commit: the newest is complete); returns the steps it deleted."""
    if keep is None or not dist.is_main:
        return []
    old = [m.step for m in store.checkpoints(run, CHECKPOINT_KIND)[:-keep]]
    for step in old:
        store.delete_prefix(step_prefix(run, step, CHECKPOINT_KIND))
    return old


def find_resume(store: Store, run: str, resume: str) -> int | None:
    """The checkpoint step to resume from: ``auto`` (newest, if any), ``never``, or a step number."""
    if resume == "never":
        return None
    if resume == "auto":
        latest = store.latest(run, CHECKPOINT_KIND)
        return latest.step if latest else None
    if not resume.isdigit():
        raise ValueError(f"resume must be 'auto', 'never' or a step number, not {resume!r}")
    step = int(resume)
    if store.read_manifest(step_prefix(run, step, CHECKPOINT_KIND)) is None:
        raise FileNotFoundError(f"run {run!r} has no complete RL checkpoint at step {step}")
    return step


def load_state(folder: Path) -> TrainState:
    set_rng_state(torch.load(folder / "rng.pt", weights_only=False))
    return TrainState.from_json((folder / "state.json").read_text())
