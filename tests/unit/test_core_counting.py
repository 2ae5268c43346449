"""core.counting through core.camera.process_frame: the line rule (hysteresis, once per direction
state, jitter), zones (enter/exit/dwell, flicker, lost tracks) and the events' shape."""

from __future__ import annotations

import dataclasses
import math

import pytest

from core.camera import CameraParams, CameraState, Frame, process_frame
from core.counting import CountingParams, Scene
from core.tracking import TrackerParams

FPS = 25.0
H = 150.0  # person height: band = max(3 px, 2 % of 150) = 3 px
DOWN = ("door", (200, 0), (200, 480))  # downward arrow: right-to-left is in, left-to-right is out
UP = ("door", (200, 480), (200, 0))  # upward arrow: left-to-right is in


def box(ax: float, ay: float = 300.0, w: float = 50.0, h: float = H, conf: float = 0.9) -> list[float]:
    return [ax - w / 2, ay - h, ax + w / 2, ay, conf]


DEFAULT = CameraParams()


def run(scene, paths, params=DEFAULT, state=None, first=0, camera="cam-1"):
    """``paths``: per frame, a list of anchors (x, y) (empty: nobody detected). Returns the final
    state and every crossing, zone event and occupancy list."""
    state = state or CameraState()
    crossings, zone_events, occupancy = [], [], []
    for seq, anchors in enumerate(paths, start=first):
        boxes = [box(x, y) for x, y in anchors]
        state, c, z, o = process_frame(state, Frame(camera, seq, 1000.0 + seq / FPS, boxes), scene, params)
        crossings += c
        zone_events += z
        occupancy.append(o)
    return state, crossings, zone_events, occupancy


def xs(*legs: tuple[float, float, int], y: float = 300.0) -> list[list[tuple[float, float]]]:
    """One person walking piecewise-linearly: legs of (from_x, to_x, frames)."""
    out = []
    for a, b, n in legs:
        out += [[(a + (b - a) * i / n, y)] for i in range(n)]
    return out


def summary(crossings):
    return [(c.line_id, c.track_id, c.direction) for c in crossings]


@pytest.mark.parametrize(("line", "expected"), [(DOWN, "out"), (UP, "in")])
def test_walking_across_counts_once_in_the_arrow_direction(line, expected):
    _, crossings, _, _ = run(Scene.from_config(lines=[line]), xs((120, 280, 40)))
    assert summary(crossings) == [("door", 1, expected)]
    c = crossings[0]
    assert c.event_id == f"cam-1:door:1:{expected}:{c.frame_seq}"
    assert (c.x, c.y) == (200.0, 300.0)  # the anchor projected onto the line
    assert c.occurred_at == 1000.0 + c.frame_seq / FPS and c.confidence == pytest.approx(0.9)


def test_in_then_out_through_the_same_door_is_one_each():
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), xs((100, 300, 30), (300, 100, 30)))
    assert summary(crossings) == [("door", 1, "in"), ("door", 1, "out")]


def test_in_out_in_counts_three_real_legs():
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), xs((100, 300, 25), (300, 100, 25), (100, 300, 25)))
    assert [c.direction for c in crossings] == ["in", "out", "in"]
    assert len({c.event_id for c in crossings}) == 3


def test_jitter_on_the_line_never_counts():
    # a person standing on the line, anchor oscillating +-2.5 px (inside the 3 px band)
    path = [[(200 + 2.5 * math.sin(i * 1.3), 300)] for i in range(200)]
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), path)
    assert crossings == []


def test_walk_up_stand_on_the_line_jittering_then_walk_on_counts_once():
    path = xs((100, 197, 20))  # comes from far on the left, stops 3 px short
    path += [[(199 + 3.0 * (-1) ** i, 300)] for i in range(60)]  # jitters across the line: 196 / 202
    path += xs((199, 320, 20))  # walks on
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), path)
    assert [c.direction for c in crossings] == ["in"]


def test_stepping_over_and_back_within_the_band_counts_nothing():
    path = xs((100, 202, 20), (202, 100, 20))  # reaches 2 px beyond the line, turns back
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), path)
    assert crossings == []


def test_larger_jitter_than_the_band_is_a_configuration_matter():
    path = [[(200 + 6 * (-1) ** i, 300)] for i in range(20)]  # +-6 px every frame
    scene = Scene.from_config(lines=[UP])
    assert len(run(scene, path)[1]) > 0  # the default 3 px band is too narrow for this
    wide = CameraParams(counting=CountingParams(hysteresis_px=8.0))
    assert run(scene, path, wide)[1] == []


def test_walking_round_the_end_of_a_short_line_does_not_count():
    scene = Scene.from_config(lines=[("short", (200, 250), (200, 350))])
    path = [[(150 + 3 * i, 400)] for i in range(35)]  # passes below the line's lower end
    path += [[(255, 400 - 5 * i)] for i in range(30)]  # then walks up on the right side
    path += [[(255 - 3 * i, 250)] for i in range(40)]  # and back left above the line
    _, crossings, _, _ = run(scene, path)
    assert crossings == []


def test_count_modes_filter_events_but_state_follows_both_ways():
    lines = [("a", (200, 480), (200, 0), "in_only"), ("b", (260, 480), (260, 0), "out_only")]
    path = xs((100, 300, 30), (300, 100, 30), (100, 300, 30))
    _, crossings, _, _ = run(Scene.from_config(lines=lines), path)
    assert summary(crossings) == [("a", 1, "in"), ("b", 1, "out"), ("a", 1, "in")]


