"""core.geometry: sides, directions, the proper-crossing rule, polygons, IoU."""

from __future__ import annotations

import numpy as np
import pytest

from core.counting import Scene
from core.geometry import (
    anchors,
    crossing_direction,
    distance_to_polygon_boundary,
    iou_matrix,
    points_in_polygon,
    polygon_area,
    project_onto_segment,
    segments_cross,
    side_of_line,
    signed_distance_to_line,
    signed_distance_to_polygon,
    step_within_segment,
)

UP = ((200.0, 480.0), (200.0, 0.0))  # arrow drawn upwards
DOWN = ((200.0, 0.0), (200.0, 480.0))  # arrow drawn downwards
LEFT_TO_RIGHT = ((150.0, 100.0), (250.0, 100.0))
RIGHT_TO_LEFT = ((250.0, 100.0), (150.0, 100.0))


def test_anchor_is_bottom_centre():
    assert anchors([[10, 20, 30, 120, 0.9], [0, 0, 4, 8, 1.0]]).tolist() == [[20.0, 120.0], [2.0, 8.0]]
    assert anchors([10, 20, 30, 120]).tolist() == [[20.0, 120.0]]


@pytest.mark.parametrize(
    ("line", "step", "expected"),
    [
        # the CountingLine docstring: an upward arrow counts left-to-right as in ...
        (UP, LEFT_TO_RIGHT, "in"),
        (UP, RIGHT_TO_LEFT, "out"),
        # ... and a downward arrow counts right-to-left as in
        (DOWN, RIGHT_TO_LEFT, "in"),
        (DOWN, LEFT_TO_RIGHT, "out"),
        # horizontal arrows: pointing right, its right-hand side on screen is below (y down)
        (((0, 300), (640, 300)), ((100, 280), (100, 320)), "in"),
        (((0, 300), (640, 300)), ((100, 320), (100, 280)), "out"),
        (((640, 300), (0, 300)), ((100, 280), (100, 320)), "out"),
        # diagonal arrow from top-left to bottom-right: its right-hand side is towards bottom-left
        (((0, 0), (400, 400)), ((250, 150), (150, 250)), "in"),
        (((0, 0), (400, 400)), ((150, 250), (250, 150)), "out"),
        # the same diagonal drawn the other way flips both
        (((400, 400), (0, 0)), ((250, 150), (150, 250)), "out"),
    ],
)
def test_direction_follows_the_arrow(line, step, expected):
    assert crossing_direction(step[0], step[1], *line) == expected


def test_side_of_line_sign_and_distance():
    assert float(side_of_line((300, 100), *UP)) > 0  # right of an upward arrow
    assert float(side_of_line((100, 100), *DOWN)) > 0  # right of a downward arrow (screen left)
    assert float(side_of_line((200, 50), *UP)) == 0.0
    assert signed_distance_to_line([(203, 50), (190, 50)], *DOWN).tolist() == [-3.0, 10.0]
    with pytest.raises(ValueError, match="two distinct points"):
        signed_distance_to_line([(0, 0)], (1, 1), (1, 1))


@pytest.mark.parametrize(
    ("p0", "p1", "crosses"),
    [
        ((0, 0), (10, 0), True),  # proper
        ((10, 0), (0, 0), True),  # proper, other way
        ((0, 0), (5, 0), False),  # ends exactly on the line: touching
        ((5, 0), (10, 0), False),  # starts exactly on the line: touching
        ((0, -5), (10, -5), False),  # through the segment's end point
        ((0, -6), (10, -6), False),  # beyond the segment's end
        ((5, -9), (5, 9), False),  # collinear, overlapping
        ((5, 6), (5, 9), False),  # collinear, disjoint
        ((0, 1), (4, 1), False),  # parallel-ish, does not reach
        ((3, 3), (3, 3), False),  # no movement
    ],
)
def test_proper_crossing_rule(p0, p1, crosses):
    a, b = (5, -5), (5, 5)
    assert bool(segments_cross(p0, p1, a, b)) is crosses
    # the scalar half used by counting agrees on the extent part
    if crosses:
        assert step_within_segment(p0, p1, a, b)


def test_segments_cross_is_vectorised():
    p0 = np.array([[0, 0], [0, 0], [0, 20]])
    p1 = np.array([[10, 0], [5, 0], [10, 20]])
    assert segments_cross(p0, p1, (5, -5), (5, 5)).tolist() == [True, False, False]
    # steps (N, 1, 2) against lines (L, 2): an (N, L) answer
    starts = np.array([[5, -5], [8, -5]])
    ends = np.array([[5, 5], [8, 5]])
    got = segments_cross(p0[:, None, :], p1[:, None, :], starts, ends)
    assert got.tolist() == [[True, True], [False, False], [False, False]]


