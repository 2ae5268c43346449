"""Per-camera runtime of the counting agent: the pure glue between ``core`` and the Faust shell.

A :class:`CameraRuntime` is what a worker keeps in memory for every camera it owns:

* ``state``: the tracker + line/zone :class:`~core.camera.CameraState`;
* ``windows``: the event-time window counts (:mod:`core.windows`) keyed ``(line_id, direction)``;
* ``zones``: per-zone occupancy sampling and trend bookkeeping (:class:`ZoneBook`);
* ``outbox``: outputs produced but not yet known to be delivered to Kafka;
* ``paths``: the live tracks' paths (:mod:`core.trajectories`), summarised to the ``tracks`` topic
  when a track ends.

:func:`step` folds one frame in and returns the outputs to send now (crossings, zone events,
occupancy samples); :func:`window_outputs` returns the window counts changed since the last flush.
Both append what they return to the outbox. :func:`encode` / :func:`decode` give the changelog
form (everything above except the delivery futures), written once per flush interval.

Why the outbox: a camera's durable state says "frames up to seq N are folded in". If it reaches
the changelog while some outputs of those frames did not reach Kafka (a crash in between), a
replay would skip those frames and the outputs would be lost. So the state carries every output
not yet confirmed delivered, and a worker that loads a state re-sends its outbox (same ids, so
consumers drop the duplicates).

Occupancy sampling (event time): a zone's :class:`~models.records.OccupancySample` is emitted
when its count changes, and otherwise every ``OCCUPANCY_KEEPALIVE_S`` seconds. Its ``trend``
compares the count with the zone's count at the end of the previous 1-minute window
(:func:`core.trend.trend`, the seed rule).

>>> from core.camera import Frame, Scene
>>> scene = Scene.from_config(lines=[("door", (200, 0), (200, 480))])
>>> rt = CameraRuntime("cam-1", partition=3)
>>> out = []
>>> for seq in range(12):
...     x = 155 + 10 * seq
...     frame = Frame("cam-1", seq, 1_700_000_000 + seq / 25, [[x - 20, 100, x + 20, 200, 0.9]])
...     out += step(rt, frame, scene, now=1_700_000_001.0)
>>> [(topic, rec.event_id) for topic, rec in out]
[('crossings', 'cam-1:door:1:out:5')]
>>> [(r.line_id, r.direction, r.count) for _, r in window_outputs(rt, now=1_700_000_001.0)]
[('door', 'out', 1)]
>>> back = decode(encode(rt))
>>> back.state == rt.state and back.windows == rt.windows and len(back.outbox) == 2
True
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.camera import DEFAULT_CAMERA, CameraParams, CameraState, Frame, FrameLike, Scene, process_frame
from core.counting import Crossing, ZoneOccupancy, ZoneTransition
from core.trajectories import PathBook, PathSummary, observe
from core.trend import trend
from core.windows import DEFAULT_WINDOWING, Windowing, WindowState, add_event, advance, window_start
from models.base import WireRecord, parse
from models.records import (
    _ID,
    CameraConfig,
    CrossingEvent,
    FrameDetections,
    OccupancySample,
    TrackSummary,
    WindowCount,
    Zone,
    ZoneEvent,
)

__all__ = [
    "OCCUPANCY_KEEPALIVE_S",
    "CROSSINGS",
    "ZONE_EVENTS",
    "WINDOW_COUNTS",
    "OCCUPANCY",
    "TRACKS",
    "ZoneBook",
    "OutboxEntry",
    "CameraRuntime",
    "Output",
    "parse_frame",
    "camera_params",
    "step",
    "window_outputs",
    "unsent",
    "failed",
    "prune_delivered",
    "encode",
    "decode",
    "crossing_record",
    "zone_event_record",
    "occupancy_record",
    "window_count_record",
    "track_record",
]

OCCUPANCY_KEEPALIVE_S = 5.0
# catalogue names (models.topics) of the output topics
CROSSINGS, ZONE_EVENTS, WINDOW_COUNTS, OCCUPANCY = "crossings", "zone-events", "window-counts", "occupancy"
TRACKS = "tracks"
_OUTPUT_TYPES: dict[str, type[WireRecord]] = {
    CROSSINGS: CrossingEvent,
    ZONE_EVENTS: ZoneEvent,
    WINDOW_COUNTS: WindowCount,
    OCCUPANCY: OccupancySample,
    TRACKS: TrackSummary,
}

Output = tuple[str, WireRecord]  # (catalogue topic name, record)


@dataclass(slots=True)
class ZoneBook:
    """Sampling and trend bookkeeping of one zone (event times)."""

    count: int = 0  # latest count seen
    emitted_count: int | None = None  # count of the last sample emitted
    emitted_at: float | None = None  # event time of the last sample emitted
    window_start: float | None = None  # window of the latest count
    previous: int | None = None  # count at the end of the previous window (trend reference)

    def to_list(self) -> list[Any]:
        return [self.count, self.emitted_count, self.emitted_at, self.window_start, self.previous]

    @classmethod
    def from_list(cls, data: list[Any]) -> ZoneBook:
        return cls(*data)


@dataclass(slots=True)
class OutboxEntry:
    """An output sent (or to be sent) to Kafka; ``future`` is the producer's delivery future."""

    topic: str
    value: bytes
    future: Any = None  # asyncio.Future-like; None = not sent by this process

    @property
    def delivered(self) -> bool:
        f = self.future
        return f is not None and f.done() and not f.cancelled() and f.exception() is None

    @property
    def failed(self) -> bool:
        """The producer gave up on it (e.g. Faust's ``producer_request_timeout`` in a long broker
        outage): it must be sent again."""
        f = self.future
        return f is not None and f.done() and (f.cancelled() or f.exception() is not None)


