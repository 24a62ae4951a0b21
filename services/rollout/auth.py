"""Bearer-token guard on every route of a rollout replica (vLLM's OpenAI server).

vLLM's own ``--api-key`` guards only ``/v1``, ``/v2``, ``/inference`` and ``/cohere``: in dev mode
``/collective_rpc`` (any worker method by name), the weight-transfer routes, ``/pause``,
``/resume`` and ``/reset_prefix_cache`` would stay open. :class:`BearerTokenMiddleware` is a pure
ASGI middleware that vLLM loads through ``--middleware services.rollout.auth.BearerTokenMiddleware``
(vLLM calls ``app.add_middleware(cls)`` with no arguments, so the token comes from the
``OVR_ROLLOUT_TOKEN`` environment variable). It answers 401 to every HTTP request and closes every
websocket without ``Authorization: Bearer <token>``, except ``GET``/``HEAD`` of the probes in
:data:`OPEN_PATHS`: ``/health`` and ``/ping`` (liveness/readiness; the kubelet sends no token) and
``/metrics`` (Prometheus; read-only counters, reachable only through the NetworkPolicy, so the
monitoring stack never holds a token that can replace the policy's weights).

This module imports only the standard library and Starlette, so it runs inside the rollout image
(vLLM's image), where ovr is not installed.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: environment variable of the replica holding the token the middleware requires
SERVER_TOKEN_ENV = "OVR_ROLLOUT_TOKEN"
#: the import path vLLM's ``--middleware`` takes
MIDDLEWARE = "services.rollout.auth.BearerTokenMiddleware"
#: exact paths answered without a token (GET/HEAD only)
OPEN_PATHS = frozenset({"/health", "/ping", "/metrics", "/metrics/"})
_OPEN_METHODS = frozenset({"GET", "HEAD"})
_WS_POLICY_VIOLATION = 1008


def token_matches(authorization: str | None, expected_digest: bytes) -> bool:
    """Whether an ``Authorization`` header carries the bearer token whose SHA-256 is ``expected_digest``.

    >>> token_matches("Bearer s3cret", hashlib.sha256(b"s3cret").digest())
    True
    >>> token_matches("Basic s3cret", hashlib.sha256(b"s3cret").digest())
    False
    """
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), expected_digest)


class BearerTokenMiddleware:
    """401 for every request without the replica's bearer token, except the probes in ``OPEN_PATHS``."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        token = token if token is not None else os.environ.get(SERVER_TOKEN_ENV, "")
        if not token.strip():
            raise RuntimeError(
                f"{MIDDLEWARE} is loaded but {SERVER_TOKEN_ENV} is empty: refusing to serve the "
                "dev routes (weight reload, /collective_rpc) without a token"
            )
        self.app = app
        self._digest = hashlib.sha256(token.strip().encode()).digest()

    def _is_open(self, scope: Scope) -> bool:
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        return scope["type"] == "http" and scope.get("method") in _OPEN_METHODS and path in OPEN_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._is_open(scope):
            await self.app(scope, receive, send)
            return
        if token_matches(Headers(scope=scope).get("authorization"), self._digest):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
            return
        response = JSONResponse(
            {"error": "missing or invalid bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
