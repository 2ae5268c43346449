"""Wire records: everything on a topic is one of these, as plain JSON.

Conventions:
- times are UNIX epoch seconds (float, UTC); durations carry their unit in the name (``_ms``, ``_s``);
- coordinates are pixels of the frame the detector saw (x right, y down, origin top-left);
- every record has ``schema_version``; readers accept :attr:`WireRecord.SUPPORTED_VERSIONS`.

>>> box = [10.0, 20.0, 50.0, 120.0, 0.9]
>>> fd = FrameDetections(camera_id="cam-1", frame_seq=7, captured_at=1.7e9, frame_width=640,
...                      frame_height=360, boxes=[box], model_name="yolov8s", model_version="8.3",
...                      inference_ms=55.0, published_at=1.7e9 + 0.07)
>>> parse(FrameDetections, fd.to_json()).boxes
[[10.0, 20.0, 50.0, 120.0, 0.9]]
"""

from __future__ import annotations

import dataclasses
import re
import types
from typing import Any
from urllib.parse import urlsplit

from core import alerting
from core.camera import CameraParams
from core.counting import CountingParams
from core.tracking import TrackerParams
from models.base import SCHEMA_VERSION, SchemaError, WireRecord, parse

__all__ = [
    "SCHEMA_VERSION",
    "SchemaError",
    "parse",
    "FrameDetections",
    "StreamStats",
    "CountingLine",
    "Zone",
    "StreamSettings",
    "DetectionSettings",
    "TrackingSettings",
    "PARAM_CLASSES",
    "param_fields",
    "AlertThresholds",
    "CameraConfig",
    "CrossingEvent",
    "ZoneEvent",
    "WindowCount",
    "OccupancySample",
    "AlertRule",
    "AlertEvent",
    "AlertLogEntry",
    "Alert",
    "CameraHealth",
    "DbHealth",
    "HypertableHealth",
    "CaggLag",
    "DeadLetter",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
STREAM_STATUSES = ("online", "degraded", "offline")
DIRECTIONS = ("in", "out")
SEVERITIES = alerting.SEVERITIES
ALERT_STATUSES = alerting.STATUSES
TRENDS = ("increasing", "decreasing", "stable")


def _check_id(rec: WireRecord, field: str) -> None:
    value = getattr(rec, field)
    if not _ID.match(value):
        rec.fail(field, f"{value!r} is not a valid id (letters, digits, '_.:-', at most 100 chars)")


def _check_point(rec: WireRecord, field: str, point: list[float]) -> None:
    if len(point) != 2:
        rec.fail(field, f"a point is [x, y], got {len(point)} numbers")
    if point[0] < 0 or point[1] < 0:
        rec.fail(field, f"pixel coordinates must be >= 0, got {point}")


def _check_nonneg(rec: WireRecord, *fields: str) -> None:
    for field in fields:
        value = getattr(rec, field)
        if value is not None and value < 0:
            rec.fail(field, f"must be >= 0, got {value}")


def _check_choice(rec: WireRecord, field: str, choices: tuple[str, ...]) -> None:
    value = getattr(rec, field)
    if value not in choices:
        rec.fail(field, f"must be one of {', '.join(choices)}; got {value!r}")


# --------------------------------------------------------------------------- detections


class FrameDetections(WireRecord):
    """Person boxes found in one frame of one camera. Topic ``detections``, key ``camera_id``.

    ``boxes`` are ``[x1, y1, x2, y2, confidence]`` (compact on purpose: this is the hot topic).
    ``frame_seq`` increases strictly per camera, also across grabber restarts and fail-overs:
    producers derive it from the capture clock in microseconds, ``max(previous + 1, now_us)``.
    Consumers treat a frame whose seq is not above the last one processed as already seen.
    """

    camera_id: str
    frame_seq: int
    captured_at: float
    frame_width: int
    frame_height: int
    boxes: list[list[float]]
    model_name: str
    model_version: str
    inference_ms: float
    published_at: float
    # True: the grabber's motion gate skipped the detector on this frame (nothing moved in the
    # camera's region of interest since the last detection, streams/motion.py) and ``boxes`` repeat
    # that detection's; ``inference_ms`` is then 0.
    gated: bool = False
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        _check_nonneg(self, "frame_seq", "captured_at", "inference_ms")
        if self.frame_width <= 0 or self.frame_height <= 0:
            self.fail("frame_width", f"frame size must be positive, got {self.frame_width}x{self.frame_height}")
        for i, box in enumerate(self.boxes):
            if len(box) != 5:
                self.fail(f"boxes[{i}]", f"a box is [x1, y1, x2, y2, confidence], got {len(box)} numbers")
            x1, y1, x2, y2, conf = box
            if not (x2 > x1 and y2 > y1):
                self.fail(f"boxes[{i}]", f"x2 > x1 and y2 > y1 required, got {box[:4]}")
            if not 0.0 <= conf <= 1.0:
                self.fail(f"boxes[{i}]", f"confidence must be within 0..1, got {conf}")


class StreamStats(WireRecord):
    """Health of one camera stream over the last ``window_s``. Topic ``stream-stats``, key ``camera_id``.

    Counters (``dropped_frames``, ``decode_errors``, ``reconnects``) are totals since the grabber
    started, so a lost message loses nothing; rates and percentiles cover the window.
    """

    camera_id: str
    grabber_id: str
    at: float
    status: str
    window_s: float
    input_fps: float
    processed_fps: float
    dropped_frames: int
    decode_errors: int
    reconnects: int
    inference_ms_p50: float | None = None
    inference_ms_p95: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    frame_width: int | None = None
    frame_height: int | None = None
    model_name: str | None = None
    model_version: str | None = None
    last_error: str | None = None
    # Store and forward (streams/spool.py): this camera's messages waiting in the grabber's spool
    # (not in Kafka yet), the age of the oldest of them at ``at``, and how many a spool bound
    # (bytes, age) dropped since the grabber started.
    spooled_messages: int = 0
    spool_oldest_age_s: float | None = None
    spool_dropped: int = 0
    # What ran the detector for this camera (streams/backends.py): "torch" | "onnx" | "openvino",
    # "fp32" | "int8" (after any fallback); None from a grabber that predates them.
    inference_backend: str | None = None
    inference_precision: str | None = None
    # Share of the window's published frames on which the motion gate skipped the detector
    # (streams/motion.py); None when the camera's gating is off.
    gated_ratio: float | None = None
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        _check_choice(self, "status", STREAM_STATUSES)
        _check_nonneg(
            self,
            "spooled_messages",
            "spool_oldest_age_s",
            "spool_dropped",
            "gated_ratio",
            "window_s",
            "input_fps",
            "processed_fps",
            "dropped_frames",
            "decode_errors",
            "reconnects",
            "inference_ms_p50",
            "inference_ms_p95",
            "latency_ms_p50",
            "latency_ms_p95",
        )


# --------------------------------------------------------------------------- camera configuration


class CountingLine(WireRecord):
    """A directed counting line from ``start`` to ``end``.

    ``in`` means moving onto the right-hand side of the arrow start -> end as it looks on screen:
    an arrow drawn upwards counts left-to-right movement as ``in``, one drawn downwards counts
    right-to-left movement as ``in``. ``count`` limits which directions are counted.
    """

    line_id: str
    start: list[float]
    end: list[float]
    name: str = ""
    count: str = "both"  # both | in_only | out_only
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "line_id")
        _check_point(self, "start", self.start)
        _check_point(self, "end", self.end)
        if self.start == self.end:
            self.fail("end", "a line needs two distinct points")
        _check_choice(self, "count", ("both", "in_only", "out_only"))


