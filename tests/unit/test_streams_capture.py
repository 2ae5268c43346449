"""The reader thread: newest-frame slot, drop counting, reconnects, file pacing, stall watchdog.
Scripted sources stand in for OpenCV so these run in a second or two."""

from __future__ import annotations

import threading
import time

import numpy as np

from models.records import StreamSettings
from streams.capture import CameraReader, Frame, FrameSlot
from streams.sources import Source, SourceError

IMAGE = np.zeros((4, 6, 3), dtype=np.uint8)


class ScriptedSource(Source):
    """``fail_opens`` opens fail first (shared across instances via ``script``), then each
    connection delivers ``frames_per_conn`` frames at ``fps`` and ends (or never ends: None)."""

    def __init__(self, script: dict, live: bool = True) -> None:
        self.camera_id = "cam"
        self.live = live
        self.script = script
        self.n = 0

    def open(self) -> None:
        self.script["opens"] = self.script.get("opens", 0) + 1
        if self.script.get("fail_opens", 0) > 0:
            self.script["fail_opens"] -= 1
            raise SourceError("cam: could not open rtsp://h/x within 1 s")

    def grab(self) -> bool:
        hang = self.script.get("hang")
        if hang is not None and self.n >= self.script.get("hang_after", 0):
            hang.wait()
            return False
        per = self.script.get("frames_per_conn")
        if per is not None and self.n >= per:
            return False
        fps = self.script.get("fps")
        if fps and self.live:
            time.sleep(1 / fps)
        self.n += 1
        return True

    def retrieve(self) -> np.ndarray | None:
        bad = self.script.get("bad_every")
        if bad and self.n % bad == 0:
            return None
        return IMAGE

    def close(self) -> None:
        pass

    @property
    def nominal_fps(self) -> float | None:
        return self.script.get("nominal_fps")


def stream(**kw) -> StreamSettings:
    base = {"url": "rtsp://h/x", "timeout_s": 1.0, "retry_count": 2, "retry_interval_s": 0.05, "target_fps": 10.0}
    return StreamSettings(**{**base, **kw})


def reader(script: dict, live: bool = True, **kw) -> CameraReader:
    settings = stream(**{k: v for k, v in kw.items() if k in StreamSettings._options.fields})
    opts = {k: v for k, v in kw.items() if k not in StreamSettings._options.fields}
    return CameraReader("cam", settings, lambda: ScriptedSource(script, live), backoff_cap_s=0.2, **opts)


def wait_for(pred, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_slot_keeps_only_the_newest_frame() -> None:
    slot = FrameSlot()
    assert slot.put(Frame(IMAGE, 1.0, 1)) is False
    assert slot.put(Frame(IMAGE, 2.0, 2)) is True  # replaced an untaken frame: a drop
    assert slot.take().index == 2
    assert slot.take() is None
    assert slot.put(Frame(IMAGE, 3.0, 3)) is False


def test_unconsumed_frames_are_dropped_not_queued() -> None:
    r = reader({"fps": 200}, target_fps=20).start()
    time.sleep(1.0)
    r.stop()
    c = r.counters
    assert c.input_frames > 100
    assert 10 <= c.wanted_frames <= 25  # sampled to ~20 fps
    assert c.dropped_frames == c.wanted_frames - 1  # nobody took any: all but the newest dropped


def test_a_consumer_that_keeps_up_drops_nothing() -> None:
    r = reader({"fps": 100}, target_fps=10).start()
    got = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        f = r.slot.take()
        if f is not None:
            got.append(f)
        time.sleep(0.005)
    r.stop()
    assert len(got) >= 8
    assert r.counters.dropped_frames == 0
    assert all(b.captured_at > a.captured_at for a, b in zip(got, got[1:], strict=False))


def test_open_failures_back_off_then_offline_then_recover() -> None:
    script = {"fail_opens": 3, "fps": 100}
    r = reader(script, retry_count=2).start()
    assert wait_for(lambda: r.backoff.failures >= 2)
    assert r.retries_exhausted and not r.connected and "could not open" in r.last_error
    assert wait_for(lambda: r.connected)
    assert r.backoff.failures == 0 and not r.retries_exhausted
    assert r.counters.reconnects == 0  # never connected before: not a reconnect
    r.stop()


def test_a_drop_reconnects_and_counts() -> None:
    script = {"frames_per_conn": 20, "fps": 200}
    r = reader(script).start()
    assert wait_for(lambda: r.counters.reconnects >= 2)
    assert r.counters.failures >= 2  # each drop is a failure, reset by the next first frame
    r.stop()
    assert script["opens"] >= 3


def test_file_end_loops_without_counting_failures() -> None:
    script = {"frames_per_conn": 10}
    r = reader(script, live=False, realtime=False).start()
    assert wait_for(lambda: script.get("opens", 0) >= 3)
    r.stop()
    assert r.counters.failures == 0 and r.counters.reconnects == 0


def test_file_played_once_finishes_offline() -> None:
    script = {"frames_per_conn": 10}
    r = reader(script, live=False, realtime=False, loop=False).start()
    assert wait_for(lambda: r.finished)
    assert r.retries_exhausted and r.last_error == "end of file"
    assert r.counters.input_frames == 10


def test_files_are_paced_at_their_native_fps_unless_fast() -> None:
    paced = reader({"nominal_fps": 40.0}, live=False, realtime=True).start()
    fast = reader({"nominal_fps": 40.0}, live=False, realtime=False).start()
    time.sleep(0.5)
    paced.stop()
    fast.stop()
    assert 15 <= paced.counters.input_frames <= 25
    assert fast.counters.input_frames > 200


def test_decode_errors_are_counted_and_skipped() -> None:
    r = reader({"fps": 200, "bad_every": 2}, target_fps=50).start()
    time.sleep(0.5)
    r.stop()
    assert r.counters.decode_errors > 0 and r.counters.wanted_frames > 0


def test_watchdog_abandons_a_hung_read_and_reconnects() -> None:
    hang = threading.Event()
    script = {"hang": hang, "hang_after": 5, "fps": 100}
    r = reader(script, timeout_s=0.1).start()
    assert wait_for(lambda: r.connected)
    time.sleep(0.2)  # now stuck inside grab()
    assert r.connected  # the hung thread cannot say so itself...
    r.check(time.monotonic() + 60)  # ...the watchdog does
    assert not r.connected and "stalled" in r.last_error
    script["hang"] = None  # the next connection works
    assert wait_for(lambda: r.connected)
    assert r.counters.reconnects == 1
    hang.set()  # let the abandoned thread finish; it must not touch the state
    time.sleep(0.05)
    assert r.connected
    r.stop()
