"""The async RL queue: batches generated ahead of training, their weight versions, the staleness
bound, and the small file that carries the queue through a checkpoint.

A :class:`Batch` is what one step trains: the groups sampled and scored for it (``Collected``: which
groups to keep, the prompt cursor after them) and ``offset``, which turns the replicas' weight
versions (a count of pushes that restarts with the replicas) into the run's **policy versions**
(actor updates pushed since the run began, saved with the queue): ``policy = server + offset``.
A response carries the version its oldest tokens were sampled under (``weight_version``) and the
newest it may hold (``weight_version_max``, when a push came mid-request). The staleness of a group
trained at policy version ``p`` is ``p - oldest`` over its responses; a group staler than
``rl.max_staleness`` is dropped before it trains, and counted (:func:`drop_stale`).

``async_queue.pt`` in a checkpoint folder (``torch.save``; loaded with ``weights_only=True``, so
it holds only tensors and plain values): the queued batches (generated, not yet trained) with
their versions, the producer's prompt cursor after the last of them, the policy version, and the
groups trained since the previous checkpoint (``trained``: step, sample id, a digest of the
response tokens, versions), so a resumed run trains exactly the saved groups next and a later
checkpoint shows that it did.

>>> g = RolloutGroup(sample_id="a", completions=[Completion(text="x", weight_version=v) for v in (3, 4)])
>>> oldest(g, offset=-1)
2
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import torch

from ovr.rl.sampling import Collected
from ovr.rl.state import PromptCursor
from ovr.schema import Completion, RolloutGroup, ScoreResult

FILE = "async_queue.pt"


@dataclass
class Batch:
    """The groups one step trains, generated ahead by the producer."""

    step: int  # the step that trains it
    got: Collected
    offset: int  # policy version = replica (server) version + offset, for this batch's responses
    generation_s: float = 0.0  # wall time the producer spent on it (rollout rounds and scoring)


@dataclass
class QueueState:
    """What a checkpoint keeps of the producer and its queue."""

    policy_version: int  # policy version of the weights the checkpoint holds
    cursor: PromptCursor  # the producer's cursor, after the last queued batch
    batches: list[Batch] = field(default_factory=list)
    trained: list[dict] = field(default_factory=list)  # groups trained since the previous checkpoint


def oldest(group: RolloutGroup, offset: int) -> int:
    """The oldest policy version any token of ``group`` was sampled under."""
    return min(c.weight_version for c in group.completions) + offset


def drop_stale(batch: Batch, policy_now: int, max_staleness: int) -> tuple[list[int], int]:
    """Keep only the groups of ``batch`` at most ``max_staleness`` versions behind ``policy_now``
    (``batch.got.keep`` is narrowed); the staleness of each response kept, and how many groups were dropped."""
    got = batch.got
    fresh = [i for i in got.keep if policy_now - oldest(got.groups[i], batch.offset) <= max_staleness]
    dropped = len(got.keep) - len(fresh)
    got.keep = fresh
    ages = [policy_now - c.weight_version - batch.offset for i in fresh for c in got.groups[i].completions]
    return ages, dropped


def digest(group: RolloutGroup) -> str:
    """A short hash of a group's prompt and response tokens (what the trained log records)."""
    h = hashlib.sha256(group.sample_id.encode())
    for c in group.completions:
        h.update(json.dumps(c.token_ids).encode())
    return h.hexdigest()[:16]


def trained_record(step: int, batch: Batch) -> dict:
    """The log entry of the groups step ``step`` trained from ``batch``."""
    groups = [batch.got.groups[i] for i in batch.got.keep]
    return {
        "step": step,
        "groups": [{"sample_id": g.sample_id, "digest": digest(g), "oldest": oldest(g, batch.offset)} for g in groups],
    }


def queued_records(state: QueueState) -> list[dict]:
    """What :func:`trained_record` will log for each queued batch, if each trains whole."""
    return [trained_record(b.step, b) for b in state.batches]


# ---------------------------------------------------------------------- the file
def dump(state: QueueState) -> bytes:
    """``state`` as the bytes of ``async_queue.pt``: token ids and log-probs as tensors, the rest as JSON."""
    ids, logprobs, batches = [], [], []
    for b in state.batches:
        groups = []
        for g in b.got.groups:
            for c in g.completions:
                ids.append(torch.tensor(c.token_ids, dtype=torch.int64))
                logprobs.append(torch.tensor(c.logprobs, dtype=torch.float32))
            groups.append(g.model_dump(exclude={"completions": {"__all__": {"token_ids", "logprobs"}}}))
        got = b.got
        batches.append(
            {
                "step": b.step,
                "offset": b.offset,
                "generation_s": b.generation_s,
                "groups": groups,
                "results": [r.model_dump() for r in got.results],
                "keep": got.keep,
                "rounds": got.rounds,
                "rollout_s": got.rollout_s,
                "reward_s": got.reward_s,
                "cursor": vars(got.cursor) if got.cursor is not None else None,
            }
        )
    meta = {
        "format": 1,
        "policy_version": state.policy_version,
        "cursor": vars(state.cursor),
        "batches": batches,
        "trained": state.trained,
    }
    buf = io.BytesIO()
    torch.save({"meta": json.dumps(meta), "ids": ids, "logprobs": logprobs}, buf)
    return buf.getvalue()


def load(data: bytes) -> QueueState:
    """The :class:`QueueState` of an ``async_queue.pt`` file's bytes."""
    raw = torch.load(io.BytesIO(data), weights_only=True)
    meta = json.loads(raw["meta"])
    if meta.get("format") != 1:
        raise ValueError(f"{FILE} has format {meta.get('format')!r}; this ovr reads format 1")
    tokens = iter(zip(raw["ids"], raw["logprobs"]))
    batches = []
    for b in meta["batches"]:
        groups = []
        for g in b["groups"]:
            completions = []
            for c in g["completions"]:
                t, lp = next(tokens)
                completions.append(Completion(**c, token_ids=t.tolist(), logprobs=lp.tolist()))
            groups.append(RolloutGroup(**{**g, "completions": completions}))
        got = Collected(
            groups=groups,
            results=[ScoreResult(**r) for r in b["results"]],
            keep=list(b["keep"]),
            rounds=b["rounds"],
            rollout_s=b["rollout_s"],
            reward_s=b["reward_s"],
            cursor=PromptCursor(**b["cursor"]) if b["cursor"] is not None else None,
        )
        batches.append(Batch(step=b["step"], got=got, offset=b["offset"], generation_s=b["generation_s"]))
    return QueueState(
        policy_version=meta["policy_version"],
        cursor=PromptCursor(**meta["cursor"]),
        batches=batches,
        trained=meta["trained"],
    )
