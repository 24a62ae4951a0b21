"""What every caller of the rollout replicas shares: the bearer token header, vLLM's version
string, and the two kinds of failure (a prompt that cannot be sampled, and one attempt that
another replica may get through).

>>> parse_version("default"), parse_version("7")
(0, 7)
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from ovr.config import RolloutConfig

#: the env var holding the replicas' bearer token unless a config names another
DEFAULT_TOKEN_ENV: str = RolloutConfig.model_fields["token_env"].default


class RolloutError(RuntimeError):
    """A prompt could not be sampled (bad request, or every attempt failed)."""


class ReplicaFailed(Exception):
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


def generated_tokens(metrics_text: str) -> float | None:
    """vLLM's ``vllm:generation_tokens_total`` (summed over engines) from its Prometheus ``/metrics``;
    None when the page has no such counter.

    >>> generated_tokens('vllm:generation_tokens_total{engine="0",model_name="p"} 6400.0\\n')
    6400.0
    """
    total, found = 0.0, False
    for line in metrics_text.splitlines():
        if line.startswith("vllm:generation_tokens_total"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def check_auth(r: httpx.Response, token_env: str) -> None:
    """A refused token fails at once (no other replica would accept it), naming the env var to set."""
    if r.status_code in (401, 403):
        sent = "authorization" in r.request.headers
        state = "holds a token the replica refuses" if sent else "is not set"
        raise RolloutError(f"{r.request.url} answered {r.status_code}: ${token_env} {state}")
