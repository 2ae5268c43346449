"""The API's read side as plain data and functions: parameter rules, SQL text, row <-> record.

Nothing here touches a connection, so every rule is unit-tested in milliseconds. Counts,
occupancy and health are read from the continuous aggregates of migration 003 (never from raw
rows): ``crossings_1m/1h/1d``, ``occupancy_1m/1h/1d``, ``stream_health_1h`` and ``peak_hours``;
zone entries, exits and dwell times from ``zone_events_1m/1h/1d`` (015).

>>> parse_duration("24h"), parse_duration("15m")
(datetime.timedelta(days=1), datetime.timedelta(seconds=900))
>>> sla_status(uptime_pct=99.95, response_ms=120.0, error_rate=0.001, samples=10)
'healthy'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core import dwell
from models.records import (
    AlertThresholds,
    CameraConfig,
    CountingLine,
    DetectionSettings,
    StreamSettings,
    TrackingSettings,
    Zone,
)

# ----------------------------------------------------------------------------- time parameters

_DURATION = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_RANGE = timedelta(days=5 * 366)
MAX_POINTS = 10_000  # buckets one answer may hold


class ParamError(ValueError):
    """A query parameter the API refuses; the message names it and says what is accepted."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


def parse_duration(text: str, param: str = "duration") -> timedelta:
    """``'90s' | '15m' | '24h' | '7d' | '2w'`` -> timedelta (positive, at most five years)."""
    m = _DURATION.match(text or "")
    if not m:
        raise ParamError(param, f"expected a duration like 15m, 1h, 24h, 7d (units s, m, h, d, w); got {text!r}")
    value = timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    if value <= timedelta(0):
        raise ParamError(param, "must be positive")
    if value > MAX_RANGE:
        raise ParamError(param, "must be at most 5 years")
    return value


def floor_time(t: datetime, step: timedelta) -> datetime:
    """Start of the bucket of width ``step`` holding ``t`` (epoch-aligned, as ``time_bucket`` for
    minutes, hours and days).

    >>> floor_time(datetime(2026, 1, 2, 13, 45, tzinfo=UTC), timedelta(hours=1)).isoformat()
    '2026-01-02T13:00:00+00:00'
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return t - (t - epoch) % step


def as_utc(t: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Interval:
    name: str  # minute | hour | day
    step: timedelta
    crossings: str  # continuous aggregate names
    occupancy: str
    default_span: timedelta
    zones: str = ""  # zone_events_* (015)


INTERVALS: dict[str, Interval] = {
    "minute": Interval(
        "minute", timedelta(minutes=1), "crossings_1m", "occupancy_1m", timedelta(hours=1), "zone_events_1m"
    ),
    "hour": Interval("hour", timedelta(hours=1), "crossings_1h", "occupancy_1h", timedelta(days=1), "zone_events_1h"),
    "day": Interval("day", timedelta(days=1), "crossings_1d", "occupancy_1d", timedelta(days=30), "zone_events_1d"),
}


def time_range(
    start: datetime | None, end: datetime | None, default_span: timedelta, step: timedelta, now: datetime
) -> tuple[datetime, datetime]:
    """``[from, to)`` from optional bounds: ``to`` defaults to now, ``from`` to ``to - default_span``;
    ``from`` is moved back to the start of its bucket, so every bucket overlapping the range counts.

    Refuses reversed ranges and answers of more than :data:`MAX_POINTS` buckets of ``step``.
    """
    end = as_utc(end) if end is not None else now
    start = as_utc(start) if start is not None else end - default_span
    start = floor_time(start, step)
    if start >= end:
        raise ParamError("from", f"must be before to ({start.isoformat()} >= {end.isoformat()})")
    if end - start > MAX_RANGE:
        raise ParamError("from", "the range may span at most 5 years")
    if (end - start) / step > MAX_POINTS:
        raise ParamError("interval", f"{(end - start) / step:.0f} buckets requested, at most {MAX_POINTS}: widen it")
    return start, end


# ----------------------------------------------------------------------------- counts, peaks, occupancy

# Crossings per bucket and line, entries and exits side by side. The bucket range is half-open on
# bucket starts, so a bucket is in the answer when it starts within [from, to).
COUNTS_BY_LINE = """
SELECT bucket, line_id,
       coalesce(sum(crossings) FILTER (WHERE direction = 'in'), 0)::bigint AS entries,
       coalesce(sum(crossings) FILTER (WHERE direction = 'out'), 0)::bigint AS exits
