"""A pool of verifier worker processes with a per-item time limit (the reward service's engine).

Each worker is a process that scores a chunk of items sequentially and sends each result back as
soon as it is ready; the parent waits at most ``time_limit_s`` for each next result. When an item
exceeds the limit (or kills its worker), it scores 0 with ``timed_out``/``error`` set, the worker is
killed and replaced, and the rest of the chunk goes on in the new worker — so one pathological
answer costs one time limit, never a hung service. Sending chunks keeps the per-item overhead small.

math-verify's own ``signal.alarm`` timeouts cannot run outside a main thread; here they are off
and this pool enforces the limit instead. Workers start through ``forkserver`` with the reward
modules preloaded, so a replacement is ready in milliseconds. An optional address-space limit turns
runaway memory (``10^{10^{10}}``) into a MemoryError inside the worker.

>>> async def demo():  # doctest: +SKIP
...     async with VerifierPool(workers=2, time_limit_s=5) as pool:
...         return await pool.score([ScoreItem(response=r"\\boxed{1/2}", reference="0.5")])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ovr.schema import ScoreItem, ScoreResult

log = logging.getLogger(__name__)
# Scored by every new worker before it takes work: sympy's first comparisons of each kind are slow
# (caches, lazy imports), and a cold worker would otherwise spend real items' time limits on them.
WARMUP = [
    ScoreItem(response=r"\boxed{\frac{1}{2}}", reference="0.5"),
    ScoreItem(response=r"\boxed{y = 1 + 2x}", reference="y=2x+1"),
    ScoreItem(response=r"\boxed{(x+1)^2}", reference="x^2+2x+1"),
    ScoreItem(response=r"\boxed{\{2, 1\}}", reference=r"\{1,2\}"),
    ScoreItem(response=r"\boxed{(0, 1]}", reference="(0,1]"),
    ScoreItem(response=r"\boxed{\frac{\sqrt{2}}{2}}", reference=r"\sqrt{2}/2"),
    ScoreItem(response=r"\boxed{3.14159}", reference=r"\pi"),
    ScoreItem(response=r"\boxed{50\%}", reference="0.5"),
]
READY = "ready"


def _worker_main(conn, memory_limit_mb: int | None) -> None:
    """Worker process loop: receive a chunk (list of items), send one result per item, in order."""
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from ovr.rewards import score_item

    for item in WARMUP:
        score_item(item)
    conn.send(READY)
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for item in chunk:
            try:
                result = score_item(item)
            except MemoryError:
                result = ScoreResult(overall=0.0, accuracy=0.0, error="verification ran out of memory")
            except Exception as e:  # a reward bug must not take the worker down
                result = ScoreResult(overall=0.0, accuracy=0.0, error=f"{type(e).__name__}: {e}"[:500])
            conn.send(result)


class _Worker:
    """One worker process and the parent's end of its pipe (used from one thread at a time)."""

    def __init__(self, ctx, memory_limit_mb: int | None, ready_timeout_s: float = 120.0):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, memory_limit_mb), daemon=True)
        self.proc.start()
        child.close()
        try:
            ok = self.conn.poll(ready_timeout_s) and self.conn.recv() == READY
        except (EOFError, OSError):
            ok = False
        if not ok:
            self.kill()
            raise RuntimeError(f"verifier worker did not warm up within {ready_timeout_s:.0f} s")

    def run(self, items: list[ScoreItem], limit_s: float) -> tuple[list[ScoreResult], str | None]:
        """Results for a prefix of ``items`` and why it stopped early: None, "timeout" or "died"."""
        try:
            self.conn.send(items)
        except (BrokenPipeError, OSError):
            return [], "died"
        out: list[ScoreResult] = []
        while len(out) < len(items):
            if not self.conn.poll(limit_s):
                return out, "timeout"
            try:
                out.append(self.conn.recv())
            except (EOFError, OSError):
                return out, "died"
        return out, None

    def stop(self, grace_s: float = 2.0) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(None)
        self.proc.join(grace_s)
        self.kill()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


@dataclass
class PoolStats:
    """Counters read by the service's /metrics."""

    items: int = 0
    timeouts: int = 0
    worker_deaths: int = 0
    restarts: int = 0
    pending: int = field(default=0, metadata={"doc": "items submitted and not yet answered"})


