"""Pure sink helpers: wire record -> table row, one batched statement per table, batching policy.

No Faust, Kafka or database imports here: ``agents.sinks`` runs these statements, the unit tests
check them in milliseconds.

Each table is written with one statement per batch: the rows are transposed into one array per
column and the server unnests them (``INSERT ... SELECT FROM unnest(%s::type[], ...)``), which is
one round trip whatever the batch size. ``COPY FROM STDIN`` is not used: on the local stack
(PGlite behind pgbouncer) it kills the server connection and wedges the database until it is
restarted (tried 2026-11-23). Wire times (epoch seconds) are converted by the server with
``to_timestamp``, the same way on every replay, so a replayed event has exactly the same key.

>>> from models.records import CrossingEvent
>>> ev = CrossingEvent(event_id="c1:door:7:in:42", camera_id="c1", line_id="door", track_id=7,
...                    direction="in", frame_seq=42, occurred_at=1.7e9, processed_at=1.7e9 + 0.1,
...                    x=10.0, y=20.0)
>>> CROSSINGS.row(ev)[:3]
(1700000000.0, 'c1:door:7:in:42', 'c1')
>>> CROSSINGS.params([CROSSINGS.row(ev)])[1]
['c1:door:7:in:42']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.base import WireRecord
from models.records import (
    Alert,
    CameraHealth,
    CrossingEvent,
    DbHealth,
    OccupancySample,
    StreamStats,
    TrackSummary,
    WindowCount,
    ZoneEvent,
)

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    """One column: its name in the table, the array type it is sent as, and how it is stored.

    ``epoch`` columns travel as float8 seconds and are stored with ``to_timestamp``; ``cast``
    columns travel as text and are cast by the server (an array column: ``unnest`` of a 2-D array
    would flatten it, so each row's array travels as its text literal).
    """

    name: str
    array_type: str
    epoch: bool = False
    cast: str | None = None

    @property
    def select_expr(self) -> str:
        if self.cast:
            return f"{self.name}::{self.cast}"
        return f"to_timestamp({self.name})" if self.epoch else self.name


@dataclass(frozen=True)
class TableSpec:
    """How one record type lands in one table.

    ``conflict`` is the tail of the INSERT (``ON CONFLICT ...``); ``key`` names the columns of the
    table's unique key when a batch must not carry the same key twice (``DO UPDATE`` refuses to
    touch a row twice in one statement), with ``version`` the column whose highest value wins.
    """

    name: str  # short name used in logs and metrics: crossings, window-counts, ...
    topic: str  # catalogue name of the source topic
    record: type[WireRecord]
    table: str
    columns: tuple[Column, ...]
    row: Callable[[Any], Row]
    conflict: str = "ON CONFLICT DO NOTHING"
    key: tuple[str, ...] = ()
    version: str | None = None
    sql: str = field(init=False)

    def __post_init__(self) -> None:
        names = ", ".join(c.name for c in self.columns)
        arrays = ", ".join(f"%s::{c.array_type}[]" for c in self.columns)
        selects = ", ".join(c.select_expr for c in self.columns)
        text = (
            f"INSERT INTO {self.table} AS t ({names})\n"
            f"SELECT {selects}\nFROM unnest({arrays}) AS u({names})\n{self.conflict}"
        )
        object.__setattr__(self, "sql", text)

    def params(self, rows: Sequence[Row]) -> list[list[Any]]:
        """The rows transposed into one list per column, in column order (the statement's parameters)."""
        if not rows:
            return [[] for _ in self.columns]
        return [list(col) for col in zip(*rows, strict=True)]

    def prepare(self, rows: Iterable[Row]) -> list[Row]:
        """The rows one statement may carry: for keyed tables, one row per key, the newest version."""
        rows = list(rows)
        if not self.key:
            return rows
        names = [c.name for c in self.columns]
        key_idx = [names.index(k) for k in self.key]
        ver_idx = names.index(self.version) if self.version else None
        best: dict[tuple[Any, ...], Row] = {}
        for r in rows:
            k = tuple(r[i] for i in key_idx)
            old = best.get(k)
            if old is None or ver_idx is None or r[ver_idx] >= old[ver_idx]:
                best[k] = r
        return list(best.values())


def _crossing(e: CrossingEvent) -> Row:
    return (
        e.occurred_at,
        e.event_id,
        e.camera_id,
        e.line_id,
        e.track_id,
        e.direction,
        e.frame_seq,
        e.processed_at,
        e.x,
        e.y,
        e.confidence,
    )


def _zone_event(e: ZoneEvent) -> Row:
    return (
        e.occurred_at,
        e.event_id,
        e.camera_id,
        e.zone_id,
        e.track_id,
        e.kind,
        e.frame_seq,
        e.processed_at,
        e.dwell_s,
    )


def _pg_array(values: Iterable[float]) -> str:
    """A real[] literal: ``{1.5,2}``."""
    return "{" + ",".join(repr(float(v)) for v in values) + "}"


def _track(s: TrackSummary) -> Row:
    ts, xs, ys, hs = zip(*s.path, strict=True)
    return (
        s.first_seen,
        s.event_id,
        s.camera_id,
        s.track_id,
        s.segment,
        s.final,
        s.last_seen,
        _pg_array(ts),
        _pg_array(xs),
        _pg_array(ys),
        _pg_array(hs),
        min(xs),
        max(xs),
        min(ys),
        max(ys),
        s.tolerance_px,
        s.confirmed_t,
        s.mean_speed,
        s.max_speed,
        json.dumps(s.lines),
        json.dumps(s.zones),
        s.processed_at,
    )


def _window_count(w: WindowCount) -> Row:
    return (w.window_start, w.camera_id, w.line_id, w.direction, w.count, w.final, w.updated_at)


def _occupancy(o: OccupancySample) -> Row:
    return (
        o.at,
        o.camera_id,
        o.zone_id,
        o.count,
        o.capacity,
        o.capacity_pct,
        o.density_per_sqm,
        o.avg_dwell_s,
        o.trend,
    )


def _stream_stats(s: StreamStats) -> Row:
    return (
        s.at,
        s.camera_id,
        s.grabber_id,
        s.status,
        s.window_s,
        s.input_fps,
        s.processed_fps,
        s.dropped_frames,
        s.decode_errors,
        s.reconnects,
        s.inference_ms_p50,
        s.inference_ms_p95,
        s.latency_ms_p50,
        s.latency_ms_p95,
        s.frame_width,
        s.frame_height,
        s.model_name,
        s.model_version,
        s.last_error,
        s.spooled_messages,
        s.spool_oldest_age_s,
        s.spool_dropped,
    )


def _alert(a: Alert) -> Row:
    return (
        a.triggered_at,
        a.alert_id,
        a.rule,
        a.camera_id,
        a.severity,
        a.status,
        a.title,
        a.description,
        a.metric_value,
        a.threshold,
        a.updated_at,
        a.resolved_at,
        a.acknowledged_by,
        a.tenant,
        a.fingerprint,
        a.zone_id,
        a.metric,
        a.acknowledged_at,
        a.resolved_by,
        a.closed_at,
        a.escalated_at,
        json.dumps([e.asdict() for e in a.log], default=str),
    )


C = Column
CROSSINGS = TableSpec(
    name="crossings",
    topic="crossings",
    record=CrossingEvent,
    table="crossing_events",
    columns=(
        C("occurred_at", "float8", epoch=True),
        C("event_id", "text"),
        C("camera_id", "text"),
        C("line_id", "text"),
        C("track_id", "int8"),
        C("direction", "text"),
        C("frame_seq", "int8"),
        C("processed_at", "float8", epoch=True),
        C("x", "float4"),
        C("y", "float4"),
        C("confidence", "float4"),
    ),
    row=_crossing,
)

ZONE_EVENTS = TableSpec(
    name="zone-events",
    topic="zone-events",
    record=ZoneEvent,
    table="zone_events",
    columns=(
        C("occurred_at", "float8", epoch=True),
        C("event_id", "text"),
        C("camera_id", "text"),
        C("zone_id", "text"),
        C("track_id", "int8"),
        C("kind", "text"),
        C("frame_seq", "int8"),
        C("processed_at", "float8", epoch=True),
        C("dwell_s", "float4"),
    ),
    row=_zone_event,
)

TRACKS = TableSpec(
    name="tracks",
    topic="tracks",
    record=TrackSummary,
    table="track_summaries",
    columns=(
        C("first_seen", "float8", epoch=True),
        C("event_id", "text"),
        C("camera_id", "text"),
        C("track_id", "int8"),
        C("segment", "int4"),
        C("final", "bool"),
        C("last_seen", "float8", epoch=True),
        C("ts", "text", cast="real[]"),
        C("xs", "text", cast="real[]"),
        C("ys", "text", cast="real[]"),
        C("hs", "text", cast="real[]"),
        C("x_min", "float4"),
        C("x_max", "float4"),
        C("y_min", "float4"),
        C("y_max", "float4"),
        C("tolerance_px", "float4"),
        C("confirmed_t", "float4"),
        C("mean_speed", "float4"),
        C("max_speed", "float4"),
        C("lines", "jsonb"),
        C("zones", "jsonb"),
        C("processed_at", "float8", epoch=True),
    ),
    row=_track,
)

# Window counts are full counts of a (camera, line, direction, minute), re-emitted as late events
# arrive: the newest emission (updated_at) wins, an older one arriving late never overwrites it.
WINDOW_COUNTS = TableSpec(
    name="window-counts",
    topic="window-counts",
    record=WindowCount,
    table="line_counts_1m",
    columns=(
        C("bucket", "float8", epoch=True),
        C("camera_id", "text"),
        C("line_id", "text"),
        C("direction", "text"),
        C("count", "int4"),
        C("final", "bool"),
        C("updated_at", "float8", epoch=True),
    ),
    row=_window_count,
    conflict=(
        "ON CONFLICT (camera_id, line_id, direction, bucket) DO UPDATE\n"
        "SET count = EXCLUDED.count, final = EXCLUDED.final, updated_at = EXCLUDED.updated_at\n"
        "WHERE t.updated_at <= EXCLUDED.updated_at"
    ),
    key=("camera_id", "line_id", "direction", "bucket"),
    version="updated_at",
)

OCCUPANCY = TableSpec(
    name="occupancy",
    topic="occupancy",
    record=OccupancySample,
    table="occupancy_samples",
    columns=(
        C("at", "float8", epoch=True),
        C("camera_id", "text"),
        C("zone_id", "text"),
        C("count", "int4"),
        C("capacity", "int4"),
        C("capacity_pct", "float4"),
        C("density_per_sqm", "float4"),
        C("avg_dwell_s", "float4"),
        C("trend", "text"),
    ),
    row=_occupancy,
)

STREAM_STATS = TableSpec(
    name="stream-stats",
    topic="stream-stats",
    record=StreamStats,
    table="stream_stats",
    columns=(
        C("at", "float8", epoch=True),
        C("camera_id", "text"),
        C("grabber_id", "text"),
        C("status", "text"),
        C("window_s", "float4"),
        C("input_fps", "float4"),
        C("processed_fps", "float4"),
        C("dropped_frames", "int8"),
        C("decode_errors", "int8"),
        C("reconnects", "int8"),
        C("inference_ms_p50", "float4"),
        C("inference_ms_p95", "float4"),
        C("latency_ms_p50", "float4"),
        C("latency_ms_p95", "float4"),
        C("frame_width", "int4"),
        C("frame_height", "int4"),
        C("model_name", "text"),
        C("model_version", "text"),
        C("last_error", "text"),
        C("spooled_messages", "int8"),  # 005: store and forward
        C("spool_oldest_age_s", "float4"),
        C("spool_dropped", "int8"),
    ),
    row=_stream_stats,
)

# The latest state of an alert wins (active -> acknowledged -> resolved); triggered_at is fixed per id.
ALERTS = TableSpec(
    name="alerts",
    topic="alerts",
    record=Alert,
    table="alerts",
    columns=(
        C("triggered_at", "float8", epoch=True),
        C("alert_id", "text"),
        C("rule", "text"),
        C("camera_id", "text"),
        C("severity", "text"),
        C("status", "text"),
        C("title", "text"),
        C("description", "text"),
        C("metric_value", "float8"),
        C("threshold", "float8"),
        C("updated_at", "float8", epoch=True),
        C("resolved_at", "float8", epoch=True),
        C("acknowledged_by", "text"),
        C("tenant_id", "text"),
        C("fingerprint", "text"),
        C("zone_id", "text"),
        C("metric", "text"),
        C("acknowledged_at", "float8", epoch=True),
        C("resolved_by", "text"),
        C("closed_at", "float8", epoch=True),
        C("escalated_at", "float8", epoch=True),
        C("log", "jsonb"),
    ),
    row=_alert,
    conflict=(
        "ON CONFLICT (alert_id, triggered_at) DO UPDATE\n"
        "SET status = EXCLUDED.status, severity = EXCLUDED.severity, title = EXCLUDED.title,\n"
        "    description = EXCLUDED.description, metric_value = EXCLUDED.metric_value,\n"
        "    threshold = EXCLUDED.threshold, updated_at = EXCLUDED.updated_at,\n"
        "    resolved_at = EXCLUDED.resolved_at, acknowledged_by = EXCLUDED.acknowledged_by,\n"
        "    acknowledged_at = EXCLUDED.acknowledged_at, resolved_by = EXCLUDED.resolved_by,\n"
        "    closed_at = EXCLUDED.closed_at, escalated_at = EXCLUDED.escalated_at, log = EXCLUDED.log\n"
        "WHERE t.updated_at <= EXCLUDED.updated_at"
    ),
    key=("alert_id", "triggered_at"),
    version="updated_at",
)

CAMERA_HEALTH = TableSpec(
    name="camera-health",
    topic="camera-health",
    record=CameraHealth,
    table="camera_health",
    columns=(
        C("at", "float8", epoch=True),
        C("camera_id", "text"),
        C("status", "text"),
        C("stream_quality_score", "float4"),
        C("frame_drop_pct", "float4"),
        C("offline_s", "float4"),
        C("processing_lag_ms", "float4"),
        C("detections_per_frame", "float4"),
        C("mean_confidence", "float4"),
        C("model_drift_score", "float4"),
    ),
    row=lambda h: (
        h.at,
        h.camera_id,
        h.status,
        h.stream_quality_score,
        h.frame_drop_pct,
        h.offline_s,
        h.processing_lag_ms,
        h.detections_per_frame,
        h.mean_confidence,
        h.model_drift_score,
    ),
)


def _json_list(items: list[Any]) -> str:
    return json.dumps([i.asdict() if hasattr(i, "asdict") else i for i in items], default=str)


# One row per sample (009); a replayed sample has the same (database, at) and is dropped.
DB_HEALTH = TableSpec(
    name="db-health",
    topic="db-health",
    record=DbHealth,
    table="db_health",
    columns=(
        C("at", "float8", epoch=True),
        C("database", "text"),
        C("max_connections", "int4"),
        C("connections", "int4"),
        C("connections_pct", "float4"),
        C("slow_queries", "int4"),
        C("longest_query_s", "float4"),
        C("database_bytes", "int8"),
        C("cagg_refresh_lag_s", "float8"),
        C("hypertables", "jsonb"),
        C("caggs", "jsonb"),
        C("skipped", "jsonb"),
    ),
    row=lambda h: (
        h.at,
        h.database,
        h.max_connections,
        h.connections,
        h.connections_pct,
        h.slow_queries,
        h.longest_query_s,
        h.database_bytes,
        h.cagg_refresh_lag_s,
        _json_list(h.hypertables),
        _json_list(h.caggs),
        _json_list(h.skipped),
    ),
)

SPECS: tuple[TableSpec, ...] = (
    CROSSINGS,
    ZONE_EVENTS,
    TRACKS,
    WINDOW_COUNTS,
    OCCUPANCY,
    STREAM_STATS,
    ALERTS,
    CAMERA_HEALTH,
    DB_HEALTH,
)


# --------------------------------------------------------------------------- outage bookkeeping


@dataclass
class OutageLog:
    """Says when to log a database outage: once when writes start failing, once when they work again.

    >>> log = OutageLog()
    >>> log.failed(10.0), log.failed(11.0), log.recovered(14.5)
    (True, False, 4.5)
    >>> log.recovered(15.0) is None
    True
    """

    down_since: float | None = None
    attempts: int = 0

    def failed(self, now: float) -> bool:
        """Record a failed attempt; True when this starts an outage (log it)."""
        self.attempts += 1
        if self.down_since is None:
            self.down_since = now
            return True
        return False

    def recovered(self, now: float) -> float | None:
        """Record a success; the outage's length in seconds when one just ended (log it), else None."""
        if self.down_since is None:
            return None
        length, self.down_since, self.attempts = now - self.down_since, None, 0
        return length


def split_halves(items: Sequence[Any]) -> tuple[Sequence[Any], Sequence[Any]]:
    """Halve a batch that the database refused, to find the bad rows in O(bad * log n) statements."""
    mid = len(items) // 2
    return items[:mid], items[mid:]
