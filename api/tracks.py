"""Stored tracks for the API: loading paths, the two recount methods, heatmap rendering.

Recount from stored tracks (``method="tracks"``): SQL selects the camera's summaries that overlap
the time range and whose path's bounding box meets the line's or zone's (a path that crosses a
segment meets its bounding box), with every segment of those tracks; :mod:`core.recount` replays
them through the live counting rules. The geometry runs in Python on purpose: it is the very code
the live counter runs (one rule, one place), and the SQL part does what SQL is good at -- picking
a camera's month of rows by index and bounding box.

Recount by replay (``method="replay"``): the detections topic still holds the last few days
(``models.topics``: 3 days); :func:`replay_recount` reads the range from it with its own consumer
group (no offsets committed, nothing shared with the live workers) and folds the camera's frames
through :func:`core.camera.process_frame` with a scene of just the new line or zone -- exactly
what the live counter would have done. It reads every partition of the range and keeps the
camera's frames (producers may partition by different hash functions).
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from core.camera import DEFAULT_CAMERA, CameraParams, CameraState, Scene, process_frame
from core.recount import RecountEvent, StoredPath, bucket_counts, join_segments, recount_line, recount_zone
from core.settings import Settings
from core.trajectories import TOLERANCE_PX
from models.records import CameraConfig

TOLERANCE_NOTE = (
    "Counted from stored paths simplified within {tol} px (Douglas-Peucker) by the live counting rules. "
    "A track can be decided differently from a live line only where its raw path came within {tol} px of "
    "the counting band's edge or of the line's ends; a crossing's time is that of the next stored vertex "
    "(at most a few frames later). method=replay is exact for the range Kafka still retains."
)
REPLAY_NOTE = "Replayed the detections topic through the live counter: exact where Kafka still retains the range."
WARM_UP_S = 10.0  # replay starts this long before the range, so tracks exist when it begins

_PATHS_SQL = """
SELECT track_id, segment, extract(epoch FROM first_seen)::float8 AS first_seen, ts, xs, ys, hs, confirmed_t
FROM track_summaries
WHERE camera_id = %(camera_id)s AND first_seen < %(end)s AND last_seen >= %(start)s
  AND track_id IN (
      SELECT track_id FROM track_summaries
      WHERE camera_id = %(camera_id)s AND first_seen < %(end)s AND last_seen >= %(start)s
        AND x_max >= %(x0)s AND x_min <= %(x1)s AND y_max >= %(y0)s AND y_min <= %(y1)s)