@dataclass(slots=True)
class CameraRuntime:
    camera_id: str
    partition: int
    state: CameraState = field(default_factory=CameraState)
    windows: WindowState = field(default_factory=WindowState)
    zones: dict[str, ZoneBook] = field(default_factory=dict)
    outbox: list[OutboxEntry] = field(default_factory=list)
    paths: PathBook = field(default_factory=PathBook)
    # not persisted: windows changed since the last flush, and wall-clock bookkeeping for views
    dirty_windows: set[tuple[str, str, float]] = field(default_factory=set)
    dirty: bool = False
    last_processed_at: float | None = None
    too_late: int = 0  # crossings whose window had already closed (not counted in windows)
    state_future: Any = None  # delivery of the last changelog record of this state (not persisted)

    def queue(self, topic: str, record: WireRecord) -> OutboxEntry:
        entry = OutboxEntry(topic, record.to_json())
        self.outbox.append(entry)
        return entry


# --------------------------------------------------------------------------- record conversion


def crossing_record(c: Crossing, processed_at: float) -> CrossingEvent:
    return CrossingEvent(
        event_id=c.event_id,
        camera_id=c.camera_id,
        line_id=c.line_id,
        track_id=int(c.track_id),
        direction=c.direction,
        frame_seq=int(c.frame_seq),
        occurred_at=float(c.occurred_at),
        processed_at=processed_at,
        x=float(c.x),
        y=float(c.y),
        confidence=float(c.confidence),
    )


def track_record(s: PathSummary, processed_at: float) -> TrackSummary:
    return TrackSummary(
        event_id=s.event_id,
        camera_id=s.camera_id,
        track_id=s.track_id,
        segment=s.segment,
        final=s.final,
        first_seen=s.first_seen,
        last_seen=s.last_seen,
        path=s.path,
        tolerance_px=s.tolerance_px,
        confirmed_t=s.confirmed_t,
        mean_speed=s.mean_speed,
        max_speed=s.max_speed,
        processed_at=processed_at,
        lines=s.lines,
        zones=s.zones,
    )