FROM {view}
WHERE camera_id = %(camera_id)s AND bucket >= %(start)s AND bucket < %(end)s {line_filter}
GROUP BY bucket, line_id
ORDER BY bucket, line_id
"""

COUNTS_BY_CAMERA = """
SELECT bucket, camera_id,
       coalesce(sum(crossings) FILTER (WHERE direction = 'in'), 0)::bigint AS entries,
       coalesce(sum(crossings) FILTER (WHERE direction = 'out'), 0)::bigint AS exits
FROM {view}
WHERE camera_id = ANY(%(camera_ids)s) AND bucket >= %(start)s AND bucket < %(end)s
GROUP BY bucket, camera_id
ORDER BY bucket, camera_id
"""

PEAK_HOURS = """
SELECT day, peak_hour, crossings, entries, exits
FROM peak_hours
WHERE camera_id = %(camera_id)s AND day >= %(start)s AND day < %(end)s
ORDER BY day
"""

OCCUPANCY_HISTORY = """
SELECT bucket, zone_id,
       sum(samples)::bigint AS samples,
       sum(count_sum)::double precision / nullif(sum(samples), 0) AS count_avg,
       max(count_max) AS count_max,
       min(count_min) AS count_min,
       max(capacity_pct_max) AS capacity_pct_max,
       sum(dwell_s_sum) / nullif(sum(dwell_samples), 0) AS avg_dwell_s
FROM {view}
WHERE camera_id = %(camera_id)s AND bucket >= %(start)s AND bucket < %(end)s {zone_filter}
GROUP BY bucket, zone_id
ORDER BY bucket, zone_id
"""

# Latest sample per zone, looking back a bounded time so the scan stays on recent chunks.
OCCUPANCY_LATEST = """
SELECT DISTINCT ON (zone_id) zone_id, at, count, capacity, capacity_pct, density_per_sqm, avg_dwell_s, trend
FROM occupancy_samples
WHERE camera_id = %(camera_id)s AND at >= %(since)s
ORDER BY zone_id, at DESC
"""


def counts_sql(interval: Interval, by: str, line_filter: bool) -> str:
    if by == "camera":
        return COUNTS_BY_CAMERA.format(view=interval.crossings)
    line = "AND line_id = %(line_id)s" if line_filter else ""
    return COUNTS_BY_LINE.format(view=interval.crossings, line_filter=line)


def occupancy_sql(interval: Interval, zone_filter: bool) -> str:
    return OCCUPANCY_HISTORY.format(
        view=interval.occupancy, zone_filter="AND zone_id = %(zone_id)s" if zone_filter else ""
    )


def totals(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, int]]:
    """Entries/exits summed per ``key`` value, plus ``'*'`` for everything."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        for k in (r[key], "*"):
            t = out.setdefault(k, {"in": 0, "out": 0, "total": 0})
            t["in"] += int(r["entries"])
            t["out"] += int(r["exits"])
            t["total"] += int(r["entries"]) + int(r["exits"])
    out.setdefault("*", {"in": 0, "out": 0, "total": 0})
    return out


# ----------------------------------------------------------------------------- zone analytics (015)

# Entries, exits and the dwell histogram of one zone per bucket (zone_events_1m/1h/1d, one row per
# bucket, camera and zone).
ZONE_EVENTS = """
SELECT bucket, entries, exits, dwell_n, dwell_s_sum, dwell_s_max, {histogram}
FROM {view}
WHERE camera_id = %(camera_id)s AND zone_id = %(zone_id)s AND bucket >= %(start)s AND bucket < %(end)s
ORDER BY bucket
"""

# When each bucket's occupancy peaked, at the resolution of the level below it: a sample's time
# for minutes, the minute for hours, the hour for days. Ties go to the earliest.
ZONE_PEAK_AT = """
SELECT DISTINCT ON (1) time_bucket(%(step)s::interval, {time}) AS bucket, {time} AS peak_at, {value} AS peak
FROM {source}
WHERE camera_id = %(camera_id)s AND zone_id = %(zone_id)s AND {time} >= %(start)s AND {time} < %(end)s
ORDER BY 1, {value} DESC, {time}
"""
_PEAK_SOURCE = {
    "minute": ("occupancy_samples", "at", "count"),
    "hour": ("occupancy_1m", "bucket", "count_max"),
    "day": ("occupancy_1h", "bucket", "count_max"),
}

