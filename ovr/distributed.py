"""Rank bookkeeping for ``torchrun`` launches (a no-op single process when WORLD_SIZE is unset).

Two process groups: the default one (NCCL on GPUs, gloo on CPU) that DeepSpeed trains over, with
``timeout_s``; and a gloo group on the CPU with the long ``wait_timeout_s`` for everything else —
Python objects from the main rank (:meth:`Dist.broadcast`: ranks wait here while rank 0 samples
rollouts for minutes), gathers of small results and barriers around uploads. No rank is left
blocked in a training collective for the length of a rollout or a checkpoint upload.

>>> Dist().shard_groups([5, 3, 9])   # one process: every group
[0, 1, 2]
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    cpu_group: object | None = None  # gloo group with the long timeout (None on one process)

    @classmethod
    def from_env(cls, timeout_s: float = 1800.0, wait_timeout_s: float = 4 * 3600.0) -> Dist:
        """This process's rank; initialises both groups when launched with WORLD_SIZE > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if world == 1:
            return cls(rank, world, local)
        _close_at_exit()
        if not tdist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(local)
            tdist.init_process_group(
                "nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(seconds=timeout_s)
            )
        return cls(rank, world, local, tdist.new_group(backend="gloo", timeout=timedelta(seconds=wait_timeout_s)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        """The main rank's ``obj`` on every rank (pickled over the CPU group)."""
        if self.world == 1:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0, group=self.cpu_group)
        return box[0]

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        tdist.all_gather_object(out, obj, group=self.cpu_group)
        return out

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        tdist.all_reduce(t, group=self.cpu_group)
        return t.tolist()

    def max(self, value: int) -> int:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX, group=self.cpu_group)
        return int(t.item())

    def shard_groups(self, costs: list[float]) -> list[int]:
        """Indices of the whole groups (e.g. a prompt's responses) this rank trains on: the costliest
        first, each to the least-loaded rank (ties: the lowest rank) — the same on every rank."""
        if self.world == 1:
            return list(range(len(costs)))
        load = [0.0] * self.world
        owner = {}
        for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
            r = min(range(self.world), key=lambda r: (load[r], r))
            owner[i], load[r] = r, load[r] + costs[i]
        return [i for i in range(len(costs)) if owner[i] == self.rank]

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier(group=self.cpu_group)


_CLOSING = []


def _close_at_exit() -> None:
    """Destroy the process groups when the interpreter exits (once per process): a gloo group left to
    the C++ destructors can abort the process at exit ("terminate called without an active
    exception", exit code -6) after the work succeeded."""
    if _CLOSING:
        return
    _CLOSING.append(True)

    def close() -> None:
        if tdist.is_available() and tdist.is_initialized():
            tdist.destroy_process_group()

    atexit.register(close)


def ensure_single_process_env() -> bool:
    """Set a one-process world when no launcher did (DeepSpeed then runs ZeRO over gloo on one
    process instead of looking for MPI); returns True if it set anything."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return False
    from ovr.serving import free_port

    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    return True
