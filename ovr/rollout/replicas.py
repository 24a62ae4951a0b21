"""What the rollout client knows about each replica while it samples: load, health, weight version
and whether it is generating at all.

A monitor task (:meth:`Replicas.watch`) asks every replica every ``rollout.poll_interval_s`` for
the weight version it serves (``/weight_info``) and how many tokens it has generated so far (vLLM's
``vllm:generation_tokens_total`` on ``/metrics``). From that:

- **progress**: a stream that has been silent for ``rollout.progress_timeout_s`` is given up only
  if its replica generated nothing in that window either (or cannot be reached); a request queued
  behind others on a busy replica keeps waiting, one on a dead or hung replica does not;
- **unreachable replicas**: a replica that refuses connections (its process or pod is gone, or
  not listening yet) is left out of routing until a look reaches it again, so retries go to the
  others at once instead of spending a prompt's attempts on it; with every replica unreachable, a
  prompt waits for one (``progress_timeout_s`` per attempt) rather than failing within seconds;
- **stale replicas**: a replica serving another version than the current one (it restarted and
  came back with the weights it was started with, or missed a push) is never picked; with a
  :class:`WeightKeeper` (the trainer's weight sync) it is handed to :meth:`WeightKeeper.restore`,
  which makes it serve the current weights, and it is picked again once it does. The reload runs in
  its own thread from the moment the replica is seen stale (a probe or a response), so it outlives
  the ``generate`` call that noticed it: a reload slower than one batch is followed by the next
  call, never cancelled and started again. Without one the
  current version is the newest any replica served since the client started (eval: a restarted
  replica is left out, the others finish the batch);
- **attribution**: the latest time each replica was seen serving each version, so a response
  finished at ``t`` on a replica seen at its request's version at a time ``>= t`` was sampled
  under that version only (versions only grow; a restart breaks the stream).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
import time
from typing import Protocol

import httpx

from ovr.rollout.protocol import DEFAULT_TOKEN_ENV, ReplicaFailed, check_auth, generated_tokens, parse_version

log = logging.getLogger("ovr.rollout")
BENCH_S = 5.0  # how long a replica that failed an attempt is avoided


class WeightKeeper(Protocol):
    """The weight sync, as the client sees it: the version replicas must serve, and a way to bring
    a restarted replica back to it."""

    version: int
    # a keeper that pushes while requests run may also have ``pushing``: the version being pushed (None between pushes)

    def restore(self, endpoint: str) -> bool:
        """Make ``endpoint`` serve ``version`` again (blocking; raises if it cannot now): True when it
        does on return, False when it will only after the next push (NCCL: the group is rebuilt then)."""


class Replicas:
    """Routing and health state of the replicas one client samples from."""

    def __init__(
        self,
        endpoints: list[str],
        keeper: WeightKeeper | None = None,
        poll_s: float = 5.0,
        token_env: str = DEFAULT_TOKEN_ENV,
    ):
        self.endpoints = endpoints
        self.token_env = token_env
        self.keeper = keeper
        self.poll_s = poll_s
        self.in_flight = {e: 0 for e in endpoints}
        self.benched_until = {e: 0.0 for e in endpoints}
        self.failures = {e: 0 for e in endpoints}
        self.served = {e: 0 for e in endpoints}  # requests answered in full
        self.restored = {e: 0 for e in endpoints}  # times the keeper brought a replica back
        self.outages = {e: 0 for e in endpoints}  # times a replica became unreachable
        self.stale: set[str] = set()
        self.down: set[str] = set()  # refused a connection at its last look
        self.seen_at: dict[str, dict[int, float]] = {e: {} for e in endpoints}  # version -> latest time seen
        self.generated: dict[str, tuple[float, float]] = {}  # endpoint -> (tokens so far, when it last grew)
        self.newest = 0  # newest version any replica served (the current one without a keeper)
        self.has_version_route = {e: True for e in endpoints}
        self._order = itertools.count()
        self._reloads: dict[str, tuple[concurrent.futures.Future, int]] = {}  # keeper.restore calls, by replica
        self._followers: dict[str, asyncio.Task] = {}  # this watch's waiters on those calls
        self._retry_at = {e: 0.0 for e in endpoints}  # a failed restore is tried again from then
        self._waiting_push: set[str] = set()  # handed to the keeper, served again after the next push
        self._http: httpx.AsyncClient | None = None  # while a watch runs

    # ------------------------------------------------------------------ versions
    def current(self) -> int:
        """The version every response must come from."""
        return self.keeper.version if self.keeper is not None else self.newest

    def accepts(self, version: int) -> bool:
        """``version`` may be served now: the current one, or the one the keeper is pushing (weights
        pushed while requests run, async RL: a replica already serves it before the push returns)."""
        return version == self.current() or version == getattr(self.keeper, "pushing", None)

    def observe(self, endpoint: str, version: int) -> None:
        """``endpoint`` served ``version`` just now; a version other than the current one makes it stale."""
        now = time.monotonic()
        self.seen_at[endpoint][version] = now
        if endpoint in self._reloads and self._reloads[endpoint][0].done():
            self._settle(endpoint)  # finished while no watch followed it
        if self.keeper is None and version > self.newest:
            self.newest = version
            self.stale |= {e for e in self.endpoints if max(self.seen_at[e], default=-1) < version}
        if self.accepts(version):
            self.stale.discard(endpoint)
            self._waiting_push.discard(endpoint)
            return
        if endpoint not in self.stale:
            log.warning(
                "%s serves weights v%d, not v%d: left out until it serves them", endpoint, version, self.current()
            )
            self.stale.add(endpoint)
        self._restore(endpoint)

    def sampled_under(self, endpoint: str, version: int, finished_at: float) -> bool:
        """Whether a response finished at ``finished_at`` was generated under ``version`` only."""
        return self.seen_at[endpoint].get(version, float("-inf")) >= finished_at

    async def version_of(self, http: httpx.AsyncClient, endpoint: str, timeout: float = 30.0) -> int:
        """The version ``endpoint`` serves now (0 when it has no dev routes), recorded."""
        if not self.has_version_route[endpoint]:
            self.observe(endpoint, 0)
            return 0
        try:
            r = await http.get(endpoint + "/weight_info", timeout=timeout)
        except httpx.TransportError as e:
            if isinstance(e, httpx.ConnectError):
                self.unreachable(endpoint, e)
            raise ReplicaFailed(f"{endpoint}: {e!r}") from e
        self.reachable(endpoint)
        if r.status_code == 404:
            self.has_version_route[endpoint] = False
            return await self.version_of(http, endpoint)
        check_auth(r, self.token_env)
        if r.status_code != 200:
            raise ReplicaFailed(f"{endpoint}/weight_info answered {r.status_code}")
        version = parse_version(r.json().get("weight_version"))
        self.observe(endpoint, version)
        return version

    # ------------------------------------------------------------------ routing
    def usable(self) -> list[str]:
        return [e for e in self.endpoints if e not in self.stale and e not in self.down]

    def unreachable(self, endpoint: str, error: Exception) -> None:
        """``endpoint`` refused a connection: left out until a look (or a request) reaches it."""
        if endpoint not in self.down:
            log.warning("%s is unreachable (%r): left out until it answers", endpoint, error)
            self.down.add(endpoint)
            self.outages[endpoint] += 1

    def reachable(self, endpoint: str) -> None:
        if endpoint in self.down:
            log.warning("%s answers again", endpoint)
            self.down.discard(endpoint)

    def pick(self, avoid: set[str] = frozenset()) -> str | None:
        """The usable replica with the fewest in-flight requests, healthy ones first (round-robin
        among equals); None when every replica is stale or unreachable."""
        now = time.monotonic()
        usable = self.usable()
        pool = [e for e in usable if e not in avoid] or usable
        if not pool:
            return None
        start = next(self._order) % len(self.endpoints)
        rotated = self.endpoints[start:] + self.endpoints[:start]
        return min((e for e in rotated if e in pool), key=lambda e: (self.benched_until[e] > now, self.in_flight[e]))

    def failed(self, endpoint: str) -> None:
        self.failures[endpoint] += 1
        self.benched_until[endpoint] = time.monotonic() + BENCH_S

    def progressing(self, endpoint: str, window_s: float) -> bool:
        """Whether ``endpoint`` generated tokens (for anyone) within the last ``window_s`` seconds."""
        _, grew = self.generated.get(endpoint, (0.0, float("-inf")))
        return time.monotonic() - grew < window_s

    # ------------------------------------------------------------------ monitor
    async def probe(self, http: httpx.AsyncClient, endpoint: str) -> None:
        """One look at ``endpoint``: its version and its generated-token counter (a busy CPU engine
        may take seconds to answer: the deadline is generous, an unreachable replica just shows no
        progress)."""
        timeout = max(10.0, 2 * self.poll_s)
        try:
            await self.version_of(http, endpoint, timeout=timeout)
            r = await http.get(endpoint + "/metrics", timeout=timeout)
        except (ReplicaFailed, httpx.TransportError):
            return  # unreachable: no progress recorded; its streams fail on their own or time out
        total = generated_tokens(r.text) if r.status_code == 200 else None
        if total is not None:
            before, grew = self.generated.get(endpoint, (total, float("-inf")))
            self.generated[endpoint] = (total, time.monotonic() if total > before else grew)

    # ------------------------------------------------------------------ restore
    def _restore(self, endpoint: str) -> None:
        """Hand stale ``endpoint`` to the keeper (once: a reload in flight is followed, not restarted)
        and, inside a watch, follow the reload so the replica is picked as soon as it serves."""
        if self.keeper is None or endpoint in self._waiting_push:
            return
        if endpoint not in self._reloads:
            if time.monotonic() < self._retry_at[endpoint]:
                return
            done: concurrent.futures.Future = concurrent.futures.Future()
            keeper = self.keeper

            def reload() -> None:
                try:
                    done.set_result(keeper.restore(endpoint))
                except BaseException as e:  # reported by the follower
                    done.set_exception(e)

            self._reloads[endpoint] = (done, keeper.version)
            # a daemon thread, not an executor's: a run that ends does not wait at exit for a reload
            threading.Thread(target=reload, name=f"restore {endpoint}", daemon=True).start()
        if self._http is not None and endpoint not in self._followers:
            with contextlib.suppress(RuntimeError):  # no running loop: the next watch follows it
                self._followers[endpoint] = asyncio.ensure_future(self._follow(self._http, endpoint))

    def _settle(self, endpoint: str) -> bool:
        """Act on ``endpoint``'s finished reload; True when the replica serves the current weights now."""
        done, version = self._reloads.pop(endpoint)
        try:
            now = done.result()
        except Exception as e:
            self._retry_at[endpoint] = time.monotonic() + self.poll_s
            log.warning("restoring %s to weights v%d failed (tried again later): %r", endpoint, version, e)
            return False
        if not now:
            self._waiting_push.add(endpoint)
            log.warning("%s gets weights v%d at the next push; left out until then", endpoint, version)
            return False
        self.restored[endpoint] += 1
        log.warning("%s restored to weights v%d", endpoint, version)
        return True

    async def _follow(self, http: httpx.AsyncClient, endpoint: str) -> None:
        """Wait for ``endpoint``'s reload (polled: the thread does not belong to this event loop), act
        on its outcome and, once restored, look at the replica so it is picked again at once."""
        try:
            while (job := self._reloads.get(endpoint)) is not None and not job[0].done():
                await asyncio.sleep(0.1)
            restored = job is not None and self._settle(endpoint)  # None: settled by a look meanwhile
        finally:
            self._followers.pop(endpoint, None)
        if restored:
            with contextlib.suppress(ReplicaFailed, httpx.TransportError):
                await self.version_of(http, endpoint)

    @contextlib.asynccontextmanager
    async def watch(self, http: httpx.AsyncClient):
        """Probe every replica now and then every ``poll_s`` seconds while the block runs."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.poll_s)
                await asyncio.gather(*(self.probe(http, e) for e in self.endpoints))

        self._http = http
        await asyncio.gather(*(self.probe(http, e) for e in self.endpoints))
        task = asyncio.ensure_future(loop())
        try:
            yield self
        finally:
            self._http = None
            task.cancel()  # reloads in flight go on in their threads; the next watch follows them
            for t in [task, *self._followers.values()]:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