class Zone(WireRecord):
    """A polygon whose occupancy, dwell time and capacity use are tracked."""

    zone_id: str
    polygon: list[list[float]]
    name: str = ""
    capacity: int | None = None
    # Occupancy (percent of capacity) at which a capacity alert fires.
    alert_threshold_pct: float | None = None
    area_sqm: float | None = None
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "zone_id")
        if len(self.polygon) < 3:
            self.fail("polygon", f"a zone needs at least 3 points, got {len(self.polygon)}")
        for i, p in enumerate(self.polygon):
            _check_point(self, f"polygon[{i}]", p)
        if self.capacity is not None and self.capacity <= 0:
            self.fail("capacity", f"must be positive, got {self.capacity}")
        if self.area_sqm is not None and self.area_sqm <= 0:
            self.fail("area_sqm", f"must be positive, got {self.area_sqm}")
        _check_nonneg(self, "alert_threshold_pct")


class StreamSettings(WireRecord):
    """Where and how a grabber reads a camera. Credentials never travel in here: ``url`` must
    not carry a password; ``credentials_ref`` names the environment variable (on the grabber's
    host) that holds it."""

    url: str
    protocol: str = "rtsp"  # rtsp | http | file | device
    username: str | None = None
    credentials_ref: str | None = None
    timeout_s: float = 10.0
    retry_count: int = 3
    retry_interval_s: float = 5.0
    target_fps: float = 10.0
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_choice(self, "protocol", ("rtsp", "http", "file", "device"))
        if self.protocol in ("rtsp", "http"):
            parts = urlsplit(self.url)
            if parts.password:
                self.fail("url", "must not contain a password; name its environment variable in credentials_ref")
        if self.credentials_ref is not None and not re.match(r"^[A-Z_][A-Z0-9_]*$", self.credentials_ref):
            self.fail("credentials_ref", "must be an environment variable name (A-Z, 0-9, _)")
        if self.timeout_s <= 0 or self.retry_interval_s <= 0 or self.target_fps <= 0:
            self.fail("timeout_s", "timeout_s, retry_interval_s and target_fps must be positive")
        _check_nonneg(self, "retry_count")


