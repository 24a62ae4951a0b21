"""One retry policy for every client ovr has, through tenacity: the store (S3), the reward service,
the LLM judge, the rollout replicas and the Kubernetes job follower.

A call is tried at most ``retries + 1`` times; a failure ``retry_on`` accepts waits ``backoff_s``,
doubling up to ``max_backoff_s`` (with jitter where many callers retry at once), or what the server
asked for (an exception carrying ``retry_after``, e.g. from HTTP ``Retry-After``); any other failure,
and the last one, is raised as it is, so each client wraps it in its own clear error. ``on_retry``
hears ``(attempt, exception, delay)`` before each wait (a log line, a status event).

>>> calls = []
>>> def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise ConnectionError("refused")
...     return "ok"
>>> retry_call(flaky, retries=4, backoff_s=0.0, retry_on=lambda e: isinstance(e, ConnectionError))
'ok'
>>> len(calls)
3
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

T = TypeVar("T")
OnRetry = Callable[[int, BaseException, float], None]


def _wait(backoff_s: float, max_backoff_s: float, jitter: bool) -> Callable[[RetryCallState], float]:
    import random

    def wait(state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(err, "retry_after", None)
        if asked is not None:
            return min(float(asked), max_backoff_s)
        delay = min(backoff_s * 2 ** (state.attempt_number - 1), max_backoff_s)
        return delay * (0.5 + random.random() / 2) if jitter else delay

    return wait


def _policy(
    retries: int,
    backoff_s: float,
    max_backoff_s: float,
    retry_on: Callable[[BaseException], bool],
    on_retry: OnRetry | None,
    jitter: bool,
) -> dict:
    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            on_retry(state.attempt_number, state.outcome.exception(), state.next_action.sleep)

    return {
        "stop": stop_after_attempt(retries + 1),
        "wait": _wait(backoff_s, max_backoff_s, jitter),
        "retry": retry_if_exception(retry_on),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def retry_call(
    fn: Callable[[], T],
    *,
    retries: int,
    backoff_s: float,
    retry_on: Callable[[BaseException], bool],
    max_backoff_s: float = 30.0,
    on_retry: OnRetry | None = None,
    jitter: bool = False,
) -> T:
    """``fn()``, retried by the policy above."""
    return Retrying(**_policy(retries, backoff_s, max_backoff_s, retry_on, on_retry, jitter))(fn)


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff_s: float,
    retry_on: Callable[[BaseException], bool],
    max_backoff_s: float = 30.0,
    on_retry: OnRetry | None = None,
    jitter: bool = True,
) -> T:
    """``await fn()``, retried by the policy above (waits with ``asyncio.sleep``)."""
    return await AsyncRetrying(**_policy(retries, backoff_s, max_backoff_s, retry_on, on_retry, jitter))(fn)
