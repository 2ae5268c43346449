"""Seed 002's endpoints: ``GET /api/v1/metrics`` and ``GET /api/v1/sla/status``, mapped onto our tables
(stream_stats / stream_health_1h, the count and occupancy aggregates); ``GET /api/v1/alerts`` is in
``api.routes.alerts``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from api import queries
from api.deps import Conn, known_camera, utcnow
from api.schemas import ID_PATTERN

router = APIRouter(prefix="/api/v1", tags=["monitoring (seed 002)"])

TIME_RANGE = Query("24h", alias="timeRange", description="how far back from now: 15m, 1h, 24h, 7d, 30d ...")


@router.get("/metrics", summary="One metric as a time series with min/max/avg")
async def metrics(
    conn: Conn,
    metric: str = Query(..., description="one of: " + ", ".join(queries.METRICS)),
    time_range: str = TIME_RANGE,
    aggregation: Literal["avg", "sum", "min", "max", "count"] | None = Query(
        None, description="how rows inside a bucket combine; default depends on the metric"
    ),
    interval: str | None = Query(None, description="bucket width (1m, 5m, 1h, 1d ...); default: 1h, or 1m under 6h"),
    camera_id: str | None = Query(None, pattern=ID_PATTERN, description="one camera; default all"),
) -> dict[str, Any]:
    """Stream metrics come from ``stream_health_1h`` for whole-hour intervals and from
    ``stream_stats`` below an hour; ``crossings`` and ``occupancy`` from their aggregates."""
    if camera_id is not None:
        await known_camera(conn, camera_id)
    m = queries.METRICS.get(metric)
    if m is None:
        raise queries.ParamError("metric", f"unknown metric {metric!r}; one of: {', '.join(queries.METRICS)}")
    span = queries.parse_duration(time_range, "timeRange")
    step = queries.parse_duration(interval, "interval") if interval else (
        timedelta(minutes=1) if span <= timedelta(hours=6) else timedelta(hours=1)
    )  # fmt: skip
    end = utcnow()
    start, end = queries.time_range(end - span, end, span, step, end)
    agg = aggregation or m.default_aggregation
    relation, _, _ = queries.metric_source(m, step)
    sql = queries.metrics_sql(m, agg, step, camera_id is not None)
    rows = await (
        await conn.execute(sql, {"step": step, "start": start, "end": end, "camera_id": camera_id})
    ).fetchall()
    data = [{"timestamp": r["ts"], "value": r["value"]} for r in rows]
    return {
        "metric": metric,
        "unit": m.unit,
        "aggregation": agg,
        "interval_s": int(step.total_seconds()),
        "from": start,
        "to": end,
        "camera_id": camera_id,
        "source": relation,
        "data": data,
        "summary": queries.summary([d["value"] for d in data]),
    }


@router.get("/sla/status", summary="Uptime, response time and error rate against the SLA")
async def sla_status(
    request: Request,
    conn: Conn,
    service: str = Query("all", pattern=ID_PATTERN, description="a camera id, or `all` for the whole fleet"),
    time_range: str = TIME_RANGE,
) -> dict[str, Any]:
    """From ``stream_health_1h``: ``uptime`` in percent of health reports online (target 99.9),
    ``responseTime`` the capture -> publish latency in ms (median, sample-weighted; target 1000),
    ``errorRate`` (dropped + undecodable frames) / frames read. ``status``: ``critical`` below the
    uptime target or above 5 % errors, ``warning`` over the response target or above 1 % errors,
    ``unknown`` with no data. ``capacity`` (when a load test ran in the last day): the last
    performance test's frames/s and capture -> counted / row visible p99 (``api.perftest``)."""
    span = queries.parse_duration(time_range, "timeRange")
    end = utcnow()
    start = queries.floor_time(end - span, timedelta(hours=1))
    one = service != "all"
    sql = queries.SLA_BY_CAMERA.format(camera_filter="AND camera_id = %(camera_id)s" if one else "")
    rows = await (await conn.execute(sql, {"start": start, "end": end, "camera_id": service})).fetchall()
    if one and not rows:
        known = await (await conn.execute("SELECT 1 FROM cameras WHERE camera_id = %s", (service,))).fetchone()
        if known is None:
            raise HTTPException(404, f"unknown camera {service!r} (service is a camera id or 'all')")
    overall = queries.sla_figures(rows)
    out = {"service": service, "timeRange": time_range, "from": start, "to": end, **overall}
    out["targets"] = {
        "uptime": queries.SLA_UPTIME_PCT,
        "responseTime": queries.SLA_RESPONSE_MS,
        "errorRate": queries.SLA_ERROR_RATE_CRITICAL,
    }
    capacity = await _capacity(request)
    if capacity is not None:
        out["capacity"] = capacity
    if not one:
        out["cameras"] = [{"camera_id": r["camera_id"], **queries.sla_figures([r])} for r in rows]
    return out


async def _capacity(request: Request) -> dict[str, Any] | None:
    """The last load test's measured capacity; None without one (or with Redis down: the SLA
    figures come from the database and must not fail because of it)."""
    from api.perftest import last_capacity

    try:
        return await last_capacity(request.app.state.redis, request.app.state.settings.kafka.topic_prefix)
    except Exception:  # noqa: BLE001
        return None