# Kept in step with streams.backends.BACKENDS / PRECISIONS (models/ imports no detector code).
DETECTOR_BACKENDS = ("auto", "torch", "onnx", "openvino")
DETECTOR_PRECISIONS = ("fp32", "int8")


class DetectionSettings(WireRecord):
    """Detector settings for one camera; empty ``model`` means the grabber's default.

    ``imgsz`` None follows the stream: the grabber derives the inference size from each frame's
    size (:func:`streams.detector.auto_imgsz`). ``nms_iou`` None is the grabber's default
    (``--nms-iou``, :data:`streams.detector.NMS_IOU`). A grabber's ``--imgsz`` overrides ``imgsz``.
    """

    model: str = ""
    imgsz: int | None = None
    # Boxes below this never leave the grabber. Low on purpose: the tracker's second stage uses
    # boxes from 0.1 (TrackerParams.low_conf) to keep people it already follows through partial
    # occlusion; only boxes from high_conf (0.4) start or lead tracks. Pooled counting accuracy
    # 0.905 at 0.1, 0.892 at 0.2 and at 0.3 (bench/accuracy.py --grid confidence=0.3,0.2).
    confidence: float = 0.1
    # Non-maximum suppression IoU: lower drops more overlapping boxes (0.5 suits crowds).
    nms_iou: float | None = None
    # Polygon outside which detections are ignored; None = the whole frame.
    region: list[list[float]] | None = None
    # Inference backend (streams/backends.py): "auto" | "torch" | "onnx" | "openvino"; None = the
    # grabber's --backend. Precision: "fp32" | "int8" (INT8: OpenVINO only); None = --precision.
    backend: str | None = None
    precision: str | None = None
    # Motion gate (streams/motion.py): skip the detector on frames where nothing moved near the
    # camera's lines and zones. None = the grabber's default (--motion-gating, on). A scene that
    # is never still (trees in the wind) only keeps the gate open: nothing is lost, nothing saved.
    motion_gating: bool | None = None
    # Changed share of the region of interest that runs the detector; None = the gate's default
    # (streams.motion.MotionParams.min_fraction, 0.002).
    motion_threshold: float | None = None
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        if self.imgsz is not None and not 32 <= self.imgsz <= 4096:
            self.fail("imgsz", f"must be within 32..4096, got {self.imgsz}")
        if not 0.0 < self.confidence <= 1.0:
            self.fail("confidence", f"must be within (0, 1], got {self.confidence}")
        if self.nms_iou is not None and not 0.0 < self.nms_iou <= 1.0:
            self.fail("nms_iou", f"must be within (0, 1], got {self.nms_iou}")
        if self.backend is not None and self.backend not in DETECTOR_BACKENDS:
            self.fail("backend", f"must be one of {', '.join(DETECTOR_BACKENDS)}, got {self.backend!r}")
        if self.precision is not None and self.precision not in DETECTOR_PRECISIONS:
            self.fail("precision", f"must be one of {', '.join(DETECTOR_PRECISIONS)}, got {self.precision!r}")
        if self.motion_threshold is not None and not 0.0 < self.motion_threshold < 1.0:
            self.fail("motion_threshold", f"must be within (0, 1), got {self.motion_threshold}")
        if self.region is not None:
            if len(self.region) < 3:
                self.fail("region", "a detection region needs at least 3 points")
            for i, p in enumerate(self.region):
                _check_point(self, f"region[{i}]", p)