ORDER BY track_id, segment
"""

_TOUCHES_SQL = """
SELECT track_id, lines, zones
FROM track_summaries
WHERE camera_id = %(camera_id)s AND first_seen < %(end)s AND last_seen >= %(start)s
ORDER BY track_id, segment
"""


@dataclass(frozen=True)
class Geometry:
    """What a recount counts: a directed line (``start``, ``end``, ``count``) or a zone (``polygon``)."""

    start: tuple[float, float] | None = None
    end: tuple[float, float] | None = None
    count: str = "both"
    polygon: tuple[tuple[float, float], ...] | None = None

    @property
    def kind(self) -> str:
        return "zone" if self.polygon is not None else "line"

    def bbox(self) -> tuple[float, float, float, float]:
        pts = list(self.polygon) if self.polygon is not None else [self.start, self.end]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]  # type: ignore[index]
        return min(xs), min(ys), max(xs), max(ys)

    def recount(self, paths: Sequence[StoredPath], params: CameraParams) -> list[RecountEvent]:
        if self.polygon is not None:
            return recount_zone(paths, self.polygon, params.counting)
        assert self.start is not None and self.end is not None
        return recount_line(paths, self.start, self.end, params.counting, self.count)

    def scene(self) -> Scene:
        if self.polygon is not None:
            return Scene.from_config(zones=[("recount", self.polygon)])
        return Scene.from_config(lines=[("recount", self.start, self.end, self.count)])

    def as_json(self) -> dict[str, Any]:
        if self.polygon is not None:
            return {"polygon": [list(p) for p in self.polygon]}
        return {"start": list(self.start or ()), "end": list(self.end or ()), "count": self.count}


async def load_paths(
    conn: AsyncConnection,
    camera_id: str,
    start: datetime,
    end: datetime,
    bbox: tuple[float, float, float, float] | None = None,
) -> list[StoredPath]:
    """The camera's tracks overlapping ``[start, end)``, whole (every segment); with ``bbox``
    (x0, y0, x1, y1) only tracks that came within it."""
    x0, y0, x1, y1 = bbox if bbox is not None else (-1e9, -1e9, 1e9, 1e9)
    params = {"camera_id": camera_id, "start": start, "end": end, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    cur = await conn.execute(_PATHS_SQL, params)
    rows = await cur.fetchall()
    return join_segments(
        (r["track_id"], r["segment"], r["first_seen"], r["ts"], r["xs"], r["ys"], r["hs"], r["confirmed_t"])
        for r in rows
    )


async def load_touches(conn: AsyncConnection, camera_id: str, start: datetime, end: datetime) -> list[list[Any]]:
    """Per track, the lines it crossed and zones it visited (all segments), for flows."""
    from core.flows import touches

    cur = await conn.execute(_TOUCHES_SQL, {"camera_id": camera_id, "start": start, "end": end})
    by_track: dict[int, list[Any]] = {}
    for r in await cur.fetchall():
        by_track.setdefault(int(r["track_id"]), []).extend(touches(r["lines"] or [], r["zones"] or []))
    return list(by_track.values())


def in_range(events: Sequence[RecountEvent], start: datetime, end: datetime) -> list[RecountEvent]:
    t0, t1 = start.timestamp(), end.timestamp()
    return [e for e in events if t0 <= e.at < t1]


async def recount(
    conn: AsyncConnection,
    settings: Settings,
    config: CameraConfig,
    geometry: Geometry,
    start: datetime,
    end: datetime,
    interval: str,
    method: str,
) -> dict[str, Any]:
    """Counts of ``geometry`` on the camera in ``[start, end)`` per direction and interval
    (``minute``/``hour``/``day``) by ``method`` (``tracks`` | ``replay``): the API's and the CLI's answer."""
    from api.queries import INTERVALS
    from models.kafka_security import librdkafka_security
    from models.topics import topic_name

    params = config.tracking.camera_params() if config.tracking else DEFAULT_CAMERA
    if method == "tracks":
        paths = await load_paths(conn, config.camera_id, start, end, geometry.bbox())
        events = in_range(geometry.recount(paths, params), start, end)
        considered: dict[str, Any] = {"tracks": len(paths)}
        tolerance, note = TOLERANCE_PX, TOLERANCE_NOTE.format(tol=TOLERANCE_PX)
    elif method == "replay":
        kafka = {"bootstrap.servers": settings.kafka.bootstrap, **librdkafka_security(settings.kafka)}
        topic = topic_name(settings.kafka.topic_prefix, "detections")
        events, frames = await asyncio.to_thread(
            replay_recount, kafka, topic, config.camera_id, start, end, geometry, params
        )
        considered, tolerance, note = {"frames": frames}, 0.0, REPLAY_NOTE
    else:
        raise ValueError(f"method must be tracks or replay, got {method!r}")
    keys = ("enter", "exit") if geometry.kind == "zone" else ("in", "out")
    buckets = bucket_counts(events, INTERVALS[interval].step.total_seconds())
    rows = [
        {"bucket": datetime.fromtimestamp(b, start.tzinfo), **{k: c.get(k, 0) for k in keys}}
        for b, c in sorted(buckets.items())
    ]
    return {
        "camera_id": config.camera_id,
        "kind": geometry.kind,
        "geometry": geometry.as_json(),
        "method": method,
        "from": start,
        "to": end,
        "interval": interval,
        "totals": {k: sum(r[k] for r in rows) for k in keys},
        "buckets": rows,
        "considered": considered,
        "tolerance_px": tolerance,
        "note": note,
        "saved_as": None,
    }


# --------------------------------------------------------------------------- replay


class ReplayError(RuntimeError):
    pass


def replay_recount(
    kafka_config: dict[str, Any],
    topic: str,
    camera_id: str,
    start: datetime,
    end: datetime,
    geometry: Geometry,
    params: CameraParams,
    timeout_s: float = 120.0,
) -> tuple[list[RecountEvent], int]:
    """Recount by replaying the detections topic (see the module docstring); returns the events in
    ``[start, end)`` and the number of the camera's frames folded in. Blocking: run it in a thread."""
    from confluent_kafka import Consumer, TopicPartition

    from models.base import SchemaError, parse
    from models.records import FrameDetections

    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"footfall-recount-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        }
    )
    key = camera_id.encode()
    t0_ms = int((start.timestamp() - WARM_UP_S) * 1000)
    t1 = end.timestamp()
    frames: list[FrameDetections] = []
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise ReplayError(f"topic {topic} is not available")
        parts = [TopicPartition(topic, p, t0_ms) for p in meta.topics[topic].partitions]
        starts = consumer.offsets_for_times(parts, timeout=10)
        todo: dict[int, int] = {}
        assign = []
        for tp in starts:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if tp.offset >= 0 and tp.offset < high:  # -1: nothing at or after t0 in this partition
                todo[tp.partition] = high
                assign.append(TopicPartition(topic, tp.partition, tp.offset))
        consumer.assign(assign)
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise ReplayError(f"replay did not finish within {timeout_s:.0f} s")
            for m in consumer.consume(1000, timeout=1.0):
                if m.error() is not None:
                    continue
                p = m.partition()
                if p in todo and m.offset() >= todo[p] - 1:
                    del todo[p]
                if m.key() != key or m.value() is None:
                    continue
                try:
                    f = parse(FrameDetections, m.value())
                except SchemaError:
                    continue  # the live counter dead-letters it; it never counted either
                if f.captured_at < t1:
                    frames.append(f)
    finally:
        consumer.close()
    frames.sort(key=lambda f: f.frame_seq)
    scene = geometry.scene()
    state = CameraState()
    events: list[RecountEvent] = []
    for f in frames:
        state, crossings, zone_events, _ = process_frame(state, f, scene, params)
        events += [RecountEvent(float(c.occurred_at), c.direction, c.track_id) for c in crossings]
        events += [RecountEvent(float(z.occurred_at), z.kind, z.track_id) for z in zone_events]
    return in_range(events, start, end), len(frames)


