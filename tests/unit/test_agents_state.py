"""The counting agent's pure glue: step, outbox bookkeeping, window outputs, occupancy sampling,
changelog encoding, record conversion, dead letters, per-camera tracking params."""

from __future__ import annotations

import asyncio
import doctest
import importlib

import pytest

from agents import state as st
from agents.deadletter import MAX_VALUE_CHARS, dead_letter
from core.camera import Frame, Scene
from core.windows import Windowing
from models.base import parse
from models.records import (
    CameraConfig,
    CrossingEvent,
    DeadLetter,
    OccupancySample,
    TrackSummary,
    WindowCount,
    Zone,
    ZoneEvent,
)

T0 = 1_700_000_040.0  # a minute boundary
W = Windowing(size_s=60, grace_s=30, rolling_s=900)
SCENE = Scene.from_config(
    lines=[("door", (320, 0), (320, 360))], zones=[("left", [(0, 0), (320, 0), (320, 360), (0, 360)])]
)
ZONES = {"left": Zone(zone_id="left", polygon=[[0, 0], [320, 0], [320, 360], [0, 360]], capacity=4, area_sqm=8.0)}


def frames(people, duration_s, t0=T0, fps=10.0, seq0=1, camera_id="cam-1"):
    """People ``(x0, vx, start_s)`` walking horizontally (like the integration helpers)."""
    out = []
    for k in range(int(round(duration_s * fps))):
        t = k / fps
        boxes = []
        for i, (x0, vx, start) in enumerate(people):
            x = x0 + vx * (t - start)
            if t >= start and 20 <= x <= 620:
                y = 120 + 60 * (i % 3)
                boxes.append([x - 15.0, float(y), x + 15.0, float(y + 100), 0.9])
        out.append(Frame(camera_id, seq0 + k, t0 + t, boxes))
    return out


def run(rt, fs, now=T0 + 100):
    out = []
    for f in fs:
        out += st.step(rt, f, SCENE, now, ZONES, W)
    return out


class Done(asyncio.Future):
    """A resolved delivery future without an event loop running."""

    def __init__(self, exc=None):
        super().__init__(loop=asyncio.new_event_loop())
        if exc is None:
            self.set_result("metadata")
        else:
            self.set_exception(exc)