# The parameter dataclasses a camera's ``tracking`` settings override, in CameraParams order.
PARAM_CLASSES: tuple[type, ...] = (TrackerParams, CountingParams)
_PARAM_TYPES: dict[Any, type] = {"float": float, "int": int, "bool": bool, float: float, int: int, bool: bool}


def param_fields(cls: type) -> dict[str, type]:
    """``{name: type}`` of the fields of a parameter dataclass a :class:`TrackingSettings` can
    override (plain ``float``/``int``/``bool`` fields; anything else is left out, and
    ``tests/unit/test_models_tracking_settings.py`` fails until it is supported here)."""
    out = {}
    for f in dataclasses.fields(cls):
        tp = _PARAM_TYPES.get(f.type)
        if tp is not None:
            out[f.name] = tp
    return out


class _TrackingBase(WireRecord, abstract=True):
    """Behaviour of :class:`TrackingSettings`; its fields are generated below."""

    def overrides(self) -> list[tuple[type, dict[str, Any]]]:
        """``[(params class, {field: value})]``: the values set (not None), floats as floats."""
        out = []
        for cls in PARAM_CLASSES:
            values = {}
            for name, tp in param_fields(cls).items():
                value = getattr(self, name)
                if value is not None:
                    values[name] = float(value) if tp is float else value
            out.append((cls, values))
        return out

    def check(self) -> None:
        for cls, values in self.overrides():
            try:
                cls(**values)
            except (TypeError, ValueError) as exc:
                # the overridden parameter the message names first, else the first one overridden
                found = {k: m.start() for k in values if (m := re.search(rf"\b{k}\b", str(exc)))}
                self.fail(min(found, key=found.__getitem__) if found else next(iter(values)), str(exc))

    def camera_params(self) -> CameraParams:
        """The :class:`~core.camera.CameraParams` these settings give (defaults where None)."""
        tracker, counting = (cls(**values) for cls, values in self.overrides())
        return CameraParams(tracker=tracker, counting=counting)


def _tracking_settings() -> type[_TrackingBase]:
    """Build :class:`TrackingSettings` with one optional field per parameter of
    :data:`PARAM_CLASSES`, so a parameter added to the core is configurable without a change here."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": "TrackingSettings"}
    for cls in PARAM_CLASSES:
        for name, tp in param_fields(cls).items():
            if name in annotations:
                raise TypeError(f"parameter {name!r} is in two parameter classes; TrackingSettings is flat")
            annotations[name] = tp | None
            namespace[name] = None
    annotations["schema_version"] = int
    namespace["schema_version"] = SCHEMA_VERSION
    namespace["__annotations__"] = annotations
    namespace["__doc__"] = (
        "Tracking and counting parameters of one camera: optional overrides of the fields of\n"
        "``core.tracking.TrackerParams`` and ``core.counting.CountingParams`` (one flat field per\n"
        "parameter, same name and type; None = the default, which may change between releases).\n"
        "Validated by building those dataclasses; an error names the parameter. See\n"
        "``core.camera`` for what a change does to a running camera (its tracks are restarted)."
    )
    return types.new_class("TrackingSettings", (_TrackingBase,), exec_body=lambda ns: ns.update(namespace))


TrackingSettings = _tracking_settings()


class AlertThresholds(WireRecord):
    """Per-camera alert thresholds; defaults are the product notes' (seed 000)."""

    offline_after_s: float = 300.0  # camera_offline (critical): no heartbeat for 5 min
    min_stream_fps_ratio: float = 0.7  # poor_stream_quality (warning): processed/target fps
    max_frame_drop_pct: float = 10.0  # high_frame_drops (warning)
    max_latency_ms: float = 1000.0  # high_latency (error): capture -> publish
    max_reconnects_per_hour: int = 5  # connection_issues (critical)
    max_inference_ms: float = 200.0  # high_inference_latency (warning)
    max_processing_latency_ms: float = 500.0  # high_processing_latency (error): capture -> counted
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_nonneg(
            self,
            "offline_after_s",
            "min_stream_fps_ratio",
            "max_frame_drop_pct",
            "max_latency_ms",
            "max_reconnects_per_hour",
            "max_inference_ms",
            "max_processing_latency_ms",
        )