def test_an_anchor_exactly_on_the_line_is_on_its_out_side():
    # integer coordinates landing exactly on the line (like the MOT ground truth's track 3)
    path = [[(x, 300)] for x in (180, 186, 192, 200, 208, 216, 224)]
    back = [[(x, 300)] for x in (224, 216, 208, 200, 192, 186)]
    scene = Scene.from_config(lines=[UP])
    assert [c.direction for c in run(scene, path)[1]] == ["in"]
    assert [c.direction for c in run(scene, path + back)[1]] == ["in", "out"]
    # with count_touching=False only proper intersections cross: such passages are not counted
    proper_only = CameraParams(counting=CountingParams(count_touching=False))
    assert run(scene, path + back, proper_only)[1] == []


def test_crossing_while_tentative_counts_when_confirmed():
    params = CameraParams(tracker=TrackerParams(min_hits=4))
    path = xs((190, 230, 8))  # born 10 px left of the line, crosses on the 3rd frame
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), path, params)
    assert [(c.direction, c.frame_seq) for c in crossings] == [("in", 3)]  # confirmed at hit 4


def test_a_track_born_inside_the_band_has_no_side_yet():
    path = xs((201, 300, 20))
    assert run(Scene.from_config(lines=[UP]), path)[1] == []


def test_lost_track_refound_on_the_other_side_counts_once():
    path = xs((100, 190, 15)) + [[]] * 4 + xs((214, 300, 15))  # occluded while crossing
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), path)
    assert summary(crossings) == [("door", 1, "in")]


def test_two_people_one_line_each_counted_with_their_track():
    path = [[(100 + 5 * i, 300), (320 - 5 * i, 400)] for i in range(45)]
    _, crossings, _, _ = run(Scene.from_config(lines=[UP]), path)
    assert sorted((c.track_id, c.direction) for c in crossings) == [(1, "in"), (2, "out")]


def test_adding_a_line_keeps_the_state_of_existing_ones():
    path = xs((100, 320, 44))
    one = Scene.from_config(lines=[UP])
    two = Scene.from_config(lines=[UP, ("x300", (300, 480), (300, 0))])
    state, first, _, _ = run(one, path[:22])
    _, second, _, _ = run(two, path[22:], state=state, first=22)
    assert summary(first + second) == [("door", 1, "in"), ("x300", 1, "in")]


def test_crossing_events_validate_as_wire_records():
    from models.records import CrossingEvent, ZoneEvent

    scene = Scene.from_config(lines=[UP], zones=[("z", [(150, 250), (260, 250), (260, 350), (150, 350)])])
    _, crossings, zone_events, _ = run(scene, xs((100, 300, 40)))
    assert crossings and zone_events
    for c in crossings:
        CrossingEvent(**dataclasses.asdict(c), processed_at=2000.0)
    for z in zone_events:
        ZoneEvent(**dataclasses.asdict(z), processed_at=2000.0)


# --------------------------------------------------------------------------- zones

ROOM = ("room", [(150, 200), (350, 200), (350, 400), (150, 400)])


def test_zone_enter_exit_with_dwell_and_occupancy():
    path = xs((100, 250, 30), (250, 250, 50), (250, 420, 30))
    _, _, events, occupancy = run(Scene.from_config(zones=[ROOM]), path)
    kinds = [(e.kind, e.track_id) for e in events]
    assert kinds == [("enter", 1), ("exit", 1)]
    enter, leave = events
    assert leave.dwell_s == pytest.approx(leave.occurred_at - enter.occurred_at)
    assert enter.dwell_s is None and enter.event_id == f"cam-1:room:1:enter:{enter.frame_seq}"
    mid = occupancy[60][0]
    assert (mid.zone_id, mid.count, mid.track_ids) == ("room", 1, (1,))
    assert mid.avg_dwell_s == pytest.approx((60 - enter.frame_seq) / FPS)
    assert occupancy[-1][0].count == 0 and occupancy[-1][0].avg_dwell_s is None


def test_zone_edge_flicker_does_not_produce_events():
    path = [[(150 + 2.0 * (-1) ** i, 300)] for i in range(100)]  # on the left edge, +-2 px
    _, _, events, occupancy = run(Scene.from_config(zones=[ROOM]), path)
    assert events == []
    assert {o[0].count for o in occupancy} == {0}


def test_lost_track_stays_inside_then_exits_with_dwell_to_last_seen():
    params = CameraParams(tracker=TrackerParams(max_lost_s=0.4))
    path = xs((250, 250, 30)) + [[]] * 20
    _, _, events, occupancy = run(Scene.from_config(zones=[ROOM]), path, params)
    enter, leave = events
    assert occupancy[35][0].count == 1  # lost, still inside
    assert leave.kind == "exit" and leave.frame_seq == 40  # removed after 0.4 s unmatched
    assert leave.dwell_s == pytest.approx((29 - enter.frame_seq) / FPS)  # to the last time seen
    assert occupancy[-1][0].count == 0


def test_tentative_tracks_do_not_enter_zones():
    params = CameraParams(tracker=TrackerParams(min_hits=3))
    path = [[(250, 300)]] * 2 + [[]] * 3
    _, _, events, occupancy = run(Scene.from_config(zones=[ROOM]), path, params)
    assert events == [] and {o[0].count for o in occupancy} == {0}


def test_several_zones_and_people():
    zones = [ROOM, ("left", [(0, 200), (140, 200), (140, 400), (0, 400)])]
    path = [[(60, 300), (250, 300), (500, 300)] for _ in range(10)]
    _, _, events, occupancy = run(Scene.from_config(zones=zones), path)
    assert sorted((e.zone_id, e.kind) for e in events) == [("left", "enter"), ("room", "enter")]
    assert [(o.zone_id, o.count) for o in occupancy[-1]] == [("room", 1), ("left", 1)]