class VerifierPool:
    """``workers`` verifier processes; ``await score(items)`` returns one result per item, in order."""

    def __init__(
        self,
        workers: int = 2,
        time_limit_s: float = 5.0,
        *,
        chunk_size: int = 16,
        memory_limit_mb: int | None = None,
        start_method: str = "forkserver",
        spares: int = 1,
    ):
        if workers < 1 or time_limit_s <= 0 or chunk_size < 1 or spares < 0:
            raise ValueError("workers, chunk_size >= 1, spares >= 0 and time_limit_s > 0 required")
        self.n_workers, self.time_limit_s, self.chunk_size = workers, time_limit_s, chunk_size
        self.memory_limit_mb = memory_limit_mb
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(["ovr.rewards.functions", "math_verify"])
        self._workers: list[_Worker] = []
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reward-worker")
        # Warm stand-by workers swapped in when one is killed, refilled in the background.
        self._spares: queue.Queue[_Worker] = queue.Queue()
        self._n_spares = spares
        self._spare_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward-spare")
        self._closing = False
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loops: list[asyncio.Task] = []
        self.stats = PoolStats()
        self.ready = False

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> VerifierPool:
        """Start the workers (each scores the warm-up items first), then mark the pool ready."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, self._spawn) for _ in range(self.n_workers)))
        self._loops = [asyncio.create_task(self._serve(i)) for i in range(self.n_workers)]
        self._spare_thread.submit(self._refill_spares)
        self.ready = True
        log.info("verifier pool ready: %d workers, %.1f s per item", self.n_workers, self.time_limit_s)
        return self

    def _spawn(self) -> None:
        self._workers.append(_Worker(self._ctx, self.memory_limit_mb))

    def _refill_spares(self) -> None:
        while not self._closing and self._spares.qsize() < self._n_spares:
            self._spares.put(_Worker(self._ctx, self.memory_limit_mb))

    async def close(self) -> None:
        self.ready, self._closing = False, True
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.stop) for w in self._workers))
        self._threads.shutdown(wait=False, cancel_futures=True)
        await loop.run_in_executor(None, self._spare_thread.shutdown)
        while not self._spares.empty():
            self._spares.get_nowait().stop()

    async def __aenter__(self) -> VerifierPool:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def alive_workers(self) -> int:
        return sum(w.proc.is_alive() for w in self._workers)

    # ----------------------------------------------------------------- scoring
    async def score(self, items: list[ScoreItem]) -> list[ScoreResult]:
        """Score ``items`` under the per-item limit; results in input order."""
        if not self.ready:
            raise RuntimeError("verifier pool is not started")
        loop = asyncio.get_running_loop()
        futures = []
        size = max(1, min(self.chunk_size, -(-len(items) // self.n_workers)))  # a small batch spreads out
        for i in range(0, len(items), size):
            fut = loop.create_future()
            chunk = items[i : i + size]
            self.stats.pending += len(chunk)
            self._queue.put_nowait((chunk, fut, []))
            futures.append(fut)
        chunks = await asyncio.gather(*futures)
        return [r for chunk in chunks for r in chunk]

    async def _serve(self, slot: int) -> None:
        """Take chunks from the shared queue and run them on worker ``slot``. When an item times out
        or kills the worker, the worker is replaced and the chunk's remaining items go to the back of
        the queue, so a batch of pathological items cannot monopolise the workers."""
        loop = asyncio.get_running_loop()
        while True:
            chunk, fut, done = await self._queue.get()
            try:
                out, status = await loop.run_in_executor(
                    self._threads, self._workers[slot].run, chunk, self.time_limit_s
                )
                done += out
                rest = []
                if status is not None:
                    done.append(self._failure(status))
                    rest = chunk[len(out) + 1 :]
                    await loop.run_in_executor(self._threads, self._replace, slot)
            except Exception as e:  # e.g. a replacement failed to start: fail this request, keep serving
                log.exception("verifier slot %d failed", slot)
                self.stats.pending -= len(chunk)
                if not fut.done():
                    fut.set_exception(RuntimeError(f"verifier pool failure: {e}"))
                continue
            except BaseException:
                self.stats.pending -= len(chunk)
                if not fut.done():
                    fut.cancel()
                raise
            finished = len(chunk) - len(rest)
            self.stats.pending -= finished
            self.stats.items += finished
            if rest:
                self._queue.put_nowait((rest, fut, done))
            elif not fut.done():
                fut.set_result(done)

    def _failure(self, status: str) -> ScoreResult:
        if status == "timeout":
            self.stats.timeouts += 1
            return ScoreResult(
                overall=0.0, accuracy=0.0, timed_out=True, error=f"verification exceeded {self.time_limit_s:g} s"
            )
        self.stats.worker_deaths += 1
        return ScoreResult(overall=0.0, accuracy=0.0, error="verifier worker died on this item")

    def _replace(self, slot: int) -> None:
        """Kill worker ``slot`` and swap in a warm spare (or start a fresh one); runs in the slot's thread."""
        self._workers[slot].kill()
        try:
            self._workers[slot] = self._spares.get_nowait()
        except queue.Empty:
            self._workers[slot] = _Worker(self._ctx, self.memory_limit_mb)
        if not self._closing:
            self._spare_thread.submit(self._refill_spares)
        self.stats.restarts += 1
        log.warning("verifier worker %d replaced (%d restarts so far)", slot, self.stats.restarts)