class CameraConfig(WireRecord):
    """Everything about one camera that is data, not code. Topic ``camera-config`` (compacted),
    key ``camera_id``; a tombstone (null value) removes the camera."""

    camera_id: str
    name: str = ""
    enabled: bool = True
    tenant: str = "default"
    location: str | None = None
    groups: list[str] = []  # noqa: RUF012 - faust copies defaults per instance
    timezone: str = "UTC"
    stream: StreamSettings | None = None
    detection: DetectionSettings | None = None
    tracking: TrackingSettings | None = None
    lines: list[CountingLine] = []  # noqa: RUF012
    zones: list[Zone] = []  # noqa: RUF012
    thresholds: AlertThresholds | None = None
    updated_at: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        for field, items, key in (("lines", self.lines, "line_id"), ("zones", self.zones, "zone_id")):
            ids = [getattr(item, key) for item in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                self.fail(field, f"duplicate {key} {dupes[0]!r}")
        for g in self.groups:
            if not _ID.match(g):
                self.fail("groups", f"{g!r} is not a valid group id")


# --------------------------------------------------------------------------- counting outputs


class CrossingEvent(WireRecord):
    """One person crossing one line once. Topic ``crossings``, key ``camera_id``.

    ``event_id`` is deterministic (camera, line, track, direction, frame) so a replay produces
    the same id and sinks drop the duplicate.
    """

    event_id: str
    camera_id: str
    line_id: str
    track_id: int
    direction: str
    frame_seq: int
    occurred_at: float
    processed_at: float
    x: float
    y: float
    confidence: float = 1.0
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        _check_id(self, "line_id")
        _check_choice(self, "direction", DIRECTIONS)
        _check_nonneg(self, "track_id", "frame_seq", "occurred_at")


class TrackSummary(WireRecord):
    """One person's path through a camera's view. Topic ``tracks``, key ``camera_id``.

    Emitted when a track ends, and for a long stay every ``core.trajectories.SEGMENT_S`` seconds
    while it lives (``segment`` 0, 1, ...; ``final`` on the last one). ``event_id`` is
    ``camera:track:segment``, the same on a replay, so sinks drop duplicates.

    ``path`` is the anchor (bottom-centre of the box) simplified with Douglas-Peucker within
    ``tolerance_px``: ``[t, x, y, h]`` per vertex, ``t`` seconds since ``first_seen`` and ``h`` the
    box height (the counting band scales with it). ``confirmed_t`` is when the tracker confirmed
    the track (seconds since ``first_seen``; 0 for a later segment). ``lines``: ``[line_id,
    direction, at]`` per crossing counted live; ``zones``: ``[zone_id, entered_at, dwell_s]`` per
    visit (``dwell_s`` None while still inside at the segment's end).
    """

    event_id: str
    camera_id: str
    track_id: int
    segment: int
    final: bool
    first_seen: float
    last_seen: float
    path: list[list[float]]
    tolerance_px: float
    confirmed_t: float
    mean_speed: float  # px/s along the raw path
    max_speed: float  # px/s, the tracker's velocity estimate
    processed_at: float
    lines: list[list[Any]] = []  # noqa: RUF012
    zones: list[list[Any]] = []  # noqa: RUF012
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        _check_nonneg(self, "track_id", "segment", "first_seen", "tolerance_px", "mean_speed", "max_speed")
        if self.last_seen < self.first_seen:
            self.fail("last_seen", f"before first_seen ({self.last_seen} < {self.first_seen})")
        if not self.path:
            self.fail("path", "a track has at least one point")
        for i, p in enumerate(self.path):
            if len(p) != 4:
                self.fail(f"path[{i}]", f"a path vertex is [t, x, y, h], got {len(p)} numbers")


class ZoneEvent(WireRecord):
    """A person entering or leaving a zone; exits carry the dwell time. Topic ``zone-events``."""

    event_id: str
    camera_id: str
    zone_id: str
    track_id: int
    kind: str  # enter | exit
    frame_seq: int
    occurred_at: float
    processed_at: float
    dwell_s: float | None = None
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        _check_id(self, "zone_id")
        _check_choice(self, "kind", ("enter", "exit"))
        _check_nonneg(self, "track_id", "frame_seq", "occurred_at", "dwell_s")


class WindowCount(WireRecord):
    """Crossings of one line in one direction in a tumbling window ``[window_start, window_end)``.
    Re-emitted as late events arrive; ``final`` once the grace period has passed.
    Topic ``window-counts``, key ``camera_id``."""

    camera_id: str
    line_id: str
    direction: str
    window_start: float
    window_end: float
    count: int
    updated_at: float
    final: bool = False
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_choice(self, "direction", DIRECTIONS)
        if self.window_end <= self.window_start:
            self.fail("window_end", "must be after window_start")
        _check_nonneg(self, "count")


class OccupancySample(WireRecord):
    """People inside one zone at one moment. Topic ``occupancy``, key ``camera_id``."""

    camera_id: str
    zone_id: str
    at: float
    count: int
    capacity: int | None = None
    capacity_pct: float | None = None
    density_per_sqm: float | None = None
    avg_dwell_s: float | None = None
    trend: str = "stable"
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_nonneg(self, "count", "capacity_pct", "density_per_sqm", "avg_dwell_s")
        _check_choice(self, "trend", TRENDS)


# --------------------------------------------------------------------------- alerts and errors


CHANNEL_KINDS = ("webhook", "slack", "email")
# message placeholders that are text; value and threshold are numbers
_MESSAGE_FIELDS = ("rule", "camera_id", "zone_id", "line", "database", "metric", "severity")


class AlertRule(WireRecord):
    """A rule that raises alerts (seed 000's ``alert_rules``), as data. Topic ``alert-rules``
    (compacted), key ``rule_id``; a tombstone deletes the rule. The table ``alert_rules`` holds the
    same rules for the API; the built-in ones are seeded by ``sql/migrations/006_alerting.sql``.

    ``metric`` is one of :data:`core.alerting.METRICS`; the rule applies to the cameras of its
    tenant, narrowed by ``camera_id`` / ``group`` / ``zone_id``; a ``database``-scope metric
    (``db_*``) applies platform-wide: tenant ``default``, never narrowed. The condition
    (``comparison``, ``threshold``, ``resolve_threshold``, ``for_s``, ``cooldown_s``) is
    :class:`core.alerting.Condition`; ``eval_interval_s`` paces the metrics sampled by timer
    (absence, processing latency), the others are evaluated on every report.
    """

    rule_id: str
    metric: str
    comparison: str
    threshold: float | None = None
    tenant: str = "default"
    name: str = ""
    description: str = ""
    resolve_threshold: float | None = None
    for_s: float = 0.0
    eval_interval_s: float = 10.0
    cooldown_s: float = 300.0
    severity: str = "warning"
    message: str = "{rule}: {metric} is {value} (threshold {threshold})"
    channels: list[str] = []  # noqa: RUF012 - "webhook:https://...", "slack:https://...", "email:ops@example.org"
    escalation_delay_s: float | None = None
    escalation_channels: list[str] = []  # noqa: RUF012
    camera_id: str | None = None
    group: str | None = None
    zone_id: str | None = None
    active: bool = True
    updated_at: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "rule_id")
        _check_id(self, "tenant")
        _check_choice(self, "metric", tuple(alerting.METRICS))
        _check_choice(self, "severity", SEVERITIES)
        scope = alerting.METRICS[self.metric][0]
        if self.threshold is None and self.metric != "occupancy_pct":
            self.fail("threshold", f"required for metric {self.metric!r}")
        if scope == "database" and self.tenant != "default":
            self.fail("tenant", f"metric {self.metric!r} is per database (platform-wide): tenant must be 'default'")
        if scope == "database":  # platform-wide: one fingerprint per database, never narrowed
            for field in ("camera_id", "group", "zone_id"):
                if getattr(self, field) is not None:
                    self.fail(field, f"metric {self.metric!r} is per database; a database rule cannot have a {field}")
        if self.zone_id is not None and scope != "zone":
            self.fail("zone_id", f"metric {self.metric!r} is per camera, not per zone")
        for field in ("camera_id", "group", "zone_id"):
            if getattr(self, field) is not None:
                _check_id(self, field)
        _check_nonneg(self, "for_s", "cooldown_s", "escalation_delay_s")
        if self.eval_interval_s <= 0:
            self.fail("eval_interval_s", f"must be > 0, got {self.eval_interval_s}")
        if self.threshold is None and self.resolve_threshold is not None:
            self.fail("resolve_threshold", "needs a threshold of the rule's own (hysteresis is relative to it)")
        why = alerting.check_condition(self.condition(self.threshold if self.threshold is not None else 0.0))
        if why is not None:
            field, _, reason = why.partition(": ")
            self.fail(field, reason)
        for field in ("channels", "escalation_channels"):
            for i, spec in enumerate(getattr(self, field)):
                kind, sep, target = spec.partition(":")
                if not sep or kind not in CHANNEL_KINDS or not target:
                    self.fail(f"{field}[{i}]", f"expected '<{'|'.join(CHANNEL_KINDS)}>:<target>', got {spec!r}")
        if self.escalation_delay_s is not None and not self.escalation_channels:
            self.fail("escalation_channels", "required when escalation_delay_s is set")
        try:
            self.message.format(**dict.fromkeys(_MESSAGE_FIELDS, ""), value=0.0, threshold=0.0)
        except (KeyError, IndexError, ValueError) as exc:
            fields = ", ".join((*_MESSAGE_FIELDS, "value", "threshold"))
            self.fail("message", f"unknown or malformed placeholder {exc}; use {fields}")

    def condition(self, threshold: float) -> alerting.Condition:
        """The rule's condition with ``threshold`` (the rule's own, or a zone's for occupancy)."""
        return alerting.Condition(self.comparison, threshold, self.resolve_threshold, self.for_s, self.cooldown_s)


