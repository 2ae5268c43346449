"""Detection region: keep the boxes whose anchor (bottom centre, where a person stands) lies inside
a polygon. Points on the boundary count as inside.

>>> import numpy as np
>>> boxes = np.array([[10, 10, 30, 50, 0.9], [200, 10, 220, 50, 0.8]])
>>> filter_boxes(boxes, [[0, 0], [100, 0], [100, 100], [0, 100]]).tolist()
[[10.0, 10.0, 30.0, 50.0, 0.9]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def anchors(boxes: np.ndarray) -> np.ndarray:
    """Bottom-centre points ``(N, 2)`` of ``[x1, y1, x2, y2, ...]`` boxes."""
    boxes = np.asarray(boxes, dtype=float)
    if boxes.size == 0:
        return np.zeros((0, 2))
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]], axis=1)


def points_in_polygon(points: np.ndarray, polygon: Sequence[Sequence[float]]) -> np.ndarray:
    """Vectorised even-odd test; boundary points are inside."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=float)
    if len(poly) < 3:
        raise ValueError("a polygon needs at least 3 points")
    x, y = pts[:, 0:1], pts[:, 1:2]  # (N, 1)
    x1, y1 = poly[:, 0], poly[:, 1]  # (M,)
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    # Boundary: collinear with an edge and within its bounding box.
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    within = (
        (np.minimum(x1, x2) <= x) & (x <= np.maximum(x1, x2)) & (np.minimum(y1, y2) <= y) & (y <= np.maximum(y1, y2))
    )
    on_edge = (np.abs(cross) <= 1e-9) & within
    # Even-odd ray cast to the right.
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_cross)
    inside = (crossings.sum(axis=1) % 2) == 1
    return inside | on_edge.any(axis=1)


def filter_boxes(boxes: np.ndarray, region: Sequence[Sequence[float]] | None) -> np.ndarray:
    """The boxes whose anchor is inside ``region``; all of them when ``region`` is None."""
    boxes = np.asarray(boxes, dtype=float)
    if region is None or len(boxes) == 0:
        return boxes
    return boxes[points_in_polygon(anchors(boxes), region)]
