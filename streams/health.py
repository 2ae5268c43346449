"""Stream health: the status rules, per-window statistics and the Prometheus metrics.

Status of one camera, decided at every stats tick (thresholds from the camera's
:class:`~models.records.AlertThresholds`, defaults from seed 000):

- ``offline``: no stream -- the source is not connected and ``retry_count`` consecutive attempts
  have failed (or a file source has ended); retries go on at the backoff cap.
- ``degraded``: the stream is reconnecting but has not yet used up ``retry_count`` attempts; or it
  is connected and processed fps is below ``min_stream_fps_ratio`` (70 %) of the expected rate
  (``min(target_fps, nominal source fps)``), or more than ``max_frame_drop_pct`` (10 %) of the
  frames wanted by the fps sampler were dropped because inference was busy, or publishing to Kafka
  is failing.
- ``online``: connected and none of the above.

Rates are judged only after the stream has been connected for ``min_judge_s`` within the window,
so a camera that just (re)connected is not called degraded for its first second.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.records import AlertThresholds

DEFAULT_THRESHOLDS = AlertThresholds()
MIN_JUDGE_S = 2.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100); None for no values.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (k - lo))


@dataclass(frozen=True)
class StatusInputs:
    connected: bool
    retries_exhausted: bool  # retry_count consecutive failures, or the source ended for good
    target_fps: float
    source_fps: float | None  # nominal fps the source announces, if sane
    processed_fps: float
    connected_s: float  # seconds of the window the stream was connected
    wanted_frames: int  # frames the fps sampler wanted in the window
    dropped_frames: int  # of those, dropped because inference was busy
    publish_failing: bool
    publish_error: str | None = None


def expected_fps(target_fps: float, source_fps: float | None) -> float:
    if source_fps is not None and 0 < source_fps < target_fps:
        return source_fps
    return target_fps


def stream_status(
    s: StatusInputs, thresholds: AlertThresholds = DEFAULT_THRESHOLDS, min_judge_s: float = MIN_JUDGE_S
) -> tuple[str, str | None]:
    """``(status, reason)``; the reason says why a camera is not ``online``."""
    if not s.connected:
        if s.retries_exhausted:
            return "offline", "stream not connected"
        return "degraded", "stream not connected, retrying"
    reasons = []
    if s.connected_s >= min_judge_s:
        want = expected_fps(s.target_fps, s.source_fps)
        if s.processed_fps < thresholds.min_stream_fps_ratio * want:
            ratio = thresholds.min_stream_fps_ratio
            reasons.append(f"processed {s.processed_fps:.1f} fps < {ratio:.0%} of expected {want:.1f} fps")
        if s.wanted_frames > 0:
            drop_pct = 100.0 * s.dropped_frames / s.wanted_frames
            if drop_pct > thresholds.max_frame_drop_pct:
                reasons.append(f"dropped {drop_pct:.0f}% of frames (> {thresholds.max_frame_drop_pct:g}%)")
    if s.publish_failing:
        reasons.append(f"publishing failing: {s.publish_error or 'no delivery confirmed'}")
    if reasons:
        return "degraded", "; ".join(reasons)
    return "online", None


class WindowSamples:
    """Per-frame samples of one stats window (bounded; oldest samples are overwritten)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self.inference_ms: list[float] = []
        self.latency_ms: list[float] = []
        self.processed = 0  # frames published, detected or gated
        self.gated = 0  # of which the motion gate skipped the detector (streams/motion.py)

    def add(self, inference_ms: float, latency_ms: float) -> None:
        self.processed += 1
        _ring(self.inference_ms, inference_ms, self.processed - self.gated, self.limit)
        _ring(self.latency_ms, latency_ms, self.processed, self.limit)

    def add_gated(self, latency_ms: float) -> None:
        """A frame published without inference: counts as processed, adds no inference sample."""
        self.processed += 1
        self.gated += 1
        _ring(self.latency_ms, latency_ms, self.processed, self.limit)


def _ring(values: list[float], value: float, n: int, limit: int) -> None:
    if len(values) < limit:
        values.append(value)
    else:
        values[n % limit] = value