# --------------------------------------------------------------------------- heatmap picture


_STOPS = [0.0, 0.35, 0.7, 1.0]
_COLOURS = [(40, 60, 200), (200, 40, 160), (250, 130, 20), (255, 250, 170)]


def heatmap_png(grid: np.ndarray, size: tuple[int, int], background: bytes | None = None) -> bytes:
    """The grid as a colour overlay (transparent where nobody walked) over the camera's snapshot
    (a JPEG) where there is one, else over grey; PNG bytes of ``size`` (the snapshot's size)."""
    from PIL import Image

    w, h = size
    peak = float(grid.max()) if grid.size else 0.0
    norm = np.log1p(grid) / np.log1p(peak) if peak > 0 else np.zeros(grid.shape)
    rgba = np.zeros((*grid.shape, 4), dtype=np.uint8)
    for ch in range(3):  # a few visits blue, many yellow-white (log scale)
        rgba[..., ch] = np.interp(norm, _STOPS, [c[ch] for c in _COLOURS]).astype(np.uint8)
    rgba[..., 3] = np.where(grid > 0, (30 + 130 * norm).astype(np.uint8), 0)  # the picture shows through
    layer = Image.fromarray(rgba, "RGBA").resize((w, h), Image.Resampling.BILINEAR)
    if background:
        base = Image.open(io.BytesIO(background)).convert("RGBA").resize((w, h))
    else:
        base = Image.new("RGBA", (w, h), (64, 64, 64, 255))
    out = io.BytesIO()
    Image.alpha_composite(base, layer).convert("RGB").save(out, format="PNG")
    return out.getvalue()
