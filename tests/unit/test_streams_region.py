"""Detection region filtering by the bottom-centre anchor."""

from __future__ import annotations

import numpy as np
import pytest

from streams.region import anchors, filter_boxes, points_in_polygon

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]
# An L shape: the notch (60..100, 0..60) is outside.
ELL = [[0, 0], [60, 0], [60, 60], [100, 60], [100, 100], [0, 100]]


def test_anchor_is_bottom_centre() -> None:
    assert anchors(np.array([[10, 20, 30, 80, 0.9]])).tolist() == [[20.0, 80.0]]
    assert anchors(np.zeros((0, 5))).shape == (0, 2)


@pytest.mark.parametrize(
    ("point", "inside"),
    [((50, 50), True), ((150, 50), False), ((-1, 50), False), ((0, 50), True), ((100, 100), True), ((50, 100), True)],
)
def test_square(point: tuple[float, float], inside: bool) -> None:
    assert points_in_polygon(np.array([point]), SQUARE).tolist() == [inside]


def test_concave_polygon() -> None:
    pts = np.array([[30, 30], [80, 30], [80, 80], [30, 80]])
    assert points_in_polygon(pts, ELL).tolist() == [True, False, True, True]


def test_filter_uses_the_anchor_not_the_box_centre() -> None:
    # The box's centre is inside the square, its feet (anchor) are below it.
    boxes = np.array([[40, 50, 60, 150, 0.9], [40, 10, 60, 90, 0.8]])
    kept = filter_boxes(boxes, SQUARE)
    assert kept.tolist() == [[40, 10, 60, 90, 0.8]]


def test_no_region_keeps_everything_and_empty_stays_empty() -> None:
    boxes = np.array([[1, 1, 2, 2, 0.5]])
    assert filter_boxes(boxes, None) is not None and len(filter_boxes(boxes, None)) == 1
    assert filter_boxes(np.zeros((0, 5)), SQUARE).shape == (0, 5)


def test_degenerate_polygon_is_refused() -> None:
    with pytest.raises(ValueError):
        points_in_polygon(np.array([[0, 0]]), [[0, 0], [1, 1]])
