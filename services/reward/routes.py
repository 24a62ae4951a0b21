"""HTTP routes: ``POST /v1/score``, ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from ovr.rewards import validate_item
from ovr.schema import ScoreRequest, ScoreResponse
from services.reward.limits import require_token

router = APIRouter()


def _check_limits(req: ScoreRequest, request: Request) -> None:
    """413 for too many items, 422 for an over-long text, an unknown reward or bad options."""
    settings, metrics = request.app.state.settings, request.app.state.metrics
    if len(req.items) > settings.max_batch_items:
        metrics.rejected.labels("batch_size").inc()
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"batch has {len(req.items)} items; the limit is {settings.max_batch_items} per request",
        )
    for i, item in enumerate(req.items):
        for fld in ("response", "reference"):
            n = len(getattr(item, fld))
            if n > settings.max_item_chars:
                metrics.rejected.labels("item_length").inc()
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"items[{i}].{fld} has {n} characters; the limit is {settings.max_item_chars}",
                )
        try:
            validate_item(item)
        except (KeyError, ValueError, ValidationError) as e:
            metrics.rejected.labels("invalid_item").inc()
            msg = e.args[0] if isinstance(e, KeyError) else str(e)
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"items[{i}]: {msg}") from None


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    dependencies=[Depends(require_token)],
    summary="Score a batch of responses (one result per item, same order)",
    responses={401: {}, 413: {}, 422: {}, 429: {}, 503: {}},
)
async def score(req: ScoreRequest, request: Request) -> ScoreResponse:
    settings, pool, metrics = request.app.state.settings, request.app.state.pool, request.app.state.metrics
    _check_limits(req, request)
    retry = {"Retry-After": str(settings.retry_after_s)}
    if not pool.ready:
        metrics.rejected.labels("not_ready").inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "worker pool is warming up", headers=retry)
    if pool.stats.pending + len(req.items) > settings.max_pending_items:
        metrics.rejected.labels("queue_full").inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"queue holds {pool.stats.pending} items (bound {settings.max_pending_items}); retry later",
            headers=retry,
        )
    return ScoreResponse(results=await pool.score(req.items))


@router.get("/healthz", summary="Liveness: the process serves HTTP and its pool did not fail")
async def healthz(request: Request) -> JSONResponse:
    error = request.app.state.startup_error
    if error is not None:
        return JSONResponse({"status": "failed", "error": error}, status_code=500)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: 503 until every verifier worker is warm")
async def readyz(request: Request) -> JSONResponse:
    pool = request.app.state.pool
    if pool.ready:
        return JSONResponse({"status": "ready", "workers": pool.alive_workers()})
    return JSONResponse(
        {"status": "starting", "error": request.app.state.startup_error},
        status_code=503,
        headers={"Retry-After": str(request.app.state.settings.retry_after_s)},
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
