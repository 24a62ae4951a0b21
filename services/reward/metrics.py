"""Prometheus metrics of the reward service, in a registry owned by each app instance."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_PATHS = {"/v1/score", "/healthz", "/readyz", "/metrics"}
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _PoolCollector:
    """Reads the verifier pool's counters at scrape time."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        pool = getattr(self.app.state, "pool", None)
        stats = pool.stats if pool is not None else None
        depth = GaugeMetricFamily("ovr_reward_queue_depth", "Items submitted and not yet answered.")
        depth.add_metric([], stats.pending if stats else 0)
        alive = GaugeMetricFamily("ovr_reward_workers_alive", "Live verifier worker processes.")
        alive.add_metric([], pool.alive_workers() if pool is not None else 0)
        ready = GaugeMetricFamily("ovr_reward_ready", "1 when the worker pool is warm.")
        ready.add_metric([], float(bool(pool is not None and pool.ready)))
        yield from (depth, alive, ready)
        for name, doc, attr in (
            ("ovr_reward_timeouts", "Items that exceeded the per-item time limit.", "timeouts"),
            ("ovr_reward_worker_deaths", "Items whose worker died while scoring them.", "worker_deaths"),
            ("ovr_reward_worker_restarts", "Verifier workers replaced.", "restarts"),
            ("ovr_reward_items_scored", "Items answered by the pool.", "items"),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], getattr(stats, attr) if stats else 0)
            yield c


class ServiceMetrics:
    """Request counters and latency histogram plus the pool's gauges, for one app."""

    def __init__(self, app):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ovr_reward_requests", "HTTP requests by path and status.", ["path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "ovr_reward_request_seconds", "Request latency.", ["path"], buckets=_BUCKETS, registry=self.registry
        )
        self.rejected = Counter(
            "ovr_reward_rejected", "Requests refused before scoring, by reason.", ["reason"], registry=self.registry
        )
        self.registry.register(_PoolCollector(app))


class MetricsMiddleware:
    """Pure ASGI middleware counting requests by path/status and timing them."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in _PATHS else "other"
        status = {"code": 500}
        start = time.perf_counter()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
