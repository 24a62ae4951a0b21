"""Gzip on a rollout replica's answers, streamed ones included.

Per-token log-probs make vLLM's OpenAI JSON large (about 92 bytes per generated token answered
whole, 100 with ``stream_interval=64``); tens of MB per 16 x 48k-token group. Starlette's
``GZipMiddleware`` compresses each streamed chunk with a sync flush (no chunk is held back) but
by default leaves ``text/event-stream`` alone; :class:`StreamingGzip` compresses it too, at a
level that keeps the API server's event loop light. vLLM loads it through
``--middleware services.rollout.compress.StreamingGzip`` (``app.add_middleware(cls)``, no arguments);
clients ask for it with ``Accept-Encoding: gzip`` (httpx does by default).

It imports only Starlette (which vLLM carries), so it runs inside the rollout image.
"""

from __future__ import annotations

from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp

#: the import path vLLM's ``--middleware`` takes
MIDDLEWARE = "services.rollout.compress.StreamingGzip"
#: zlib level: 1 keeps the cost on the server's event loop low and already shrinks JSON ~4x
LEVEL = 1


class StreamingGzip(GZipMiddleware):
    """Starlette's gzip, server-sent events included (each chunk flushed as it is sent)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(
            app,
            minimum_size=500,
            compresslevel=LEVEL,
            exclude_content_types=tuple(t for t in DEFAULT_EXCLUDED_CONTENT_TYPES if t != "text/event-stream"),
        )
