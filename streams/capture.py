"""Latency-bounded capture: one reader thread per camera, a one-slot buffer, reconnects.

The reader decodes every frame the source delivers (a live stream must be drained), keeps the ones
the fps sampler wants and puts each into a one-slot buffer, replacing the previous one if inference
has not taken it yet -- that frame is counted as dropped. So the detector always gets the newest
frame, and there is never a backlog.

Drops and stalls: a failed open, a failed read, or no frame within ``timeout_s`` (FFmpeg's read
timeout) ends the connection; the reader waits the :mod:`streams.backoff` delay and reconnects.
If a read hangs past its timeout anyway (a backend that ignores it), :meth:`CameraReader.check`
abandons that thread and starts a fresh one, so a stall always surfaces as a drop.

Files are paced at their native fps by default so a file behaves like a camera; ``realtime=False``
reads as fast as decoding allows (benchmarks). At the end of a file the reader starts over
(``loop=True``) or finishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.records import StreamSettings
from streams.backoff import DEFAULT_CAP_S, Backoff
from streams.sampling import FpsSampler
from streams.sources import Source, SourceError

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_DECODE_ERRORS = 25


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    captured_at: float  # epoch seconds, when the frame came off the stream
    index: int  # frames decoded by this reader so far


class FrameSlot:
    """A one-frame buffer: ``put`` replaces, ``take`` empties."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None

    def put(self, frame: Frame) -> bool:
        """Store ``frame``; True when it replaced a frame nobody took (a drop)."""
        with self._lock:
            replaced = self._frame is not None
            self._frame = frame
            return replaced

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> None:
        self.take()


@dataclass
class CaptureCounters:
    """Totals since the reader started (each written by the reader thread only)."""

    input_frames: int = 0
    wanted_frames: int = 0
    dropped_frames: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    failures: int = 0


