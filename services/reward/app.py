"""The reward service app factory: ``uvicorn services.reward.app:create_app --factory``.

The lifespan starts the verifier pool in the background, so ``/healthz`` answers at once and
``/readyz`` turns from 503 to 200 when every worker has passed its warm-up check. State lives on
``app.state`` (settings, pool, metrics); nothing is module-global.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ovr.rewards.pool import VerifierPool
from services.reward.limits import BodyLimitMiddleware
from services.reward.metrics import MetricsMiddleware, ServiceMetrics
from services.reward.routes import router
from services.reward.settings import RewardSettings

log = logging.getLogger("ovr.reward")


async def _start_pool(app: FastAPI) -> None:
    try:
        await app.state.pool.start()
    except Exception as e:  # surfaced by /healthz (500) and /readyz (503)
        log.exception("verifier pool failed to start")
        app.state.startup_error = f"{type(e).__name__}: {e}"


@asynccontextmanager
async def lifespan(app: FastAPI):
    starting = asyncio.create_task(_start_pool(app))
    try:
        yield
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await app.state.pool.close()


def create_app(settings: RewardSettings | None = None) -> FastAPI:
    """A new reward service app (settings from ``OVR_REWARD_*`` env vars when not given)."""
    settings = settings or RewardSettings()
    logging.basicConfig(level=settings.log_level.upper())
    app = FastAPI(
        title="ovr reward service",
        version="1",
        summary="Verifiable rewards for RL and evaluation, each item under a time limit.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.startup_error = None
    app.state.pool = VerifierPool(
        settings.workers,
        settings.time_limit_s,
        chunk_size=settings.chunk_size,
        memory_limit_mb=settings.memory_limit_mb,
        start_method=settings.start_method,
        spares=settings.spare_workers,
    )
    app.state.metrics = ServiceMetrics(app)
    app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