class AlertLogEntry(WireRecord):
    """One line of an alert's resolution log: who did what, when, with an optional note."""

    at: float
    action: str  # fired | acknowledge | resolve | close | note | escalated | resolved (by the condition)
    by: str | None = None
    note: str | None = None
    schema_version: int = SCHEMA_VERSION


class Alert(WireRecord):
    """An alert and its lifecycle (active -> acknowledged -> resolved -> closed). Topic ``alerts``
    (compacted), key ``alert_id``; the latest record per id is the alert's state. ``fingerprint``
    is the rule and scope (``rule|camera[/zone]``): one open incident per fingerprint."""

    alert_id: str
    rule: str
    severity: str
    status: str
    title: str
    triggered_at: float
    updated_at: float
    camera_id: str | None = None
    description: str = ""
    metric_value: float | None = None
    threshold: float | None = None
    resolved_at: float | None = None
    acknowledged_by: str | None = None
    tenant: str = "default"
    fingerprint: str | None = None
    zone_id: str | None = None
    metric: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    closed_at: float | None = None
    escalated_at: float | None = None
    log: list[AlertLogEntry] = []  # noqa: RUF012
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_choice(self, "severity", SEVERITIES)
        _check_choice(self, "status", ALERT_STATUSES)


class AlertEvent(WireRecord):
    """Something that happened to an alert. Topic ``alert-events``, key ``alert_id``.

    The evaluator writes ``fired`` (with the alert's fields) and ``resolved`` (the condition
    cleared); the API writes a person's ``acknowledge`` / ``resolve`` / ``close`` / ``note``. The
    lifecycle agent (``agents.alerting``) is the only writer of the ``alerts`` topic: it folds these
    events into each alert with :func:`core.alerting.next_status` and sends the notifications.
    """

    alert_id: str
    kind: str  # fired | resolved | acknowledge | resolve | close | note
    at: float
    by: str | None = None
    note: str | None = None
    alert: Alert | None = None  # with kind "fired": the new alert
    metric_value: float | None = None
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_choice(self, "kind", ("fired", "resolved", *alerting.ACTIONS))
        if self.kind == "fired" and self.alert is None:
            self.fail("alert", "required for kind 'fired'")


