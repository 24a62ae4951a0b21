"""Client of the reward service, used by the RL trainer and the evaluator.

Async with connection pooling (one ``httpx.AsyncClient`` per client and event loop), large inputs
split into batches of at most ``batch_size`` items and ``max_request_bytes`` of JSON (the service
refuses bodies over its limit, 64 MiB by default, with 413: 1024 responses of 32k-48k tokens are far
over it), retries with exponential backoff (honouring ``Retry-After``) on 429, 5xx and connection
errors, a batch the service still answers 413 split in halves and sent again (a service configured
with a lower limit), and a deadline per ``score`` call. ``RewardClient.in_process()`` scores in this
process with no time limit and no HTTP — for unit tests only.

>>> with local_server() as srv:  # doctest: +SKIP
...     results = RewardClient(srv.url).score_sync([ScoreItem(response=r"\\boxed{4}", reference="4")])
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ovr.retry import retry_async
from ovr.schema import ScoreItem, ScoreRequest, ScoreResponse, ScoreResult

if TYPE_CHECKING:  # pragma: no cover
    from ovr.config import RewardConfig

log = logging.getLogger(__name__)
_RETRYABLE = {429, 500, 502, 503, 504}
_TOO_LARGE = 413
#: bytes of ``{"items":[`` + ``]}`` around the items of a request body
_ENVELOPE = len(ScoreRequest(items=[]).model_dump_json())
DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20


class RewardServiceError(RuntimeError):
    """The service refused the request for good (4xx other than 429) or retries ran out."""


class _TooLarge(RewardServiceError):
    """413: the body (or item count) is over the service's limit."""


def byte_batches(items: Sequence[ScoreItem], max_items: int, max_bytes: int) -> list[list[tuple[ScoreItem, str]]]:
    """``items`` in order, packed into batches of at most ``max_items`` items whose request body
    (``ScoreRequest`` JSON) is at most ``max_bytes``; each item paired with its JSON. An item that
    alone exceeds ``max_bytes`` is a ValueError naming it (no request could carry it).

    >>> [len(b) for b in byte_batches([ScoreItem(response="x" * 100, reference="1")] * 5, 4, 700)]  # 260 bytes each
    [2, 2, 1]
    """
    batches: list[list[tuple[ScoreItem, str]]] = []
    size = _ENVELOPE
    for i, item in enumerate(items):
        text = item.model_dump_json()
        n = len(text.encode()) + 1  # the comma between items
        if _ENVELOPE + n > max_bytes:
            raise ValueError(
                f"item {i} alone is {n} bytes of JSON, over the request limit of {max_bytes} bytes "
                "(reward.max_request_bytes, below the service's OVR_REWARD_MAX_BODY_BYTES)"
            )
        if not batches or len(batches[-1]) >= max_items or size + n > max_bytes:
            batches.append([])
            size = _ENVELOPE
        batches[-1].append((item, text))
        size += n
    return batches