class CameraReader:
    """Reads one camera in a dedicated thread into a :class:`FrameSlot`."""

    def __init__(
        self,
        camera_id: str,
        stream: StreamSettings,
        source_factory: Callable[[], Source],
        wake: threading.Event | None = None,
        *,
        realtime: bool = True,
        loop: bool = True,
        backoff_cap_s: float = DEFAULT_CAP_S,
    ) -> None:
        self.camera_id = camera_id
        self.stream = stream
        self.source_factory = source_factory
        self.wake = wake or threading.Event()
        self.realtime = realtime
        self.loop = loop
        self.slot = FrameSlot()
        self.counters = CaptureCounters()
        self.backoff = Backoff(stream.retry_interval_s, stream.retry_count, cap_s=backoff_cap_s)
        self.sampler = FpsSampler(stream.target_fps)
        self.connected = False
        self.finished = False  # a file ended and loop is off
        self.ever_connected = False
        self.connected_since: float | None = None  # monotonic
        self.last_frame_mono: float | None = None
        self.last_error: str | None = None
        self.nominal_fps: float | None = None
        self.frame_size: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._generation = 0
        self._heartbeat = time.monotonic()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> CameraReader:
        self._spawn()
        return self

    def stop(self, join_s: float = 2.0) -> None:
        self._stop.set()
        self._generation += 1
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(join_s)
        self.connected = False
        self.slot.clear()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def retries_exhausted(self) -> bool:
        return self.finished or (not self.connected and self.backoff.exhausted)

    def check(self, now: float | None = None) -> None:
        """Watchdog, called periodically from outside: abandon a reader stuck in a blocking call."""
        now = time.monotonic() if now is None else now
        hung_after = 2 * self.stream.timeout_s + 5.0
        if self._thread is None or self._stop.is_set() or now - self._heartbeat < hung_after:
            return
        log.warning(
            "%s: reader blocked for %.0f s; abandoning it and reconnecting", self.camera_id, now - self._heartbeat
        )
        self._mark_lost(f"stream stalled: no progress for {now - self._heartbeat:.0f} s")
        self._spawn()

    def _spawn(self) -> None:
        self._generation += 1
        self._heartbeat = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(self._generation,), daemon=True, name=f"reader-{self.camera_id}"
        )
        self._thread.start()

    # ------------------------------------------------------------------ the reader thread

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _run(self, generation: int) -> None:
        while self._current(generation):
            source = self.source_factory()
            self._heartbeat = time.monotonic()
            try:
                source.open()
            except SourceError as exc:
                self._heartbeat = time.monotonic()
                if self._current(generation):
                    self._failed(str(exc), generation)
                continue
            except Exception as exc:  # never let a backend error kill the reader
                if self._current(generation):
                    self._failed(f"{self.camera_id}: open failed: {type(exc).__name__}", generation)
                continue
            try:
                reason = self._read(source, generation)
            except Exception as exc:  # a backend error mid-stream is a drop, not the end of the reader
                reason = f"{self.camera_id}: read failed: {type(exc).__name__}"
            finally:
                source.close()
            if not self._current(generation):
                return
            if reason == "eof":
                if self.loop:
                    continue
                self._mark_lost("end of file")
                self.finished = True
                return
            self._failed(reason, generation)

    def _read(self, source: Source, generation: int) -> str:
        """Read until the stream ends or fails; returns why ("eof" for the end of a file)."""
        self.nominal_fps = source.nominal_fps
        self.frame_size = source.frame_size
        pace = self.nominal_fps if (self.realtime and not source.live) else None
        started = time.monotonic()
        n = 0
        bad = 0
        got_first = False
        while self._current(generation):
            self._heartbeat = time.monotonic()
            ok = source.grab()
            now_mono = time.monotonic()
            self._heartbeat = now_mono
            if not self._current(generation):
                return "stopped"
            if not ok:
                if not source.live:
                    return "eof"
                if not got_first:
                    return f"{self.camera_id}: connected but no frame within {self.stream.timeout_s:g} s"
                return f"{self.camera_id}: stream ended or no frame within {self.stream.timeout_s:g} s"
            if not got_first:
                got_first = True
                self._connected(now_mono)
            n += 1
            self.counters.input_frames += 1
            self.last_frame_mono = now_mono
            if pace:
                due = started + n / pace
                if due - now_mono > 0:
                    self._stop.wait(due - now_mono)
                elif now_mono - due > 1.0:  # fell far behind (slow disk/CPU): do not burst to catch up
                    started, n = now_mono, 0
            captured_at = time.time()
            if not self.sampler.want(captured_at):
                continue
            image = source.retrieve()
            if image is None:
                self.counters.decode_errors += 1
                bad += 1
                if bad >= MAX_CONSECUTIVE_DECODE_ERRORS:
                    return f"{self.camera_id}: {bad} consecutive frames failed to decode"
                continue
            bad = 0
            if self.frame_size is None:
                self.frame_size = (image.shape[1], image.shape[0])
            self.counters.wanted_frames += 1
            if self.slot.put(Frame(image, captured_at, self.counters.input_frames)):
                self.counters.dropped_frames += 1
            self.wake.set()
        return "stopped"

    def _connected(self, now_mono: float) -> None:
        if self.ever_connected and not self.connected:
            self.counters.reconnects += 1
        if not self.connected:
            log.info("%s: stream connected", self.camera_id)
        self.ever_connected = True
        self.connected = True
        self.connected_since = now_mono
        self.last_error = None
        self.backoff.succeeded()

    def _mark_lost(self, reason: str) -> None:
        if self.connected:
            log.warning("%s: stream lost: %s", self.camera_id, reason)
        self.connected = False
        self.connected_since = None
        self.last_error = reason
        self.slot.clear()
        self.sampler.reset()

    def _failed(self, reason: str, generation: int) -> None:
        self._mark_lost(reason)
        self.counters.failures += 1
        delay = self.backoff.failed()
        log.info(
            "%s: %s; retry %d in %.1f s%s",
            self.camera_id,
            reason,
            self.backoff.failures,
            delay,
            " (offline)" if self.backoff.exhausted else "",
        )
        deadline = time.monotonic() + delay
        while self._current(generation) and time.monotonic() < deadline:
            self._heartbeat = time.monotonic()
            self._stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