class CameraHealth(WireRecord):
    """What the alert evaluator derives from one stream-stats report (``agents.alerting``). Topic
    ``camera-health``, key ``camera_id``; the sink writes the ``camera_health`` hypertable."""

    camera_id: str
    at: float
    status: str
    stream_quality_score: float
    frame_drop_pct: float
    offline_s: float
    processing_lag_ms: float | None = None
    # model performance since the camera's previous report (migration 011)
    detections_per_frame: float | None = None
    mean_confidence: float | None = None
    model_drift_score: float | None = None
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "camera_id")
        _check_choice(self, "status", STREAM_STATUSES)
        _check_nonneg(self, "stream_quality_score", "frame_drop_pct", "offline_s")


class HypertableHealth(WireRecord):
    """One hypertable in a :class:`DbHealth` sample (``hypertable_detailed_size`` and
    ``hypertable_compression_stats``). ``compression_ratio`` is bytes before / after compression of
    the compressed chunks (None while none is compressed)."""

    hypertable: str
    total_bytes: int
    chunks: int
    compressed_chunks: int = 0
    compression_ratio: float | None = None


class CaggLag(WireRecord):
    """One continuous aggregate in a :class:`DbHealth` sample: its watermark (epoch s; None when it
    was never materialized) and ``lag_s`` = sample time - watermark."""

    view: str
    watermark: float | None = None
    lag_s: float | None = None