ZONE_CONFIG = "SELECT name, capacity FROM zones WHERE camera_id = %(camera_id)s AND zone_id = %(zone_id)s"

# Every zone of the visible cameras over a range (hourly aggregates): configured zones, and zones
# that only have history. RLS / the scoped views keep it to the caller's tenant.
ZONES_SUMMARY = """
WITH ev AS (
    SELECT camera_id, zone_id, sum(entries)::bigint AS entries, sum(exits)::bigint AS exits,
           sum(dwell_n)::bigint AS dwell_n, sum(dwell_s_sum) AS dwell_s_sum, max(dwell_s_max) AS dwell_s_max,
           {histogram}
    FROM zone_events_1h
    WHERE bucket >= %(start)s AND bucket < %(end)s {camera_filter}
    GROUP BY camera_id, zone_id
), occ AS (
    SELECT camera_id, zone_id, sum(samples)::bigint AS samples,
           sum(count_sum)::double precision / nullif(sum(samples), 0) AS count_avg,
           max(count_max) AS count_max, max(capacity_pct_max) AS capacity_pct_max
    FROM occupancy_1h
    WHERE bucket >= %(start)s AND bucket < %(end)s {camera_filter}
    GROUP BY camera_id, zone_id
), ids AS (
    SELECT camera_id, zone_id FROM zones WHERE true {camera_filter}
    UNION SELECT camera_id, zone_id FROM ev
    UNION SELECT camera_id, zone_id FROM occ
)
SELECT ids.camera_id, ids.zone_id, z.name, z.capacity, ev.entries, ev.exits, ev.dwell_n, ev.dwell_s_sum,
       ev.dwell_s_max, {ev_histogram}, occ.samples, occ.count_avg, occ.count_max, occ.capacity_pct_max
FROM ids
LEFT JOIN zones z USING (camera_id, zone_id)
LEFT JOIN ev USING (camera_id, zone_id)
LEFT JOIN occ USING (camera_id, zone_id)
ORDER BY ids.camera_id, ids.zone_id
"""


def zone_events_sql(interval: Interval) -> str:
    return ZONE_EVENTS.format(view=interval.zones, histogram=", ".join(dwell.COLUMNS))


def zone_peak_at_sql(interval: Interval) -> str:
    source, time, value = _PEAK_SOURCE[interval.name]
    return ZONE_PEAK_AT.format(source=source, time=time, value=value)


def zones_summary_sql(camera_filter: bool) -> str:
    cam = "AND camera_id = ANY(%(camera_ids)s)" if camera_filter else ""
    histogram = ", ".join(f"sum({c})::bigint AS {c}" for c in dwell.COLUMNS)
    ev_histogram = ", ".join(f"ev.{c}" for c in dwell.COLUMNS)
    return ZONES_SUMMARY.format(histogram=histogram, ev_histogram=ev_histogram, camera_filter=cam)


def dwell_stats(r: dict[str, Any] | None) -> dict[str, Any]:
    """Dwell figures of a row holding ``dwell_n``, ``dwell_s_sum``, ``dwell_s_max`` and the histogram
    (median and p90 from the histogram: core.dwell's tolerance).

    >>> row = {"dwell_n": 2, "dwell_s_sum": 200.0, "dwell_s_max": 110.0, **dict.fromkeys(dwell.COLUMNS, 0)}
    >>> row["dwell_h08"] = 2  # [90, 120) s
    >>> {k: round(v) for k, v in dwell_stats(row).items()}
    {'exits': 2, 'avg_s': 100, 'median_s': 104, 'p90_s': 117, 'max_s': 110}
    """
    counts = [int((r or {}).get(c) or 0) for c in dwell.COLUMNS]
    n = int((r or {}).get("dwell_n") or 0)
    total = (r or {}).get("dwell_s_sum")
    top = (r or {}).get("dwell_s_max")
    return {
        "exits": n,
        "avg_s": float(total) / n if n and total is not None else None,
        "median_s": dwell.quantile(counts, 0.5),
        "p90_s": dwell.quantile(counts, 0.9),
        "max_s": float(top) if top is not None else None,
    }