def zone_event_record(z: ZoneTransition, processed_at: float) -> ZoneEvent:
    return ZoneEvent(
        event_id=z.event_id,
        camera_id=z.camera_id,
        zone_id=z.zone_id,
        track_id=int(z.track_id),
        kind=z.kind,
        frame_seq=int(z.frame_seq),
        occurred_at=float(z.occurred_at),
        processed_at=processed_at,
        dwell_s=None if z.dwell_s is None else max(0.0, float(z.dwell_s)),
    )


def occupancy_record(camera_id: str, occ: ZoneOccupancy, zone: Zone | None, previous: int | None) -> OccupancySample:
    capacity = zone.capacity if zone is not None else None
    area = zone.area_sqm if zone is not None else None
    return OccupancySample(
        camera_id=camera_id,
        zone_id=occ.zone_id,
        at=float(occ.at),
        count=int(occ.count),
        capacity=capacity,
        capacity_pct=None if not capacity else round(100.0 * occ.count / capacity, 2),
        density_per_sqm=None if not area else round(occ.count / area, 4),
        avg_dwell_s=None if occ.avg_dwell_s is None else max(0.0, float(occ.avg_dwell_s)),
        trend=trend(occ.count, previous).direction,
    )


def window_count_record(
    camera_id: str, line_id: str, direction: str, start: float, count: int, final: bool, size_s: float, now: float
) -> WindowCount:
    return WindowCount(
        camera_id=camera_id,
        line_id=line_id,
        direction=direction,
        window_start=start,
        window_end=start + size_s,
        count=count,
        updated_at=now,
        final=final,
    )


# --------------------------------------------------------------------------- parsing frames

_FRAME_FIELDS = frozenset(FrameDetections._options.fields)
_FRAME_REQUIRED = frozenset(f for f in _FRAME_FIELDS if f not in FrameDetections._options.defaults)
_VERSIONS = FrameDetections.SUPPORTED_VERSIONS


def _num(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and math.isfinite(v))


def _valid_frame(d: dict[str, Any]) -> bool:
    """True when ``d`` certainly passes ``parse(FrameDetections, ...)`` (types, ranges, ``check()``).
    False means "not sure": the caller then runs the strict path, which gives the error."""
    if not (_FRAME_REQUIRED <= d.keys() <= _FRAME_FIELDS):
        return False
    cid, seq, cap, w, h = d["camera_id"], d["frame_seq"], d["captured_at"], d["frame_width"], d["frame_height"]
    if not (type(cid) is str and _ID.match(cid) and type(seq) is int and seq >= 0 and _num(cap) and cap >= 0):
        return False
    if not (type(w) is int and type(h) is int and w > 0 and h > 0):
        return False
    if not (type(d["model_name"]) is str and type(d["model_version"]) is str):
        return False
    inf, pub, ver = d["inference_ms"], d["published_at"], d.get("schema_version", _VERSIONS[0])
    if not (_num(inf) and inf >= 0 and _num(pub) and type(ver) is int and _VERSIONS[0] <= ver <= _VERSIONS[1]):
        return False
    if type(d.get("gated", False)) is not bool:
        return False
    boxes = d["boxes"]
    if type(boxes) is not list:
        return False
    for b in boxes:
        if type(b) is not list or len(b) != 5:
            return False
        x1, y1, x2, y2, conf = b
        if not (_num(x1) and _num(y1) and _num(x2) and _num(y2) and _num(conf)):
            return False
        if not (x2 > x1 and y2 > y1 and 0.0 <= conf <= 1.0):
            return False
    return True


def parse_frame(raw: bytes | None) -> Frame:
    """The core's view of a ``FrameDetections`` message; raises the same :class:`SchemaError` as
    ``parse(FrameDetections, raw)`` for bad input.

    Fast path for the hot topic: ``orjson`` and a flat check of the record's rules, without building
    the Faust record (``parse`` + the record was ~9 % of the worker's time; this is ~4x cheaper per
    frame). Anything the fast path is unsure of (bad JSON, NaN, integers over 64 bits, any rule) goes
    through the strict ``parse``, so errors are exactly those of the record.
    ``tests/unit/test_agents_parse_frame.py`` checks the two paths agree.
    """
    raw = b"null" if raw is None else raw
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError:
        d = None
    if type(d) is dict and _valid_frame(d):
        return Frame(d["camera_id"], d["frame_seq"], d["captured_at"], d["boxes"])
    f = parse(FrameDetections, raw)
    return Frame(f.camera_id, f.frame_seq, f.captured_at, f.boxes)


