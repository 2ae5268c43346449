"""The API's Prometheus metrics at ``GET /metrics``: requests by method, route template and status
class, and their latency. Route templates (``/api/v1/cameras/{camera_id}``), never raw paths, so a
scan of random URLs cannot grow the label space. Scraped as job ``api`` by the local stack's
Prometheus and docker-compose's."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LABELS = ["method", "route", "status"]


def install(app: FastAPI) -> CollectorRegistry:
    """Add the request metrics middleware and the ``/metrics`` route; returns the app's registry."""
    registry = CollectorRegistry(auto_describe=True)
    requests = Counter("footfall_api_requests", "HTTP requests answered", LABELS, registry=registry)
    latency = Histogram(
        "footfall_api_request_duration_seconds",
        "Time to answer (for streams: to the first byte)",
        ["method", "route"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        registry=registry,
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            requests.labels(request.method, template, f"{status // 100}xx").inc()
            latency.labels(request.method, template).observe(time.perf_counter() - start)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