class DbHealth(WireRecord):
    """The database's health, sampled by the worker's leader every ``alerting.db_health_interval_s``
    (``sql.health``). Topic ``db-health``, key ``database``; the sink writes the ``db_health``
    hypertable, the evaluator judges the ``db_*`` metrics on it (fingerprint ``rule|db:<database>``).

    A figure the server cannot give is None and named in ``skipped`` (on PGlite ``pg_stat_activity``
    is empty, so ``connections``, ``connections_pct`` and ``slow_queries`` are None there).
    """

    database: str
    at: float
    max_connections: int | None = None
    connections: int | None = None
    connections_pct: float | None = None
    slow_queries: int | None = None  # active queries running for more than 1 s
    longest_query_s: float | None = None
    database_bytes: int | None = None
    cagg_refresh_lag_s: float | None = None  # the largest lag_s of ``caggs``
    hypertables: list[HypertableHealth] = []  # noqa: RUF012
    caggs: list[CaggLag] = []  # noqa: RUF012
    skipped: list[str] = []  # noqa: RUF012 - "what: why" of each figure that could not be sampled
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_id(self, "database")
        _check_nonneg(self, "max_connections", "connections", "connections_pct", "slow_queries", "longest_query_s",
                      "database_bytes", "cagg_refresh_lag_s")  # fmt: skip


class DeadLetter(WireRecord):
    """A message that failed validation, with where it came from and why. Topic ``dead-letter``."""

    source_topic: str
    partition: int
    offset: int
    error: str
    value: str  # the raw value, decoded as UTF-8 with replacement, truncated to 64 KiB
    key: str | None = None
    at: float = 0.0
    schema_version: int = SCHEMA_VERSION
