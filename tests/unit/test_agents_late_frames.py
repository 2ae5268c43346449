"""Frames that reach the worker minutes late (a grabber's spool after a broker outage) are counted
as if they had come on time: lateness is judged in each camera's own event time, never against the
wall clock. Plus: outputs whose send failed are sent again."""

from __future__ import annotations

from agents import state as st
from core.camera import Scene
from core.windows import Windowing
from streams.simulator import Simulation

W = Windowing(size_s=60, grace_s=30, rolling_s=900)


def run(frames, configs, arrival_delay_s=lambda f: 0.1):
    """Fold ``frames`` (in the order given) into per-camera runtimes, like the counting agent;
    returns crossing ids with their capture times, every window emission, and the runtimes."""
    scenes = {c.camera_id: (Scene.from_config(c.lines, c.zones), st.camera_params(c)) for c in configs}
    rts: dict[str, st.CameraRuntime] = {}
    crossings: dict[str, float] = {}
    windows: list = []
    for f in frames:
        rt = rts.setdefault(f.camera_id, st.CameraRuntime(f.camera_id, 0))
        scene, params = scenes[f.camera_id]
        now = f.captured_at + arrival_delay_s(f)
        for topic, rec in st.step(rt, f, scene, now, windowing=W, params=params):
            if topic == st.CROSSINGS:
                crossings[rec.event_id] = rec.occurred_at
        windows += [rec for _, rec in st.window_outputs(rt, now, W)]
    return crossings, windows, rts


def final_counts(windows) -> dict:
    out = {}
    for w in windows:  # what the upserting sink keeps: the newest emission of a key
        out[(w.camera_id, w.line_id, w.direction, w.window_start)] = (w.count, w.final)
    return out


def test_frames_ten_minutes_late_give_the_same_crossings_and_windows():
    sim = Simulation(cameras=3, fps=10, seed=5, start=1_790_000_000.0)
    configs, frames = sim.configs(), list(sim.frames(240))
    on_time, win_on_time, _ = run(frames, configs)
    # a 5-minute outage in the middle: those frames arrive 5-10 minutes after capture, in order
    outage = (frames[0].captured_at + 60, frames[0].captured_at + 180)

    def delay(f):
        return 0.1 if not outage[0] <= f.captured_at < outage[1] else outage[1] + 300 - f.captured_at

    late, win_late, rts = run(frames, configs, delay)
    assert len(on_time) > 20
    assert late == on_time  # same ids, each with its capture time
    assert final_counts(win_late) == final_counts(win_on_time)
    assert all(rt.too_late == 0 for rt in rts.values())


def test_cameras_delivered_one_after_another_count_the_same():
    """Per camera in order is all that matters: a spool delivers one grabber's cameras interleaved
    differently from live traffic, or one camera's backlog long after the others' live frames."""
    sim = Simulation(cameras=3, fps=10, seed=6, start=1_790_000_000.0)
    configs, frames = sim.configs(), list(sim.frames(150))
    reordered = sorted(frames, key=lambda f: (f.camera_id != "sim-0002", f.camera_id, f.captured_at))
    a, wa, _ = run(frames, configs)
    b, wb, _ = run(reordered, configs)
    assert a == b and final_counts(wa) == final_counts(wb)


def test_a_silent_camera_keeps_its_window_open_until_its_frames_arrive():
    """While a camera's frames wait in a spool its current window is not final, whatever the wall
    clock says; it closes, with the full count, when frames 30 s (the grace) past its end arrive."""
    sim = Simulation(cameras=1, fps=10, seed=7, start=1_790_000_000.0)
    configs, frames = sim.configs(), list(sim.frames(300))
    cut = next(i for i, f in enumerate(frames) if f.captured_at >= frames[0].captured_at + 100)
    _, before, rts = run(frames[:cut], configs)
    open_now = {(w.line_id, w.direction, w.window_start): w for w in before}
    last_window = max(k[2] for k in open_now)
    assert not any(w.final for k, w in open_now.items() if k[2] == last_window)
    rt = next(iter(rts.values()))
    # ten minutes later (wall clock) nothing changed: no frame, no window closed
    assert st.window_outputs(rt, frames[cut].captured_at + 600, W) == []
    _, all_windows, _ = run(frames, configs)
    assert any(w.final and w.window_start == last_window for w in all_windows)


class Fut:
    def __init__(self, exc=None, done=True):
        self._exc, self._done = exc, done

    def done(self):
        return self._done

    def cancelled(self):
        return False

    def exception(self):
        return self._exc


def test_failed_sends_are_found_for_sending_again():
    rt = st.CameraRuntime("cam-1", 0)
    ok, bad, pending, unsent = (st.OutboxEntry("crossings", b"{}") for _ in range(4))
    ok.future, bad.future, pending.future = Fut(), Fut(TimeoutError()), Fut(done=False)
    rt.outbox = [ok, bad, pending, unsent]
    assert st.failed(rt) == [bad]
    assert bad.failed and not ok.failed and not pending.failed and not unsent.failed
    assert st.prune_delivered(rt) == 3  # the failed one stays until it is delivered
