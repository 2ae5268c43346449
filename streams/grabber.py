"""The grabber: cameras -> shared batched detector -> detections and stream-stats topics.

One process runs many cameras. Each camera has a reader thread (:mod:`streams.capture`) keeping
its newest sampled frame; the main loop takes the newest frame of every camera that has one,
groups them by (model, imgsz, NMS IoU, inference backend and precision), runs one batched
inference per group on the shared model, filters by each camera's confidence and detection region,
and publishes one ``FrameDetections`` per frame. Every ``stats_interval_s`` it publishes a
``StreamStats`` per camera and updates the Prometheus metrics. Cameras start when this process
gets their lease and stop the moment it loses it.

Per camera (``CameraConfig.detection``): ``model``, ``imgsz`` (None: from each frame's size,
:func:`streams.detector.auto_imgsz`; ``--imgsz`` overrides it for every camera), ``confidence``,
``nms_iou`` (None: the detector's, ``--nms-iou``), ``region`` and ``motion_gating`` /
``motion_threshold``. A changed config applies on the next frame: a new ``stream`` restarts the
camera's reader; any other change (detection settings, thresholds, lines) is applied in place,
without reconnecting.

Motion gate (:mod:`streams.motion`, on unless ``--no-motion-gating`` or the camera's
``detection.motion_gating`` is false): a frame on which nothing moved in the camera's region of
interest since its last detection skips the detector. It is still published, as a
``FrameDetections`` that repeats the boxes of that last detection, with ``gated=True`` and
``inference_ms`` 0. Publishing it rather than nothing keeps the counting agent exactly where it
would be: the tracker ages a track on every frame without its detection and removes it after
``max_lost_s`` (1 s), so a person standing still in a zone or by a line through seconds of gated
frames would otherwise lose their track, leave the zone and come back as a new track (a wrong
exit/entry, dwell restarted, a second count if they then cross). With their box repeated they are
matched on every frame as before; and occupancy, windows and health see the camera's full frame
rate. The cost is one small message per frame, as without the gate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace

import numpy as np

from models.records import CameraConfig, DetectionSettings, FrameDetections, StreamSettings, StreamStats
from streams.capture import CameraReader, CaptureCounters, Frame
from streams.config import select
from streams.detector import Detector, ModelError, auto_imgsz
from streams.health import DEFAULT_THRESHOLDS, GrabberMetrics, StatusInputs, WindowSamples, percentile, stream_status
from streams.motion import DEFAULT_MOTION, MotionGate, MotionParams, roi_for_camera
from streams.preview import Preview
from streams.publisher import KafkaPublisher
from streams.region import filter_boxes
from streams.seq import SeqClock
from streams.snapshots import SnapshotPublisher
from streams.sources import make_source

log = logging.getLogger(__name__)

DEFAULT_DETECTION = DetectionSettings()
WARM_UP_SIZE = (640, 360)  # frame size assumed for warming up a camera whose imgsz follows the stream


@dataclass
class GrabberOptions:
    grabber_id: str
    stats_interval_s: float = 5.0
    default_model: str = ""
    imgsz: int | None = None  # overrides every camera's detection.imgsz (--imgsz)
    realtime_files: bool = True
    loop_files: bool = True
    backoff_cap_s: float = 60.0
    max_batch: int = 16
    cameras: list[str] | None = None  # only these camera ids
    motion_gating: bool = True  # cameras whose detection.motion_gating is None (--motion-gating)
    motion: MotionParams = DEFAULT_MOTION  # the gate's defaults (a camera may set min_fraction)


def box_rows(boxes: np.ndarray) -> list[list[float]]:
    """Compact wire boxes: pixels to 0.1, confidence to 0.001, degenerate boxes dropped.

    >>> box_rows(np.array([[1.04, 2.0, 30.0, 40.0, 0.91234], [5.0, 5.0, 5.02, 9.0, 0.5]]))
    [[1.0, 2.0, 30.0, 40.0, 0.912]]
    """
    rows = []
    for x1, y1, x2, y2, conf in np.asarray(boxes, dtype=float).reshape(-1, 5):
        row = [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1), round(min(max(conf, 0.0), 1.0), 3)]
        if row[2] > row[0] and row[3] > row[1]:
            rows.append([float(v) for v in row])
    return rows


def _add(a: CaptureCounters, b: CaptureCounters) -> CaptureCounters:
    return CaptureCounters(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(CaptureCounters)})


def _sub(a: CaptureCounters, b: CaptureCounters) -> CaptureCounters:
    return CaptureCounters(**{f.name: getattr(a, f.name) - getattr(b, f.name) for f in fields(CaptureCounters)})


@dataclass
class CameraRuntime:
    """Everything the grabber keeps for one camera it owns."""

    config: CameraConfig
    reader: CameraReader
    seq: SeqClock = field(default_factory=SeqClock)
    window: WindowSamples = field(default_factory=WindowSamples)
    window_started: float = field(default_factory=time.monotonic)
    base: CaptureCounters = field(default_factory=CaptureCounters)  # totals of earlier readers (config changes)
    last_tick: CaptureCounters = field(default_factory=CaptureCounters)
    lost_seen: int = 0
    spool_dropped_seen: int = 0
    revoked: bool = False
    inference_error: str | None = None  # the last detector failure, until a call succeeds again
    status: str = "offline"
    model_name: str | None = None
    model_version: str | None = None
    inference_backend: str | None = None  # what ran its last detection (streams/backends.py)
    inference_precision: str | None = None
    gate: MotionGate | None = None  # made on the first frame with gating on; None again on a config change
    last_rows: list[list[float]] = field(default_factory=list)  # boxes of the last detection, as published

    @property
    def camera_id(self) -> str:
        return self.config.camera_id

    @property
    def detection(self) -> DetectionSettings:
        return self.config.detection or DEFAULT_DETECTION

    def totals(self) -> CaptureCounters:
        return _add(self.base, self.reader.counters)


class Grabber:
    def __init__(
        self,
        options: GrabberOptions,
        publisher: KafkaPublisher,
        detector: Detector,
        leases,
        metrics: GrabberMetrics | None = None,
        config_source: Callable[[], tuple[list[CameraConfig], bool]] | None = None,
        snapshots: SnapshotPublisher | None = None,
        preview: Preview | None = None,
    ) -> None:
        self.options = options
        self.publisher = publisher
        self.detector = detector
        self.leases = leases
        self.metrics = metrics or GrabberMetrics()
        self.config_source = config_source
        self.snapshots = snapshots  # a downscaled picture of each camera every few seconds (Redis)
        self.preview = preview  # the opt-in annotated MJPEG preview (streams/preview.py)
        self.wake = threading.Event()
        self.cameras: dict[str, CameraRuntime] = {}
        self.selected: dict[str, CameraConfig] = {}
        self._lock = threading.Lock()
        self._next_tick = time.monotonic() + options.stats_interval_s
        self.published = 0
        self._last_inference_log = 0.0

    # ------------------------------------------------------------------ configuration

    def model_spec(self, cfg: CameraConfig) -> str:
        return (cfg.detection.model if cfg.detection else "") or self.options.default_model

    def imgsz(self, cfg: CameraConfig, frame_size: tuple[int, int] = WARM_UP_SIZE) -> int:
        """Inference size: ``--imgsz``, else the camera's ``detection.imgsz``, else derived from
        ``frame_size`` (width, height) by :func:`auto_imgsz`."""
        return self.options.imgsz or (cfg.detection or DEFAULT_DETECTION).imgsz or auto_imgsz(*frame_size)

    def nms_iou(self, cfg: CameraConfig) -> float:
        """NMS IoU: the camera's ``detection.nms_iou``, else the detector's default."""
        value = (cfg.detection or DEFAULT_DETECTION).nms_iou
        return self.detector.nms_iou if value is None else value

    def backend(self, cfg: CameraConfig) -> tuple[str | None, str | None]:
        """The camera's ``detection.backend`` / ``precision``; None: the detector's (``--backend``, ``--precision``)."""
        det = cfg.detection or DEFAULT_DETECTION
        return det.backend, det.precision

    def set_configs(self, configs: Iterable[CameraConfig]) -> None:
        """Apply a new set of camera configs: start, restart, reconfigure or stop cameras to match."""
        selected = select(configs, self.options.cameras)
        self.selected = selected
        for cid in list(self.cameras):
            if cid not in selected:
                self._stop_camera(cid, "removed from the configuration")
            elif selected[cid].to_json() != self.cameras[cid].config.to_json():
                self._restart_camera(cid, selected[cid])
        self.leases.want(selected)

    def warm_up(self) -> None:
        """Load every model the selected cameras need and run one inference per (model, imgsz)."""
        wanted = {(self.model_spec(c), self.imgsz(c), *self.backend(c)) for c in self.selected.values()}
        for spec, imgsz, backend, precision in sorted(wanted, key=str):
            t0 = time.perf_counter()
            self.detector.warm_up(spec, imgsz, backend=backend, precision=precision)
            log.info("warmed up %s at imgsz %d in %.1f s", spec or "default model", imgsz, time.perf_counter() - t0)

    # ------------------------------------------------------------------ camera lifecycle

    def _reader(self, cfg: CameraConfig) -> CameraReader:
        assert cfg.stream is not None
        stream = cfg.stream
        return CameraReader(
            cfg.camera_id,
            stream,
            lambda: make_source(cfg.camera_id, stream),
            self.wake,
            realtime=self.options.realtime_files,
            loop=self.options.loop_files,
            backoff_cap_s=self.options.backoff_cap_s,
        )

    def _start_camera(self, cid: str) -> None:
        cfg = self.selected.get(cid)
        if cfg is None or cid in self.cameras:
            return
        try:
            loaded = self.detector.model(self.model_spec(cfg))
        except ModelError as exc:  # e.g. a config naming a model without a person class
            log.error("%s: not started: %s", cid, exc)
            return
        rt = CameraRuntime(cfg, self._reader(cfg))
        rt.model_name, rt.model_version = loaded.resolved.name, loaded.version
        with self._lock:
            self.cameras[cid] = rt
        rt.reader.start()
        self.metrics.lease_held.labels(cid).set(1)
        log.info("%s: started (%s)", cid, rt.reader.source_factory())

    def _restart_camera(self, cid: str, cfg: CameraConfig) -> None:
        """Apply a changed config: a new ``stream`` restarts the reader (counters and ``frame_seq``
        go on); anything else is applied in place from the next frame, without reconnecting. A
        config whose model cannot be loaded is refused: the camera keeps its previous one."""
        rt = self.cameras[cid]
        try:
            loaded = self.detector.model(self.model_spec(cfg))
        except ModelError as exc:
            log.error("%s: configuration change refused, keeping the previous one: %s", cid, exc)
            return
        rt.model_name, rt.model_version = loaded.resolved.name, loaded.version
        rt.gate = None  # lines, zones, region or gating may have changed: the next frame is detected
        if _json(cfg.stream) == _json(rt.config.stream):
            rt.config = cfg
            log.info("%s: configuration changed; applied without reconnecting", cid)
            return
        rt.reader.stop()
        rt.base = _add(rt.base, rt.reader.counters)
        rt.config = cfg
        rt.reader = self._reader(cfg)
        rt.reader.start()
        log.info("%s: configuration changed; restarted", cid)

    def _stop_camera(self, cid: str, reason: str) -> None:
        with self._lock:
            rt = self.cameras.pop(cid, None)
        if rt is None:
            return
        rt.revoked = True
        rt.reader.stop()
        self.metrics.forget(cid)
        if self.preview is not None:
            self.preview.forget(cid)
        log.info("%s: stopped (%s)", cid, reason)

    def revoke(self, cid: str) -> None:
        """Lease lost (called from the lease thread): stop publishing and reading at once."""
        rt = self.cameras.get(cid)
        if rt is not None:
            rt.revoked = True
            rt.reader.stop(join_s=0)

    def _handle_lease_events(self) -> None:
        while True:
            try:
                ev = self.leases.events.get_nowait()
            except Exception:
                return
            if ev.kind == "acquired":
                self._start_camera(ev.camera_id)
            elif ev.kind == "lost":
                self._stop_camera(ev.camera_id, ev.reason or "lease lost")

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self.step()
        self.shutdown()

    def step(self, idle_wait_s: float = 0.05) -> int:
        """One iteration: housekeeping, then detect and publish the newest frames. Returns frames processed."""
        self._housekeeping()
        self.wake.clear()
        batch = self._collect()
        if not batch:
            self.wake.wait(idle_wait_s)
            return 0
        done = 0
        Key = tuple[str, int, float, str | None, str | None]  # model, imgsz, NMS IoU, backend, precision
        groups: dict[Key, list[tuple[CameraRuntime, Frame]]] = defaultdict(list)
        for rt, frame in batch:
            if not self._needs_detection(rt, frame):
                self._publish_detections(rt, frame, None, 0.0)
                done += 1
                continue
            cfg = rt.config
            h, w = frame.image.shape[:2]
            key = (self.model_spec(cfg), self.imgsz(cfg, (w, h)), self.nms_iou(cfg), *self.backend(cfg))
            groups[key].append((rt, frame))
        for (spec, imgsz, nms_iou, backend, precision), items in groups.items():
            for i in range(0, len(items), self.options.max_batch):
                chunk = items[i : i + self.options.max_batch]
                conf = min(rt.detection.confidence for rt, _ in chunk)
                try:
                    images = [f.image for _, f in chunk]
                    results, ms = self.detector.detect(spec, images, imgsz, conf, nms_iou, backend, precision)
                    engine = self.detector.engine(spec, backend, precision)
                except Exception as exc:  # a bad frame or a device error must not stop the other cameras
                    self._inference_failed(chunk, exc)
                    continue
                for (rt, frame), boxes in zip(chunk, results, strict=True):
                    rt.inference_error = None
                    rt.inference_backend, rt.inference_precision = engine.backend, engine.precision
                    if rt.gate is not None:
                        rt.gate.detected()  # this frame is the gate's new reference
                    self._publish_detections(rt, frame, boxes, ms)
                    done += 1
                self.publisher.poll(0)
        return done

    def _inference_failed(self, chunk: list[tuple[CameraRuntime, Frame]], exc: Exception) -> None:
        error = f"inference failed: {type(exc).__name__}: {str(exc)[:200]}"
        now = time.monotonic()
        if now - self._last_inference_log > 60:  # a persistent failure logs once a minute, not per frame
            log.exception("%s (cameras %s)", error, ", ".join(rt.camera_id for rt, _ in chunk))
            self._last_inference_log = now
        for rt, _ in chunk:
            rt.inference_error = error

    def motion_gating(self, cfg: CameraConfig) -> bool:
        value = (cfg.detection or DEFAULT_DETECTION).motion_gating
        return self.options.motion_gating if value is None else value

    def _needs_detection(self, rt: CameraRuntime, frame: Frame) -> bool:
        """The motion gate's answer for ``frame`` (True without gating). The gate is reset, so the
        frame is detected, when the camera (re)connects or its file starts over (a new
        ``connected_since``) and, being remade, after a config change."""
        cfg = rt.config
        if not self.motion_gating(cfg):
            rt.gate = None
            return True
        h, w = frame.image.shape[:2]
        if rt.gate is None or rt.gate.frame_size != (w, h):
            threshold = (cfg.detection or DEFAULT_DETECTION).motion_threshold
            params = self.options.motion
            if threshold is not None:
                params = replace(params, min_fraction=threshold)
            rt.gate = MotionGate(params, roi_for_camera(cfg, (w, h), params.roi_margin), frame_size=(w, h))
        epoch = (id(rt.reader), rt.reader.connected_since)
        return rt.gate.check(frame.image, frame.captured_at, epoch, detected=False)

    def _collect(self) -> list[tuple[CameraRuntime, Frame]]:
        with self._lock:
            cams = list(self.cameras.values())
        out = []
        for rt in cams:
            if rt.revoked:
                continue
            frame = rt.reader.slot.take()
            if frame is not None:
                out.append((rt, frame))
        return out

    def _publish_detections(
        self, rt: CameraRuntime, frame: Frame, boxes: np.ndarray | None, inference_ms: float
    ) -> None:
        """Publish ``frame``'s detections; ``boxes`` None: a gated frame, repeating the last ones."""
        gated = boxes is None
        if boxes is None:
            rows = rt.last_rows
        else:
            det = rt.detection
            boxes = boxes[boxes[:, 4] >= det.confidence] if len(boxes) else boxes
            rows = rt.last_rows = box_rows(filter_boxes(boxes, det.region))
        h, w = frame.image.shape[:2]
        now = time.time()
        record = FrameDetections(
            camera_id=rt.camera_id,
            frame_seq=rt.seq.next(frame.captured_at),
            captured_at=frame.captured_at,
            frame_width=int(w),
            frame_height=int(h),
            boxes=rows,
            model_name=rt.model_name or "unknown",
            model_version=rt.model_version or "unknown",
            inference_ms=round(inference_ms, 2),
            published_at=now,
            gated=gated,
        )
        # The lease check is the last thing before the message leaves: a lost lease stops it here.
        if rt.revoked or not self.leases.valid(rt.camera_id):
            return
        latency_ms = (now - frame.captured_at) * 1000.0
        self.metrics.frames_processed.labels(rt.camera_id).inc()
        if gated:
            rt.window.add_gated(latency_ms)
            self.metrics.frames_gated.labels(rt.camera_id).inc()
        else:
            rt.window.add(inference_ms, latency_ms)
            self.metrics.inference_seconds.labels(rt.camera_id).observe(inference_ms / 1000.0)
        self.metrics.latency_seconds.labels(rt.camera_id).observe(latency_ms / 1000.0)
        if self.publisher.publish(record):
            self.published += 1
        if self.snapshots is not None:  # frames are BGR (OpenCV); the picture is RGB
            self.snapshots.offer(rt.camera_id, lambda: frame.image[:, :, ::-1], frame.captured_at)
        if self.preview is not None:
            self.preview.observe(rt.config, frame.image, record)

    # ------------------------------------------------------------------ housekeeping and stats

    def _housekeeping(self) -> None:
        self.publisher.poll(0)
        self._handle_lease_events()
        if self.config_source is not None:
            configs, changed = self.config_source()
            if changed:
                self.set_configs(configs)
        now = time.monotonic()
        with self._lock:
            cams = list(self.cameras.values())
        for rt in cams:
            rt.reader.check(now)
        if now >= self._next_tick:
            self._next_tick = now + self.options.stats_interval_s
            totals = self.publisher.spool_totals()
            self.metrics.set_spool_bytes(totals.memory_bytes, totals.disk_bytes)
            for rt in cams:
                if not rt.revoked:
                    self._publish_stats(rt, now)

    def stats_for(self, rt: CameraRuntime, now_mono: float) -> StreamStats:
        """The camera's StreamStats for the window ending now, and start a new window."""
        reader = rt.reader
        window_s = max(now_mono - rt.window_started, 1e-3)
        totals = rt.totals()
        delta = _sub(totals, rt.last_tick)
        samples = rt.window
        connected_s = 0.0
        if reader.connected and reader.connected_since is not None:
            connected_s = min(window_s, now_mono - reader.connected_since)
        lost_now = self.publisher.stats.lost_by_key.get(rt.camera_id, 0)
        failing = self.publisher.failing()
        now = time.time()
        spool = self.publisher.spool_stats(rt.camera_id)
        spool_age = None if spool.oldest_ts is None else round(max(0.0, now - spool.oldest_ts), 3)
        publish_error = self.publisher.stats.last_error
        if spool.waiting:
            spooled = f"{spool.waiting} messages spooled (oldest {spool_age or 0:.0f} s)"
            publish_error = f"{publish_error}; {spooled}" if publish_error else spooled
        status, reason = stream_status(
            StatusInputs(
                connected=reader.connected,
                retries_exhausted=reader.retries_exhausted,
                target_fps=reader.stream.target_fps,
                source_fps=reader.nominal_fps,
                processed_fps=samples.processed / connected_s if connected_s > 0 else 0.0,
                connected_s=connected_s,
                wanted_frames=delta.wanted_frames,
                dropped_frames=delta.dropped_frames,
                publish_failing=failing,
                publish_error=publish_error,
            ),
            rt.config.thresholds or DEFAULT_THRESHOLDS,
        )
        if not reader.connected:
            last_error = reader.last_error or reason
        else:
            last_error = "; ".join(e for e in (rt.inference_error, reason) if e) or None
        size = reader.frame_size
        stats = StreamStats(
            camera_id=rt.camera_id,
            grabber_id=self.options.grabber_id,
            at=now,
            status=status,
            window_s=round(window_s, 3),
            input_fps=round(delta.input_frames / window_s, 2),
            processed_fps=round(samples.processed / window_s, 2),
            dropped_frames=totals.dropped_frames,
            decode_errors=totals.decode_errors,
            reconnects=totals.reconnects,
            inference_ms_p50=_r(percentile(samples.inference_ms, 50)),
            inference_ms_p95=_r(percentile(samples.inference_ms, 95)),
            latency_ms_p50=_r(percentile(samples.latency_ms, 50)),
            latency_ms_p95=_r(percentile(samples.latency_ms, 95)),
            frame_width=size[0] if size else None,
            frame_height=size[1] if size else None,
            model_name=rt.model_name,
            model_version=rt.model_version,
            last_error=last_error[:500] if last_error else None,
            spooled_messages=spool.waiting,
            spool_oldest_age_s=spool_age,
            spool_dropped=spool.dropped,
            inference_backend=rt.inference_backend,
            inference_precision=rt.inference_precision,
            gated_ratio=round(samples.gated / samples.processed, 3)
            if samples.processed and self.motion_gating(rt.config)
            else None,
        )
        m, cid = self.metrics, rt.camera_id
        m.set_spool(cid, spool.waiting, spool_age, max(0, spool.dropped - rt.spool_dropped_seen))
        rt.spool_dropped_seen = spool.dropped
        m.frames_input.labels(cid).inc(delta.input_frames)
        m.frames_dropped.labels(cid).inc(delta.dropped_frames)
        m.decode_errors.labels(cid).inc(delta.decode_errors)
        m.reconnects.labels(cid).inc(delta.reconnects)
        m.publish_dropped.labels(cid).inc(max(0, lost_now - rt.lost_seen))
        m.input_fps.labels(cid).set(stats.input_fps)
        m.processed_fps.labels(cid).set(stats.processed_fps)
        m.gated_ratio.labels(cid).set(stats.gated_ratio or 0.0)
        m.set_status(cid, status)
        if rt.inference_backend is not None:
            m.set_backend(cid, rt.inference_backend, rt.inference_precision or "fp32")
        if status != rt.status:
            log.info("%s: status %s -> %s%s", cid, rt.status, status, f" ({last_error})" if last_error else "")
        rt.status = status
        rt.last_tick = totals
        rt.lost_seen = lost_now
        rt.window = WindowSamples()
        rt.window_started = now_mono
        return stats

    def _publish_stats(self, rt: CameraRuntime, now_mono: float) -> None:
        stats = self.stats_for(rt, now_mono)
        if self.leases.valid(rt.camera_id):
            self.publisher.publish(stats)

    def shutdown(self, flush_s: float = 10.0) -> None:
        with self._lock:
            cids = list(self.cameras)
        for cid in cids:
            self._stop_camera(cid, "shutting down")
        remaining = self.publisher.close(flush_s)  # what is left stays in the spool for the next start
        if remaining:
            log.warning("%d messages were not delivered before shutdown", remaining)
        self.leases.stop(release=True)


def _json(record: StreamSettings | None) -> bytes | None:
    return None if record is None else record.to_json()


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
