"""Rank bookkeeping for ``torchrun`` launches (a no-op single process when WORLD_SIZE is unset).

Two kinds of waiting, kept apart:

- **lockstep collectives** of training: DeepSpeed's process group (NCCL on GPUs, gloo on CPU) and
  a gloo group on the CPU for small sums and maxima during an update (:meth:`Dist.sum`,
  :meth:`Dist.max`), both with ``timeout_s``. Every rank reaches them within moments of the others.
- **polled waits** for what may take long on some ranks (the main rank's rollouts, a checkpoint
  upload): each rank writes a key into the launcher's key-value store (torchrun's ``TCPStore``) and
  the others check for it every ``poll_s`` seconds; past ``wait_timeout_s`` the wait raises
  :class:`RankTimeout` naming the ranks that did not arrive and the phase each last announced
  (:meth:`Dist.announce`). No rank sits in a collective for the length of a rollout.

:meth:`Dist.scatter` hands every rank its own object (its share of a step): the main rank posts
each payload's size in the store, the ranks wait for theirs (polled), and only then does the
payload move, point to point over the gloo group. :meth:`Dist.all_gather` and
:meth:`Dist.barrier` are polled waits too (small objects travel in the store).

>>> Dist().shard_groups([5, 3, 9])   # one process: every group
[0, 1, 2]
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as tdist

log = logging.getLogger("ovr.distributed")
LOG_EVERY_S = 60.0  # a waiting rank says so this often


class RankTimeout(TimeoutError):
    """A polled wait ran past ``wait_timeout_s``; the message names the late ranks."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    cpu_group: object | None = None  # gloo group for lockstep sums and the point-to-point payloads
    store: object | None = None  # the launcher's key-value store (None on one process)
    wait_timeout_s: float = 4 * 3600.0
    poll_s: float = 2.0
    _ops: int = field(default=0, repr=False)  # polled operations so far (the same sequence on every rank)

    @classmethod
    def from_env(cls, timeout_s: float = 1800.0, wait_timeout_s: float = 4 * 3600.0, poll_s: float = 2.0) -> Dist:
        """This process's rank; initialises the groups when launched with WORLD_SIZE > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if world == 1:
            return cls(rank, world, local, wait_timeout_s=wait_timeout_s, poll_s=poll_s)
        _close_at_exit()
        if not tdist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(local)
            tdist.init_process_group(
                "nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(seconds=timeout_s)
            )
        group = tdist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))
        # a restarted worker group (torchrun --max-restarts) shares the launcher's store: own prefix
        prefix = f"ovr/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        store = tdist.PrefixStore(prefix, tdist.distributed_c10d._get_default_store())
        return cls(rank, world, local, group, store, wait_timeout_s, poll_s)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ polled waits
    def announce(self, phase: str) -> None:
        """Record what this rank is doing now; a rank that times out waiting for it quotes this."""
        if self.store is not None:
            self.store.set(f"status/{self.rank}", json.dumps({"phase": phase, "t": time.time()}))

    def _begin(self) -> str:
        """The key prefix of the next polled operation. Keys stay in the store (a few bytes each:
        payloads travel point to point), so no rank can miss one that another already read."""
        self._ops += 1
        return f"op{self._ops}"

    def _post(self, key: str, value: bytes | str) -> None:
        self.store.set(key, value)

    def _wait(self, keys: dict[int, str], phase: str) -> None:
        """Until the store holds every key (rank -> key); RankTimeout names the ranks whose key is missing."""
        start = time.monotonic()
        deadline, next_log = start + self.wait_timeout_s, start + LOG_EVERY_S
        missing = dict(keys)
        while True:
            missing = {r: k for r, k in missing.items() if not self.store.check([k])}
            if not missing:
                return
            now = time.monotonic()
            if now >= deadline:
                raise RankTimeout(self._late(sorted(missing), phase, now - start))
            if now >= next_log:
                log.info("rank %d: %s", self.rank, self._late(sorted(missing), phase, now - start, "still waiting"))
                next_log = now + LOG_EVERY_S
            time.sleep(max(0.0, min(self.poll_s, deadline - now)))

    def _late(self, ranks: list[int], phase: str, waited: float, what: str = "gave up") -> str:
        """Who is late and what each last announced."""
        notes = []
        for r in ranks:
            key = f"status/{r}"
            if self.store.check([key]):
                status = json.loads(self.store.get(key))
                notes.append(f"rank {r} last reported {status['phase']!r} {time.time() - status['t']:.0f} s ago")
            else:
                notes.append(f"rank {r} reported nothing")
        return (
            f"rank {self.rank} {what} after {waited:.0f} s in {phase!r} waiting for rank(s) "
            f"{', '.join(map(str, ranks))} (rl.wait_timeout_s={self.wait_timeout_s:g}): " + "; ".join(notes)
        )

    def barrier(self, phase: str = "barrier") -> None:
        """Every rank reaches this point (a polled wait naming the late ranks)."""
        if self.world == 1:
            return
        tag = self._begin()
        self._post(f"{tag}/{self.rank}", "1")
        self._wait({r: f"{tag}/{r}" for r in range(self.world)}, phase)

    def all_gather(self, obj, phase: str = "all_gather") -> list:
        """Every rank's ``obj`` (small, picklable), in rank order (a polled wait)."""
        if self.world == 1:
            return [obj]
        tag = self._begin()
        self._post(f"{tag}/{self.rank}", pickle.dumps(obj))
        keys = {r: f"{tag}/{r}" for r in range(self.world)}
        self._wait(keys, phase)
        return [obj if r == self.rank else pickle.loads(self.store.get(keys[r])) for r in range(self.world)]

    def scatter(self, objs: list | None, phase: str = "scatter"):
        """Rank ``r`` gets ``objs[r]`` of the main rank (``objs`` is ignored elsewhere): the others wait
        polled until their payload is announced, then receive only it, point to point."""
        if self.world == 1:
            return objs[0]
        tag = self._begin()
        if self.is_main:
            if objs is None or len(objs) != self.world:
                raise ValueError(f"scatter needs one object per rank ({self.world}), got {objs!r:.80}")
            payloads = {r: pickle.dumps(objs[r], protocol=pickle.HIGHEST_PROTOCOL) for r in range(1, self.world)}
            for r, payload in payloads.items():
                self._post(f"{tag}/{r}", str(len(payload)))
            sends = [
                tdist.isend(torch.frombuffer(bytearray(p), dtype=torch.uint8), dst=r, group=self.cpu_group)
                for r, p in payloads.items()
            ]
            for s in sends:
                s.wait()
            return objs[0]
        key = f"{tag}/{self.rank}"
        self._wait({0: key}, phase)
        buf = torch.empty(int(self.store.get(key)), dtype=torch.uint8)
        tdist.recv(buf, src=0, group=self.cpu_group)
        return pickle.loads(buf.numpy().tobytes())

    def broadcast(self, obj, phase: str = "broadcast"):
        """The main rank's ``obj`` on every rank (:meth:`scatter` of one object)."""
        return self.scatter([obj] * self.world if self.is_main else None, phase)

    # ------------------------------------------------------------------ lockstep reductions
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

    def fmax(self, values: list[float]) -> list[float]:
        """Element-wise maximum over ranks (float64)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX, group=self.cpu_group)
        return t.tolist()

    def shard_groups(self, costs: list[float]) -> list[int]:
        """Indices of the whole groups (e.g. a prompt's responses) this rank trains on (see :func:`shard`)."""
        return shard(costs, self.world)[self.rank]


def shard(costs: list[float], world: int) -> list[list[int]]:
    """Whole groups per rank: the costliest first, each to the least-loaded rank (ties: the lowest
    rank); every rank's indices in increasing order.

    >>> shard([5, 3, 9, 1], 2)
    [[2], [0, 1, 3]]
    """
    load = [0.0] * world
    owner = {}
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i], load[r] = r, load[r] + costs[i]
    return [[i for i in range(len(costs)) if owner[i] == r] for r in range(world)]


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