class RewardClient:
    """``await score(items)`` -> one :class:`ScoreResult` per item, in order."""

    def __init__(
        self,
        base_url: str | None,
        token: str | None = None,
        timeout_s: float = 600.0,
        retries: int = 5,
        *,
        batch_size: int = 1024,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        concurrency: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ):
        if timeout_s <= 0 or retries < 0 or batch_size < 1 or concurrency < 1 or max_request_bytes < 1024:
            raise ValueError(
                "timeout_s > 0, retries >= 0, batch_size >= 1, concurrency >= 1 and max_request_bytes >= 1024 required"
            )
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token, self.timeout_s, self.retries = token, timeout_s, retries
        self.batch_size, self.concurrency, self.max_request_bytes = batch_size, concurrency, max_request_bytes
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def in_process(cls) -> RewardClient:
        """A client that calls :func:`ovr.rewards.score_items` directly (unit tests only: no time limit)."""
        return cls(None)

    @classmethod
    def from_config(cls, cfg: RewardConfig, base_url: str | None = None, **kwargs) -> RewardClient:
        """A client for ``cfg`` (a :class:`ovr.config.RewardConfig`): ``base_url`` or ``cfg.url``,
        the bearer token from the env var named by ``cfg.token_env`` (if set), ``cfg.max_request_bytes``."""
        import os

        url = base_url or cfg.url
        if url is None:
            raise ValueError("reward.url is not set and no base_url given (start one with local_server())")
        kwargs.setdefault("timeout_s", cfg.timeout_s)
        kwargs.setdefault("max_request_bytes", cfg.max_request_bytes)
        return cls(url, token=os.environ.get(cfg.token_env) or None, **kwargs)

    # ----------------------------------------------------------------- public API
    async def score(self, items: Sequence[ScoreItem | dict[str, Any]]) -> list[ScoreResult]:
        """Score ``items`` (models or dicts); raises TimeoutError past ``timeout_s`` for the whole call."""
        parsed = [it if isinstance(it, ScoreItem) else ScoreItem.model_validate(it) for it in items]
        if not parsed:
            return []
        if self.base_url is None:
            from ovr.rewards import score_items

            return await asyncio.to_thread(score_items, parsed)
        batches = byte_batches(parsed, self.batch_size, self.max_request_bytes)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(batch):
            async with gate:
                return await self._post_splitting(batch)

        async with asyncio.timeout(self.timeout_s):
            chunks = await asyncio.gather(*(one(b) for b in batches))
        return [r for chunk in chunks for r in chunk]

    def score_sync(self, items: Sequence[ScoreItem | dict[str, Any]]) -> list[ScoreResult]:
        """Blocking :meth:`score` for code without an event loop (runs its own loop per call)."""

        async def run():
            try:
                return await self.score(items)
            finally:
                await self.aclose()

        return asyncio.run(run())

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http, self._http_loop = None, None

    async def __aenter__(self) -> RewardClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- internals
    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=10.0),
                limits=httpx.Limits(
                    max_connections=max(self.concurrency, 4), max_keepalive_connections=self.concurrency
                ),
            )
            self._http_loop = loop
        return self._http

    async def _post_splitting(self, batch: list[tuple[ScoreItem, str]]) -> list[ScoreResult]:
        """POST ``batch``; on 413 (the service's limit is lower than ours) the halves, one after the other."""
        try:
            return await self._post_with_retries(batch)
        except _TooLarge:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            log.warning("reward service answered 413 to %d items; sending them in two halves", len(batch))
            return await self._post_splitting(batch[:half]) + await self._post_splitting(batch[half:])

    async def _post_with_retries(self, batch: list[tuple[ScoreItem, str]]) -> list[ScoreResult]:
        body = '{"items":[' + ",".join(text for _, text in batch) + "]}"
        headers = {"Content-Type": "application/json"}

        async def post() -> list[ScoreResult]:
            try:
                resp = await self._client().post("/v1/score", content=body, headers=headers)
            except httpx.TransportError as e:
                raise _Transient(f"{type(e).__name__}: {e}") from e
            if resp.status_code == 200:
                results = ScoreResponse.model_validate_json(resp.content).results
                if len(results) != len(batch):
                    raise RewardServiceError(f"service answered {len(results)} results for {len(batch)} items")
                return results
            detail = resp.text[:500]
            if resp.status_code == _TOO_LARGE:
                raise _TooLarge(f"reward service answered 413 to {len(batch)} item(s), {len(body)} bytes: {detail}")
            if resp.status_code not in _RETRYABLE:
                raise RewardServiceError(f"reward service answered {resp.status_code}: {detail}")
            raise _Transient(f"{resp.status_code}: {detail}", _retry_after(resp.headers.get("Retry-After")))

        def warn(attempt: int, err: BaseException, delay: float) -> None:
            log.warning("reward service attempt %d failed (%s); retrying in %.1f s", attempt, err, delay)

        try:
            return await retry_async(
                post,
                retries=self.retries,
                backoff_s=self.backoff_s,
                max_backoff_s=self.max_backoff_s,
                retry_on=lambda e: isinstance(e, _Transient),
                on_retry=warn,
            )
        except _Transient as err:
            raise RewardServiceError(f"reward service failed after {self.retries + 1} attempts: {err}") from err


class _Transient(Exception):
    """A failure worth another try (connection error, 429, 5xx); ``retry_after``: the server's wish."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    return float(value) if value and value.replace(".", "", 1).isdigit() else None