def test_project_onto_segment_clips():
    assert project_onto_segment([(210, 50), (210, 900), (150, -5)], *DOWN).tolist() == [
        [200.0, 50.0],
        [200.0, 480.0],
        [200.0, 0.0],
    ]


L_SHAPE = [(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)]  # concave


def test_points_in_polygon_many_points_and_concave():
    pts = np.array([(2, 2), (8, 2), (8, 8), (2, 8), (12, 2), (-1, 5), (5, 5)])
    assert points_in_polygon(pts, L_SHAPE).tolist() == [True, True, False, True, False, False, False]
    # agrees with a brute-force grid count of the area
    grid = np.stack(np.meshgrid(np.arange(0.05, 10, 0.1), np.arange(0.05, 10, 0.1)), -1).reshape(-1, 2)
    inside = points_in_polygon(grid, L_SHAPE)
    assert inside.sum() * 0.01 == pytest.approx(polygon_area(L_SHAPE), rel=1e-9)


def test_polygon_area():
    assert polygon_area([(0, 0), (10, 0), (10, 10), (0, 10)]) == 100.0
    assert polygon_area([(0, 10), (10, 10), (10, 0), (0, 0)]) == 100.0  # orientation-free
    assert polygon_area([(0, 0), (4, 0), (0, 3)]) == 6.0
    assert polygon_area(L_SHAPE) == 64.0
    with pytest.raises(ValueError, match="at least 3"):
        polygon_area([(0, 0), (1, 1)])


def test_distances_to_polygon():
    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert distance_to_polygon_boundary([(5, 2), (13, 14), (5, 5)], square).tolist() == [2.0, 5.0, 5.0]
    assert signed_distance_to_polygon([(5, 2), (12, 5), (5, 12)], square).tolist() == [2.0, -2.0, -2.0]
    # concave: points in the notch are outside; the nearest edge may be an inner one
    assert signed_distance_to_polygon([(6, 6), (5, 9)], L_SHAPE).tolist() == [-2.0, -1.0]
    assert signed_distance_to_polygon([(7, 7)], L_SHAPE).tolist() == pytest.approx([-3.0])


def test_iou_matrix():
    got = iou_matrix([[0, 0, 10, 10], [100, 100, 110, 110]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert got.round(4).tolist() == [[1.0, 0.3333, 0.0], [0.0, 0.0, 0.0]]
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_scene_arithmetic_agrees_with_geometry():
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 640, (200, 2))
    pts[:10, 0] = 320.0  # exactly on the vertical line
    lines = [("v", (320, 0), (320, 480)), ("d", (13.5, 7.25), (601.0, 433.75))]
    square = [(100, 100), (300, 100), (300, 300), (100, 300)]
    scene = Scene.from_config(lines=lines, zones=[("sq", square), ("L", L_SHAPE)])
    orient = scene.line_orientation(pts[:, 0], pts[:, 1])
    for j, (_, a, b) in enumerate(lines):
        assert np.array_equal(orient[:, j], side_of_line(pts, a, b))  # bit-identical, zeros included
    assert (orient[:10, 0] == 0).all()
    zd = scene.zone_distances(pts)
    assert np.allclose(zd[:, 0], signed_distance_to_polygon(pts, square))
    assert np.allclose(zd[:, 1], signed_distance_to_polygon(pts, L_SHAPE))


def test_scene_rejects_bad_config():
    with pytest.raises(ValueError, match="distinct"):
        Scene.from_config(lines=[("a", (1, 1), (1, 1))])
    with pytest.raises(ValueError, match="duplicate line_id"):
        Scene.from_config(lines=[("a", (0, 0), (1, 1)), ("a", (0, 0), (2, 2))])
    with pytest.raises(ValueError, match="count must be"):
        Scene.from_config(lines=[("a", (0, 0), (1, 1), "sideways")])
    with pytest.raises(ValueError, match="at least 3"):
        Scene.from_config(zones=[("z", [(0, 0), (1, 1)])])


def test_scene_accepts_wire_records():
    from models.records import CountingLine, Zone

    scene = Scene.from_config(
        lines=[CountingLine(line_id="door", start=[200.0, 0.0], end=[200.0, 480.0], count="in_only")],
        zones=[Zone(zone_id="hall", polygon=[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])],
    )
    assert scene.line_ids == ("door",) and scene.line_modes == ("in_only",) and scene.zone_ids == ("hall",)