# --------------------------------------------------------------------------- per-camera params


def camera_params(config: CameraConfig | None) -> CameraParams:
    """The tracker and counting params of a camera: its ``tracking`` overrides on the defaults
    (``DEFAULT_CAMERA`` without a config or overrides). Built with the camera's scene, once per
    config version.

    >>> from models.base import parse
    >>> cfg = parse(CameraConfig, {"camera_id": "cam-1", "tracking": {"min_hits": 3, "hysteresis_px": 5}})
    >>> p = camera_params(cfg)
    >>> (p.tracker.min_hits, p.counting.hysteresis_px, p.digest != DEFAULT_CAMERA.digest)
    (3, 5.0, True)
    >>> camera_params(None) == camera_params(parse(CameraConfig, {"camera_id": "c", "tracking": {}})) == DEFAULT_CAMERA
    True
    """
    if config is None or config.tracking is None:
        return DEFAULT_CAMERA
    return config.tracking.camera_params()


# --------------------------------------------------------------------------- the step


def step(
    rt: CameraRuntime,
    frame: FrameLike,
    scene: Scene,
    now: float,
    zones: Mapping[str, Zone] | None = None,
    windowing: Windowing = DEFAULT_WINDOWING,
    params: CameraParams | None = None,
) -> list[Output]:
    """Fold ``frame`` into ``rt``; return the outputs to send now (also queued in the outbox).

    A replayed frame (``frame_seq`` not above the last one folded in) changes nothing and returns
    nothing. ``now`` is the wall clock, only used for ``processed_at``.
    """
    if int(frame.frame_seq) <= rt.state.last_frame_seq:
        return []
    result = process_frame(rt.state, frame, scene) if params is None else process_frame(rt.state, frame, scene, params)
    rt.state = result.state
    rt.dirty = True
    rt.last_processed_at = now
    out: list[Output] = []
    windows = rt.windows
    for c in result.crossings:
        out.append((CROSSINGS, crossing_record(c, now)))
        windows, r = add_event(windows, (c.line_id, c.direction), float(c.occurred_at), windowing)
        if not r.accepted:
            rt.too_late += 1
        for u in r.updates:
            rt.dirty_windows.add((*u.key, u.window_start))
    windows, closed = advance(windows, float(frame.captured_at), windowing)
    for u in closed:
        rt.dirty_windows.add((*u.key, u.window_start))
    rt.windows = windows
    for z in result.zone_events:
        out.append((ZONE_EVENTS, zone_event_record(z, now)))
    tracker = rt.state.tracker
    for summary in observe(
        rt.paths, rt.camera_id, tracker.view(), float(frame.captured_at), result.crossings, result.zone_events
    ):
        out.append((TRACKS, track_record(summary, now)))
    zone_info = zones or {}
    for occ in result.occupancy:
        book = rt.zones.get(occ.zone_id)
        if book is None:
            book = rt.zones[occ.zone_id] = ZoneBook()
        ws = window_start(float(occ.at), windowing.size_s)
        if book.window_start is None:
            book.window_start = ws
        elif ws > book.window_start:
            book.previous, book.window_start = book.count, ws
        book.count = int(occ.count)
        if (
            book.emitted_count != book.count
            or book.emitted_at is None
            or occ.at - book.emitted_at >= OCCUPANCY_KEEPALIVE_S
        ):
            out.append((OCCUPANCY, occupancy_record(rt.camera_id, occ, zone_info.get(occ.zone_id), book.previous)))
            book.emitted_count, book.emitted_at = book.count, float(occ.at)
    if result.occupancy and len(rt.zones) > len(result.occupancy):  # zones removed from the config
        live = {o.zone_id for o in result.occupancy}
        for zid in [z for z in rt.zones if z not in live]:
            del rt.zones[zid]
    for topic, rec in out:
        rt.queue(topic, rec)
    return out


