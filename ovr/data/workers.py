"""Worker processes of a build: how many the pod may use, and a pool that checks chunks of items in
order with a bounded number in flight.

A small build (the tests, the tiny recipe) is checked in this process: spawning workers (each
imports math-verify and sympy, ~2 s) would cost more than it saves. The pool starts with the first
task when the build expects more than ``start_after`` items, else once that many were submitted;
at most ``2 * workers`` tasks are in flight, so the rows held in memory do not grow with the build.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ovr.data.checks import Checked, CheckSettings, check_items, image_hashes, light
from ovr.schema import Sample

CGROUP = Path("/sys/fs/cgroup")
START_AFTER = 256  # items a build checks in this process before it starts its worker processes
WORKER_BYTES = 512 << 20  # memory a worker process is given by default (one uses ~200 MB: math-verify, sympy)
K = TypeVar("K")


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """CPUs the cgroup's quota allows (a pod's ``resources.limits.cpu``), or None when unlimited:
    cgroup v2 ``cpu.max`` ("<quota> <period>" or "max ..."), else v1 ``cpu.cfs_quota_us`` / period."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = CGROUP) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup quota (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, max(1, math.floor(limit)))
    return max(1, count)


def cgroup_memory_limit(root: Path = CGROUP) -> int | None:
    """Bytes the cgroup may use (a pod's ``resources.limits.memory``), or None when unlimited."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "no limit"
            return int(text)
        return None
    return None


def resolve_workers(configured: int | None, root: Path = CGROUP) -> int:
    """``data.workers`` when set, else :func:`available_cpus`, but no more than the memory limit
    holds at ``WORKER_BYTES`` each (a pod with no CPU limit sees every core of its node)."""
    if configured is not None:
        return configured
    limit = cgroup_memory_limit(root)
    by_memory = max(1, limit // WORKER_BYTES) if limit is not None else available_cpus(root)
    return min(available_cpus(root), by_memory)


class _Done(Future):
    """A future already holding its result (a chunk checked in this process)."""

    def __init__(self, value):
        super().__init__()
        self.set_result(value)


class CheckPool:
    """Runs a function of the build's workers over tasks, results in task order (see the module doc)."""

    def __init__(self, workers: int, expected: int | None = None, start_after: int | None = None):
        self.workers = workers
        self.start_after = START_AFTER if start_after is None else start_after
        self.submitted = 0
        self._eager = expected is not None and expected > self.start_after
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _submit(self, fn: Callable, payload: list, args: tuple) -> Future:
        big = self._eager or self.submitted + len(payload) > self.start_after
        if self._pool is None and self.workers > 1 and big:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        self.submitted += len(payload)
        if self._pool is None:
            return _Done(fn(payload, *args))
        return self._pool.submit(fn, payload, *args)

    def imap(self, fn: Callable, tasks: Iterable[tuple[K, list]], *args) -> Iterator[tuple[K, Any]]:
        """``(key, fn(payload, *args))`` for each ``(key, payload)`` task, in order; only the payload
        goes to a worker, and at most ``2 * workers`` tasks are in flight (read ahead lazily)."""
        pending: deque[tuple[K, Future]] = deque()
        for key, payload in tasks:
            pending.append((key, self._submit(fn, payload, args)))
            while pending and (len(pending) > 2 * self.workers or pending[0][1].done()):
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()

    def check(
        self, chunks: Iterable[list[Sample]], settings: CheckSettings
    ) -> Iterator[tuple[list[Sample], list[Checked]]]:
        """``(chunk, its Checked)`` for each chunk of samples (sent without their image bytes)."""
        tasks = ((chunk, [(light(s), image_hashes(s)) for s in chunk]) for chunk in chunks)
        return self.imap(check_items, tasks, settings)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