def add_histograms(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The dwell columns of ``rows`` summed (histograms add up), for totals over a range."""
    out: dict[str, Any] = {c: sum(int(r.get(c) or 0) for r in rows) for c in dwell.COLUMNS}
    out["dwell_n"] = sum(int(r.get("dwell_n") or 0) for r in rows)
    sums = [float(r["dwell_s_sum"]) for r in rows if r.get("dwell_s_sum") is not None]
    out["dwell_s_sum"] = sum(sums) if sums else None
    tops = [float(r["dwell_s_max"]) for r in rows if r.get("dwell_s_max") is not None]
    out["dwell_s_max"] = max(tops) if tops else None
    return out


def peak_pct(peak: int | None, capacity: int | None, sampled_pct: float | None) -> float | None:
    """Peak occupancy as a percentage of the zone's configured capacity; without one, the highest
    percentage the samples carried (the capacity at the time).

    >>> peak_pct(15, 20, None), peak_pct(15, None, 70.0), peak_pct(None, 20, None)
    (75.0, 70.0, None)
    """
    if peak is None:
        return None
    if capacity:
        return 100.0 * peak / capacity
    return float(sampled_pct) if sampled_pct is not None else None


# ----------------------------------------------------------------------------- seed 002: metrics


@dataclass(frozen=True)
class Metric:
    """A metric of ``GET /api/v1/metrics``: its value per source row, and where rows come from.

    ``hourly`` reads ``stream_health_1h`` (one row per camera, grabber and hour); ``raw`` reads
    ``stream_stats`` for intervals under an hour (None: hourly only, e.g. counter deltas).
    """

    unit: str
    description: str
    default_aggregation: str
    hourly: str
    raw: str | None
    source: str = "stream"  # stream | crossings | occupancy


METRICS: dict[str, Metric] = {
    "uptime_pct": Metric(
        "%",
        "share of health reports saying online",
        "avg",
        "100.0 * online_samples / samples",
        "CASE WHEN status = 'online' THEN 100.0 ELSE 0.0 END",
    ),
    "input_fps": Metric("fps", "frames read from the stream", "avg", "input_fps_avg", "input_fps"),
    "processed_fps": Metric("fps", "frames run through the detector", "avg", "processed_fps_avg", "processed_fps"),
    "inference_ms_p50": Metric("ms", "median inference time", "avg", "inference_ms_p50_avg", "inference_ms_p50"),
    "inference_ms_p95": Metric("ms", "95th pct inference time", "max", "inference_ms_p95_max", "inference_ms_p95"),
    "latency_ms_p50": Metric("ms", "median capture -> publish latency", "avg", "latency_ms_p50_avg", "latency_ms_p50"),
    "latency_ms_p95": Metric("ms", "95th percentile capture -> publish", "max", "latency_ms_p95_max", "latency_ms_p95"),
    "dropped_frames": Metric("frames", "frames dropped (hourly deltas)", "sum", "dropped_frames_delta", None),
    "decode_errors": Metric("errors", "stream decode errors (hourly deltas)", "sum", "decode_errors_delta", None),
    "reconnects": Metric("reconnects", "stream reconnects (hourly deltas)", "sum", "reconnects_delta", None),
    "crossings": Metric("people", "line crossings, both directions", "sum", "crossings", "crossings", "crossings"),
    "occupancy": Metric(
        "people",
        "people inside zones (average of samples)",
        "avg",
        "count_sum::double precision / samples",
        "count_sum::double precision / samples",
        "occupancy",
    ),
}
AGGREGATIONS = ("avg", "sum", "min", "max", "count")


def metric_source(metric: Metric, step: timedelta) -> tuple[str, str, str]:
    """(relation, time column, value expression) that serves ``metric`` at bucket width ``step``."""
    hour, day = timedelta(hours=1), timedelta(days=1)
    if metric.source in ("crossings", "occupancy"):
        level = "1d" if step % day == timedelta(0) else "1h" if step % hour == timedelta(0) else "1m"
        return f"{metric.source}_{level}", "bucket", metric.hourly
    if step % hour == timedelta(0):
        return "stream_health_1h", "bucket", metric.hourly
    if metric.raw is None:
        raise ParamError("interval", "this metric is kept per hour: use an interval of whole hours (1h, 6h, 1d)")
    return "stream_stats", "at", metric.raw


def metrics_sql(metric: Metric, aggregation: str, step: timedelta, camera_filter: bool) -> str:
    relation, time_col, expr = metric_source(metric, step)
    agg = "count(*)" if aggregation == "count" else f"{aggregation}({expr})"
    cam = "AND camera_id = %(camera_id)s" if camera_filter else ""
    return (
        f"SELECT time_bucket(%(step)s::interval, {time_col}) AS ts, ({agg})::double precision AS value "
        f"FROM {relation} WHERE {time_col} >= %(start)s AND {time_col} < %(end)s {cam} "
        "GROUP BY ts ORDER BY ts"
    )


def summary(values: list[float]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"min": None, "max": None, "avg": None}
    return {"min": min(vals), "max": max(vals), "avg": sum(vals) / len(vals)}


# ----------------------------------------------------------------------------- seed 002: SLA

# Targets of seed 002: 99.9 % uptime (critical below), response under 1 s (warning above),
# error rate above 5 % critical; we warn from 1 %.
SLA_UPTIME_PCT = 99.9
SLA_RESPONSE_MS = 1000.0
SLA_ERROR_RATE_CRITICAL = 0.05
SLA_ERROR_RATE_WARNING = 0.01

SLA_BY_CAMERA = """
SELECT camera_id,
       sum(samples)::bigint AS samples,
       sum(online_samples)::bigint AS online_samples,
       sum(latency_ms_p50_avg * samples) / nullif(sum(samples) FILTER (WHERE latency_ms_p50_avg IS NOT NULL), 0)
           AS response_ms,
       max(latency_ms_p95_max) AS response_ms_p95,
       sum(frames_in_est) AS frames_in,
       sum(dropped_frames_delta + decode_errors_delta) AS frame_errors,
       max(last_at) AS last_at
FROM stream_health_1h
WHERE bucket >= %(start)s AND bucket < %(end)s {camera_filter}
GROUP BY camera_id
ORDER BY camera_id
"""


def sla_status(uptime_pct: float | None, response_ms: float | None, error_rate: float | None, samples: int) -> str:
    """``healthy | warning | critical`` against the seed 002 targets; ``unknown`` without data."""
    if samples <= 0 or uptime_pct is None:
        return "unknown"
    if uptime_pct < SLA_UPTIME_PCT or (error_rate or 0.0) > SLA_ERROR_RATE_CRITICAL:
        return "critical"
    if (response_ms or 0.0) > SLA_RESPONSE_MS or (error_rate or 0.0) > SLA_ERROR_RATE_WARNING:
        return "warning"
    return "healthy"


def sla_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Uptime (percent), response time (ms, sample-weighted), error rate (fraction) over ``rows``."""
    samples = sum(int(r["samples"] or 0) for r in rows)
    online = sum(int(r["online_samples"] or 0) for r in rows)
    weighted = [(float(r["response_ms"]), int(r["samples"])) for r in rows if r["response_ms"] is not None]
    frames = sum(float(r["frames_in"] or 0) for r in rows)
    errors = sum(float(r["frame_errors"] or 0) for r in rows)
    uptime = 100.0 * online / samples if samples else None
    response = sum(v * n for v, n in weighted) / sum(n for _, n in weighted) if weighted else None
    error_rate = errors / frames if frames > 0 else (0.0 if samples else None)
    return {
        "uptime": uptime,
        "responseTime": response,
        "errorRate": error_rate,
        "samples": samples,
        "status": sla_status(uptime, response, error_rate, samples),
    }


# ----------------------------------------------------------------------------- alerts

ALERT_COLUMNS = """alert_id, rule, camera_id, zone_id, tenant_id, fingerprint, metric, severity, status, title,
       description, metric_value, threshold, triggered_at, updated_at, acknowledged_at, acknowledged_by,
       resolved_at, resolved_by, closed_at, escalated_at, log"""
ALERTS = f"""
SELECT {ALERT_COLUMNS}
FROM alerts
WHERE triggered_at >= %(since)s {{filters}}
ORDER BY triggered_at DESC
LIMIT %(limit)s
"""
ALERT_BY_ID = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = %s ORDER BY triggered_at DESC LIMIT 1"
ALERT_FILTERS = ("severity", "status", "camera_id", "rule", "tenant_id")


def alerts_sql(filters: list[str]) -> str:
    """The list query with an equality filter per named column (each one of ALERT_FILTERS)."""
    unknown = set(filters) - set(ALERT_FILTERS)
    if unknown:
        raise ValueError(f"unknown alert filter {sorted(unknown)[0]!r}")
    return ALERTS.format(filters=" ".join(f"AND {f} = %({f})s" for f in filters))


def alert_view(r: dict[str, Any]) -> dict[str, Any]:
    """An alert row as the API shows it (seed 002's names first, then the lifecycle's)."""
    return {
        "id": r["alert_id"],
        "title": r["title"],
        "description": r["description"],
        "severity": r["severity"],
        "status": r["status"],
        "createdAt": r["triggered_at"],
        "updatedAt": r["updated_at"],
        "resolvedAt": r["resolved_at"],
        "rule": r["rule"],
        "camera_id": r["camera_id"],
        "zone_id": r["zone_id"],
        "tenant": r["tenant_id"],
        "fingerprint": r["fingerprint"],
        "metric": r["metric"],
        "metric_value": r["metric_value"],
        "threshold": r["threshold"],
        "acknowledged_at": r["acknowledged_at"],
        "acknowledged_by": r["acknowledged_by"],
        "resolved_by": r["resolved_by"],
        "closed_at": r["closed_at"],
        "escalated_at": r["escalated_at"],
        "log": r["log"] if isinstance(r["log"], list) else json.loads(r["log"] or "[]"),
    }


# ----------------------------------------------------------------------------- camera config <-> rows

CAMERA_COLUMNS = (
    "camera_id",
    "tenant_id",
    "location_id",
    "name",
    "enabled",
    "timezone",
    "stream_url",
    "stream_protocol",
    "stream_username",
    "credentials_ref",
    "stream_timeout_s",
    "stream_retry_count",
    "stream_retry_interval_s",
    "target_fps",
    "detection_model",
    "detection_imgsz",
    "detection_confidence",
    "detection_region",
    "detection_nms_iou",
    "tracking",
    "alert_thresholds",
    "config_updated_at",
)


def _record_json(record: Any) -> dict[str, Any]:
    data = json.loads(record.to_json())
    data.pop("schema_version", None)
    return data


def normalise(cfg: CameraConfig) -> CameraConfig:
    """The config with detection settings and thresholds explicit (defaults filled in), which is
    what the database stores, so the topic and ``GET`` say the same thing. ``tracking`` stays as
    given: its nulls mean "the release's default" and are stored as such."""
    data = json.loads(cfg.to_json())
    if cfg.detection is None:
        data["detection"] = json.loads(DetectionSettings().to_json())
    if cfg.thresholds is None:
        data["thresholds"] = json.loads(AlertThresholds().to_json())
    from models.base import parse

    return parse(CameraConfig, data)


def camera_row(cfg: CameraConfig) -> dict[str, Any]:
    """``cameras`` columns for ``cfg`` (the password is handled separately, encrypted)."""
    s, d, t = cfg.stream, cfg.detection or DetectionSettings(), cfg.thresholds or AlertThresholds()
    return {
        "camera_id": cfg.camera_id,
        "tenant_id": cfg.tenant,
        "location_id": cfg.location,
        "name": cfg.name,
        "enabled": cfg.enabled,
        "timezone": cfg.timezone,
        "stream_url": s.url if s else None,
        "stream_protocol": s.protocol if s else "rtsp",
        "stream_username": s.username if s else None,
        "credentials_ref": s.credentials_ref if s else None,
        "stream_timeout_s": s.timeout_s if s else 10.0,
        "stream_retry_count": s.retry_count if s else 3,
        "stream_retry_interval_s": s.retry_interval_s if s else 5.0,
        "target_fps": s.target_fps if s else 10.0,
        "detection_model": d.model,
        "detection_imgsz": d.imgsz,
        "detection_confidence": d.confidence,
        "detection_region": json.dumps(d.region) if d.region is not None else None,
        "detection_nms_iou": d.nms_iou,
        "tracking": json.dumps(_overrides(cfg.tracking)) if cfg.tracking is not None else None,
        "alert_thresholds": json.dumps(_record_json(t)),
        "config_updated_at": datetime.fromtimestamp(cfg.updated_at, UTC) if cfg.updated_at else None,
    }


def _overrides(tracking: TrackingSettings) -> dict[str, Any]:
    """The parameters a camera sets (the ``tracking`` column keeps only those)."""
    return {k: v for k, v in _record_json(tracking).items() if v is not None}


def line_rows(cfg: CameraConfig) -> list[dict[str, Any]]:
    return [
        {
            "camera_id": cfg.camera_id,
            "line_id": ln.line_id,
            "name": ln.name,
            "start_x": ln.start[0],
            "start_y": ln.start[1],
            "end_x": ln.end[0],
            "end_y": ln.end[1],
            "count_mode": ln.count,
        }
        for ln in cfg.lines
    ]


def zone_rows(cfg: CameraConfig) -> list[dict[str, Any]]:
    return [
        {
            "camera_id": cfg.camera_id,
            "zone_id": z.zone_id,
            "name": z.name,
            "polygon": json.dumps(z.polygon),
            "capacity": z.capacity,
            "alert_threshold_pct": z.alert_threshold_pct,
            "area_sqm": z.area_sqm,
        }
        for z in cfg.zones
    ]


def _f4(v: Any) -> float:
    """A ``real`` column read back as the number that was written (0.3, not 0.30000001192092896)."""
    return float(f"{float(v):.7g}")


def _json_value(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def config_from_rows(
    cam: dict[str, Any], lines: list[dict[str, Any]], zones: list[dict[str, Any]], groups: list[str]
) -> CameraConfig:
    """Rebuild the ``CameraConfig`` stored by :func:`camera_row` and friends."""
    stream = None
    if cam["stream_url"] is not None:
        stream = StreamSettings(
            url=cam["stream_url"],
            protocol=cam["stream_protocol"],
            username=cam["stream_username"],
            credentials_ref=cam["credentials_ref"],
            timeout_s=_f4(cam["stream_timeout_s"]),
            retry_count=int(cam["stream_retry_count"]),
            retry_interval_s=_f4(cam["stream_retry_interval_s"]),
            target_fps=_f4(cam["target_fps"]),
        )
    region = _json_value(cam["detection_region"])
    detection = DetectionSettings(
        model=cam["detection_model"],
        imgsz=int(cam["detection_imgsz"]) if cam["detection_imgsz"] is not None else None,
        confidence=_f4(cam["detection_confidence"]),
        nms_iou=_f4(cam["detection_nms_iou"]) if cam["detection_nms_iou"] is not None else None,
        region=[[float(x) for x in p] for p in region] if region is not None else None,
    )
    from models.base import parse

    tracking = _json_value(cam["tracking"])

    thresholds = parse(AlertThresholds, _json_value(cam["alert_thresholds"]) or {})
    updated = cam.get("config_updated_at")
    return CameraConfig(
        camera_id=cam["camera_id"],
        name=cam["name"],
        enabled=bool(cam["enabled"]),
        tenant=cam["tenant_id"],
        location=cam["location_id"],
        groups=sorted(groups),
        timezone=cam["timezone"],
        stream=stream,
        detection=detection,
        tracking=parse(TrackingSettings, tracking) if tracking is not None else None,
        lines=[
            CountingLine(
                line_id=r["line_id"],
                name=r["name"],
                start=[float(r["start_x"]), float(r["start_y"])],
                end=[float(r["end_x"]), float(r["end_y"])],
                count=r["count_mode"],
            )
            for r in sorted(lines, key=lambda r: r["line_id"])
        ],
        zones=[
            Zone(
                zone_id=r["zone_id"],
                name=r["name"],
                polygon=[[float(x) for x in p] for p in _json_value(r["polygon"])],
                capacity=r["capacity"],
                alert_threshold_pct=_f4(r["alert_threshold_pct"]) if r["alert_threshold_pct"] is not None else None,
                area_sqm=float(r["area_sqm"]) if r["area_sqm"] is not None else None,
            )
            for r in sorted(zones, key=lambda r: r["zone_id"])
        ],
        thresholds=thresholds,
        updated_at=updated.timestamp() if updated else 0.0,
    )


def camera_view(cfg: CameraConfig, has_password: bool) -> dict[str, Any]:
    """What the API returns for a camera: the config as JSON plus whether a password is stored.
    Never the password itself."""
    data = _record_json(cfg)
    for key in ("stream", "detection", "tracking", "thresholds"):
        if isinstance(data.get(key), dict):
            data[key].pop("schema_version", None)
    for item in (*data.get("lines", []), *data.get("zones", [])):
        item.pop("schema_version", None)
    if data.get("stream") is not None:
        data["stream"]["has_password"] = has_password
    return data