class GrabberMetrics:
    """Prometheus metrics of one grabber process, labelled by ``camera_id`` only (never the URL).

    Uses its own registry so several grabbers can live in one process (tests)."""

    STATUSES = ("online", "degraded", "offline")

    def __init__(self, registry=None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        r, cam = self.registry, ["camera_id"]
        self.frames_input = Counter("footfall_grabber_frames_input", "Frames decoded from the source", cam, registry=r)
        self.frames_processed = Counter(
            "footfall_grabber_frames_processed", "Frames published (detected or gated)", cam, registry=r
        )
        self.frames_dropped = Counter(
            "footfall_grabber_frames_dropped", "Sampled frames dropped: inference busy", cam, registry=r
        )
        self.decode_errors = Counter("footfall_grabber_decode_errors", "Frames that failed to decode", cam, registry=r)
        self.reconnects = Counter("footfall_grabber_reconnects", "Streams re-established after a drop", cam, registry=r)
        self.publish_dropped = Counter(
            "footfall_grabber_publish_dropped", "Messages not queued or not delivered to Kafka", cam, registry=r
        )
        self.input_fps = Gauge("footfall_grabber_input_fps", "Decoded frames per second (last window)", cam, registry=r)
        self.processed_fps = Gauge(
            "footfall_grabber_processed_fps", "Published frames per second (last window)", cam, registry=r
        )
        # motion gate (streams/motion.py): frames published without running the detector
        self.frames_gated = Counter(
            "footfall_grabber_frames_gated", "Frames the motion gate let skip the detector", cam, registry=r
        )
        self.gated_ratio = Gauge(
            "footfall_grabber_gated_ratio", "Share of published frames gated (last window)", cam, registry=r
        )
        self.status = Gauge(
            "footfall_grabber_status", "1 for the camera's current status", [*cam, "status"], registry=r
        )
        self.lease_held = Gauge("footfall_grabber_lease_held", "1 while this grabber owns the camera", cam, registry=r)
        # store and forward (streams/spool.py): what waits for the broker, per camera and in all
        self.spool_messages = Gauge(
            "footfall_grabber_spool_messages", "Messages waiting in the spool (not in Kafka yet)", cam, registry=r
        )
        self.spool_oldest_age = Gauge(
            "footfall_grabber_spool_oldest_age_seconds", "Age of the oldest spooled message (0: none)", cam, registry=r
        )
        self.spool_dropped = Counter(
            "footfall_grabber_spool_dropped", "Spooled messages dropped by a bound (oldest first)", cam, registry=r
        )
        self.spool_bytes = Gauge(
            "footfall_grabber_spool_bytes", "Bytes waiting in the spool, by tier", ["tier"], registry=r
        )
        buckets = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)
        self.inference_seconds = Histogram(
            "footfall_grabber_inference_seconds", "Detector call duration per frame", cam, buckets=buckets, registry=r
        )
        self.latency_seconds = Histogram(
            "footfall_grabber_capture_to_publish_seconds",
            "Capture to publish latency",
            cam,
            buckets=buckets,
            registry=r,
        )
        # What runs each camera's detector (streams/backends.py), after any fallback: 1 for the
        # current (backend, precision), the camera's other series removed.
        self.inference_backend = Gauge(
            "footfall_grabber_inference_backend",
            "1 for the inference backend and precision running the camera's detector",
            [*cam, "backend", "precision"],
            registry=r,
        )
        self._backend_labels: dict[str, tuple[str, str]] = {}

    def set_backend(self, camera_id: str, backend: str, precision: str) -> None:
        old = self._backend_labels.get(camera_id)
        if old == (backend, precision):
            return
        if old is not None:
            with contextlib.suppress(KeyError):
                self.inference_backend.remove(camera_id, *old)
        self.inference_backend.labels(camera_id, backend, precision).set(1)
        self._backend_labels[camera_id] = (backend, precision)

    def set_status(self, camera_id: str, status: str) -> None:
        for s in self.STATUSES:
            self.status.labels(camera_id, s).set(1.0 if s == status else 0.0)

    def set_spool(self, camera_id: str, waiting: int, oldest_age_s: float | None, dropped_new: int) -> None:
        """A camera's spool figures at a stats tick (``dropped_new``: drops since the last tick)."""
        self.spool_messages.labels(camera_id).set(waiting)
        self.spool_oldest_age.labels(camera_id).set(oldest_age_s or 0.0)
        self.spool_dropped.labels(camera_id).inc(dropped_new)

    def set_spool_bytes(self, memory: int, disk: int) -> None:
        self.spool_bytes.labels("memory").set(memory)
        self.spool_bytes.labels("disk").set(disk)

    def forget(self, camera_id: str) -> None:
        """Drop a camera's series (it moved to another grabber or was removed)."""
        for metric in (
            self.frames_input,
            self.frames_processed,
            self.frames_dropped,
            self.decode_errors,
            self.reconnects,
            self.publish_dropped,
            self.input_fps,
            self.processed_fps,
            self.frames_gated,
            self.gated_ratio,
            self.lease_held,
            self.spool_messages,
            self.spool_oldest_age,
            self.spool_dropped,
            self.inference_seconds,
            self.latency_seconds,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(camera_id)
        for s in self.STATUSES:
            with contextlib.suppress(KeyError):
                self.status.remove(camera_id, s)
        old = self._backend_labels.pop(camera_id, None)
        if old is not None:
            with contextlib.suppress(KeyError):
                self.inference_backend.remove(camera_id, *old)

    def serve(self, host: str, port: int):
        """Start the HTTP endpoint; returns the server (``shutdown()`` to stop)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