def window_outputs(rt: CameraRuntime, now: float, windowing: Windowing = DEFAULT_WINDOWING) -> list[Output]:
    """``WindowCount`` records (full counts, ``final`` once closed) of the windows changed since the
    last call, oldest first; queued in the outbox. Windows with no crossings have no record."""
    if not rt.dirty_windows:
        return []
    counts, closed_until, size = rt.windows.counts, rt.windows.closed_until, windowing.size_s
    out: list[Output] = []
    for line_id, direction, start in sorted(rt.dirty_windows, key=lambda k: (k[2], k[0], k[1])):
        count = counts.get(((line_id, direction), start))
        if count is None:  # already past retention
            continue
        final = start + size <= closed_until
        rec = window_count_record(rt.camera_id, line_id, direction, start, count, final, size, now)
        out.append((WINDOW_COUNTS, rec))
        rt.queue(WINDOW_COUNTS, rec)
    rt.dirty_windows.clear()
    return out


def unsent(rt: CameraRuntime) -> list[OutboxEntry]:
    """Outbox entries not sent by this process yet: always a suffix (entries are appended in order
    and sent in order; entries loaded from the changelog start unsent)."""
    outbox = rt.outbox
    i = len(outbox)
    while i > 0 and outbox[i - 1].future is None:
        i -= 1
    return outbox[i:]


def failed(rt: CameraRuntime) -> list[OutboxEntry]:
    """Outbox entries whose send failed; the caller sends them again (same records, same ids)."""
    return [e for e in rt.outbox if e.failed]


def prune_delivered(rt: CameraRuntime) -> int:
    """Drop the outbox entries Kafka has acknowledged; returns how many remain."""
    if rt.outbox:
        rt.outbox = [e for e in rt.outbox if not e.delivered]
    return len(rt.outbox)


# --------------------------------------------------------------------------- changelog form

_MAGIC = b"FFC1"
_LEN = struct.Struct("<I")


def encode(rt: CameraRuntime) -> bytes:
    """Changelog value: magic, the CameraState bytes, then a JSON document with the rest."""
    cs = rt.state.to_bytes()
    meta = {
        "camera_id": rt.camera_id,
        "partition": rt.partition,
        "windows": rt.windows.to_dict(),
        "zones": {zid: b.to_list() for zid, b in rt.zones.items()},
        "outbox": [[e.topic, e.value.decode()] for e in rt.outbox],
        "paths": rt.paths.to_list(),
    }
    return b"".join((_MAGIC, _LEN.pack(len(cs)), cs, json.dumps(meta, separators=(",", ":")).encode()))


def decode(data: bytes) -> CameraRuntime:
    """Inverse of :func:`encode`; outbox entries come back unsent (``future`` None)."""
    if data[:4] != _MAGIC:
        raise ValueError(f"not a camera runtime record (magic {bytes(data[:4])!r})")
    (n,) = _LEN.unpack_from(data, 4)
    start = 4 + _LEN.size
    state = CameraState.from_bytes(data[start : start + n])
    meta = json.loads(data[start + n :])
    for topic, _ in meta["outbox"]:
        if topic not in _OUTPUT_TYPES:
            raise ValueError(f"unknown outbox topic {topic!r}")
    return CameraRuntime(
        camera_id=meta["camera_id"],
        partition=int(meta["partition"]),
        state=state,
        windows=WindowState.from_dict(meta["windows"]),
        zones={zid: ZoneBook.from_list(v) for zid, v in meta["zones"].items()},
        outbox=[OutboxEntry(topic, value.encode()) for topic, value in meta["outbox"]],
        paths=PathBook.from_list(meta.get("paths")),  # absent in states written before tracks were kept
    )
