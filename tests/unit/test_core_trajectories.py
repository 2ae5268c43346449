"""Tracks as data (core/trajectories.py) and retroactive counting over them (core/recount.py)."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from agents import state as st
from core.camera import Frame, Scene, process_frame
from core.recount import join_segments, recount_line, recount_zone
from core.trajectories import simplify

T0 = 1_700_000_000.0


@pytest.mark.parametrize("name", ["core.trajectories", "core.recount", "core.flows"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def _dist_to_polyline(p: np.ndarray, poly: np.ndarray) -> float:
    a, b = poly[:-1], poly[1:]
    d = b - a
    dd = np.maximum((d * d).sum(1), 1e-12)
    t = np.clip(((p - a) * d).sum(1) / dd, 0, 1)
    return float(np.min(np.hypot(*(a + t[:, None] * d - p).T)))


@settings(max_examples=60, deadline=None)
@given(st_.lists(st_.tuples(st_.floats(0, 500), st_.floats(0, 500)), min_size=2, max_size=80), st_.floats(0.5, 5))
def test_simplified_paths_stay_within_the_tolerance_of_every_raw_point(xy, tol):
    raw = [[float(i), x, y, 50.0] for i, (x, y) in enumerate(xy)]
    kept = simplify(raw, tol)
    assert kept[0] == raw[0] and kept[-1] == raw[-1]
    poly = np.array([[p[1], p[2]] for p in kept])
    if len(poly) == 1:
        return
    for p in raw:
        assert _dist_to_polyline(np.array([p[1], p[2]]), poly) <= tol + 1e-6


def _walk(frames_n: int, x0: float, dx: float, seq0: int = 0, y: float = 300.0):
    for k in range(frames_n):
        x = x0 + dx * k
        yield Frame("cam-1", seq0 + k, T0 + (seq0 + k) / 10, [[x - 20, y - 100, x + 20, y, 0.9]])


def _run(frames, scene, rt=None):
    rt = rt or st.CameraRuntime("cam-1", 0)
    out = []
    for f in frames:
        out += [rec for topic, rec in st.step(rt, f, scene, T0) if topic == st.TRACKS]
    return rt, out


def test_a_track_that_ends_yields_one_summary_with_its_crossings_and_zone_visit():
    scene = Scene.from_config(
        lines=[("door", (300, 0), (300, 480)), ("gate", (200, 480), (200, 0))],
        zones=[("hall", [(350, 200), (450, 200), (450, 400), (350, 400)])],
    )
    frames = list(_walk(40, 100, 10)) + [Frame("cam-1", 40 + k, T0 + (40 + k) / 10, []) for k in range(30)]
    _, out = _run(frames, scene)
    assert len(out) == 1
    s = out[0]
    assert s.event_id == "cam-1:1:0" and s.final and s.segment == 0
    assert [(c[0], c[1]) for c in s.lines] == [("gate", "in"), ("door", "out")]  # both lines, in order
    assert [z[0] for z in s.zones] == ["hall"] and s.zones[0][2] > 0
    assert len(s.path) == 3  # a straight walk: its ends and the start of its second chunk of 32 points
    assert s.mean_speed == pytest.approx(100.0, rel=0.02) and s.path[-1][1] == pytest.approx(490.0)


def test_a_flicker_that_never_confirms_yields_nothing():
    frames = [Frame("cam-1", 0, T0, [[10, 10, 50, 110, 0.9]])] + [
        Frame("cam-1", k, T0 + k / 10, []) for k in range(1, 30)
    ]
    assert _run(frames, Scene())[1] == []


def test_a_long_stay_is_summarised_in_segments_that_join_back():
    pts = [Frame("cam-1", k, T0 + k, [[100 + (k % 3), 100, 140 + (k % 3), 200, 0.9]]) for k in range(150)]
    frames = pts + [Frame("cam-1", 150 + k, T0 + 150 + k / 10, []) for k in range(20)]
    _, out = _run(frames, Scene.from_config(zones=[("spot", [(90, 150), (160, 150), (160, 250), (90, 250)])]))
    assert [(s.segment, s.final) for s in out] == [(0, False), (1, False), (2, True)]
    assert out[1].first_seen == out[0].last_seen  # each segment starts where the last ended
    assert out[0].zones[0][2] is None and out[-1].zones[0][2] == pytest.approx(149, abs=1)  # dwell on the exit
    paths = join_segments(
        [(s.track_id, s.segment, s.first_seen, *zip(*s.path, strict=True), s.confirmed_t) for s in out]
    )
    assert len(paths) == 1 and paths[0].t[0] == T0 and paths[0].t[-1] == pytest.approx(T0 + 149)
    assert [e.direction for e in recount_zone(paths, [(90, 150), (160, 150), (160, 250), (90, 250)])] == [
        "enter",
        "exit",
    ]


def test_a_worker_that_restarts_from_its_changelog_emits_the_same_summaries():
    from streams.simulator import Simulation

    sim = Simulation(cameras=1, fps=10, seed=3)
    cfg = sim.configs()[0]
    scene = Scene.from_config(cfg.lines, cfg.zones)
    frames = list(sim.frames(120))
    _, ref = _run(frames, scene)
    rt, first = _run(frames[:700], scene)
    back = st.decode(st.encode(rt))  # a new worker loads the camera's state
    _, second = _run(frames[700:], scene, back)
    assert [s.to_json() for s in first + second] == [s.to_json() for s in ref] and len(ref) > 10


def test_recount_of_an_unconfigured_line_equals_the_live_counter_and_the_truth():
    from streams.simulator import Simulation

    sim = Simulation(cameras=1, fps=10, seed=8)
    cfg = sim.configs()[0]
    configured, new = cfg.lines[0], cfg.lines[1]
    frames = list(sim.frames(300))
    _, out = _run(frames, Scene.from_config([configured], cfg.zones))
    paths = join_segments((s.track_id, s.segment, s.first_seen, *zip(*s.path, strict=True), s.confirmed_t) for s in out)
    end = max(p.t[-1] for p in paths)  # people still in view at the end have no summary yet
    recounted = [e for e in recount_line(paths, tuple(new.start), tuple(new.end)) if e.at <= end]
    # the live counter with the line configured from the start, on the same frames
    state, live = None, []
    scene = Scene.from_config([new])
    from core.camera import CameraState

    state = CameraState()
    for f in frames:
        state, crossings, _, _ = process_frame(state, f, scene)
        live += [(c.occurred_at, c.direction, c.track_id) for c in crossings if c.occurred_at <= end]
    assert len(live) > 10
    assert sorted((e.direction, e.track_id) for e in recounted) == sorted((d, t) for _, d, t in live)
    truth = sim.truth()[cfg.camera_id][new.line_id]
    assert sum(truth.values()) - len(recounted) <= 2  # only people still in view at the end are missing