@pytest.mark.parametrize("name", ["agents.state", "agents.deadletter"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_step_emits_valid_records_and_queues_them_in_the_outbox():
    rt = st.CameraRuntime("cam-1", partition=2)
    out = run(rt, frames([(100, 100, 0), (560, -100, 1)], 8))
    kinds = [topic for topic, _ in out]
    assert kinds.count(st.CROSSINGS) == 2 and st.ZONE_EVENTS in kinds and st.OCCUPANCY in kinds
    assert [e.topic for e in rt.outbox] == kinds and all(e.future is None for e in rt.outbox)
    for topic, rec in out:  # every output parses as its wire record
        cls = {
            st.CROSSINGS: CrossingEvent,
            st.ZONE_EVENTS: ZoneEvent,
            st.OCCUPANCY: OccupancySample,
            st.TRACKS: TrackSummary,
        }[topic]
        assert parse(cls, rec.to_json()) == rec
    crossings = [rec for topic, rec in out if topic == st.CROSSINGS]
    assert sorted(c.direction for c in crossings) == ["in", "out"]
    assert all(c.processed_at == T0 + 100 for c in crossings)
    assert rt.dirty and rt.state.last_frame_seq == 80


def test_a_replayed_frame_changes_nothing():
    rt = st.CameraRuntime("cam-1", partition=0)
    fs = frames([(100, 100, 0)], 5)
    run(rt, fs)
    before = (rt.state, rt.windows, len(rt.outbox))
    rt.dirty = False
    assert run(rt, fs[10:30]) == []
    assert (rt.state, rt.windows, len(rt.outbox)) == before and not rt.dirty


def test_outbox_unsent_is_a_suffix_and_delivered_entries_are_pruned():
    rt = st.CameraRuntime("cam-1", partition=0)
    run(rt, frames([(100, 100, 0), (560, -100, 1)], 8))
    n = len(rt.outbox)
    assert st.unsent(rt) == rt.outbox
    rt.outbox[0].future = Done()
    rt.outbox[1].future = Done(RuntimeError("broker down"))  # failed: must stay
    for e in rt.outbox[2:-1]:
        e.future = asyncio.Future(loop=asyncio.new_event_loop())  # in flight: must stay
    assert st.unsent(rt) == rt.outbox[-1:]
    assert st.prune_delivered(rt) == n - 1
    assert rt.outbox[0].future.exception() is not None


def test_window_outputs_full_counts_final_once_closed_and_cleared():
    rt = st.CameraRuntime("cam-1", partition=0)
    # crossings at ~2.2 s and ~32.2 s (window T0) and ~60.2 s (window T0 + 60)
    fs = frames([(100, 100, 0), (100, 100, 30), (100, 100, 58)], 95)
    run(rt, fs[:400])
    first = st.window_outputs(rt, now=1.0, windowing=W)
    assert [(r.window_start, r.direction, r.count, r.final) for _, r in first] == [(T0, "out", 2, False)]
    assert st.window_outputs(rt, now=2.0, windowing=W) == []  # nothing changed since
    run(rt, fs[400:])
    later = st.window_outputs(rt, now=3.0, windowing=W)
    assert [(r.window_start, r.count, r.final) for _, r in later] == [(T0, 2, True), (T0 + 60, 1, False)]
    assert all(isinstance(r, WindowCount) and r.window_end == r.window_start + 60 for _, r in later)
    assert [e.topic for e in rt.outbox].count(st.WINDOW_COUNTS) == 3


def test_too_late_crossings_are_counted_not_windowed():
    rt = st.CameraRuntime("cam-1", partition=0)
    run(rt, frames([], 1, t0=T0 + 200))  # the camera's event time is already far ahead
    late = frames([(100, 100, 0)], 5, seq0=100)  # newer seqs, but captured 200 s earlier
    out = run(rt, late)
    assert [t for t, _ in out].count(st.CROSSINGS) == 1
    assert rt.too_late == 1 and st.window_outputs(rt, now=1.0, windowing=W) == []


def test_occupancy_sampled_on_change_and_keepalive_with_capacity_and_trend():
    rt = st.CameraRuntime("cam-1", partition=0)
    out = run(rt, frames([(200, 0.0, 0)], 12))  # one person standing in the zone for 12 s
    samples = [rec for topic, rec in out if topic == st.OCCUPANCY]
    # 0 at the first frame (tentative track), 1 once confirmed, then keep-alives every 5 s
    assert [s.count for s in samples][:2] == [0, 1]
    times = [s.at for s in samples[1:]]
    assert all(b - a >= st.OCCUPANCY_KEEPALIVE_S for a, b in zip(times, times[1:], strict=False))
    assert len(samples) <= 2 + 12 / st.OCCUPANCY_KEEPALIVE_S
    one = samples[1]
    assert (one.capacity, one.capacity_pct, one.density_per_sqm, one.trend) == (4, 25.0, 0.125, "increasing")
    # next minute: the reference is the last count of the previous window -> stable
    out = run(rt, frames([(200, 0.0, 0)], 6, t0=T0 + 60, seq0=1000))
    assert [rec.trend for topic, rec in out if topic == st.OCCUPANCY][-1] == "stable"
    assert rt.zones["left"].previous == 1


def test_encode_decode_round_trip_and_rejects_garbage():
    rt = st.CameraRuntime("cam-1", partition=3)
    run(rt, frames([(100, 100, 0), (200, 0.0, 0)], 8))
    st.window_outputs(rt, now=1.0, windowing=W)
    back = st.decode(st.encode(rt))
    assert (back.camera_id, back.partition) == ("cam-1", 3)
    assert back.state == rt.state and back.windows == rt.windows
    assert {k: v.to_list() for k, v in back.zones.items()} == {k: v.to_list() for k, v in rt.zones.items()}
    assert [(e.topic, e.value) for e in back.outbox] == [(e.topic, e.value) for e in rt.outbox]
    assert all(e.future is None for e in back.outbox) and not back.dirty
    # the decoded runtime continues exactly like the original
    more = frames([(100, 100, 0), (200, 0.0, 0)], 12)[80:]
    assert [r for _, r in run(back, more) if not isinstance(r, CrossingEvent | ZoneEvent)] == [
        r for _, r in run(rt, more) if not isinstance(r, CrossingEvent | ZoneEvent)
    ]
    with pytest.raises(ValueError, match="magic"):
        st.decode(b"nope" + st.encode(rt)[4:])


def test_a_camera_with_its_own_tracking_params_restarts_its_tracks_once():
    rt = st.CameraRuntime("cam-1", partition=0)
    fs = frames([(100, 0.0, 0)], 6)  # one person standing in the left zone
    run(rt, fs[:30])
    assert rt.state.params_digest == st.camera_params(None).digest
    cfg = parse(CameraConfig, {"camera_id": "cam-1", "tracking": {"min_hits": 3, "hysteresis_frac": 0.05}})
    params = st.camera_params(cfg)
    out = []
    for f in fs[30:]:
        out += st.step(rt, f, SCENE, T0 + 100, ZONES, W, params)
    events = [(r.kind, r.track_id) for topic, r in out if topic == st.ZONE_EVENTS]
    assert events == [("exit", 1), ("enter", 2)]  # the old track leaves, a new one (new id) enters
    assert all(parse(ZoneEvent, r.to_json()) == r for topic, r in out if topic == st.ZONE_EVENTS)
    assert st.decode(st.encode(rt)).state.params_digest == params.digest


def test_dead_letter_decodes_and_truncates():
    dl = dead_letter("t", 1, 2, b"\xffk", b"x" * (MAX_VALUE_CHARS + 10), "bad", at=5.0)
    assert isinstance(dl, DeadLetter) and len(dl.value) == MAX_VALUE_CHARS and dl.key == "\ufffdk"
    assert parse(DeadLetter, dl.to_json()) == dl
    assert dead_letter("t", 0, 0, None, None, "tombstone", at=1.0).value == ""
