"""Plane geometry for counting: anchors, sides of a directed line, crossings, polygons.

Coordinates are frame pixels with x to the right and **y down** (see ``models.records``).
Everything is vectorised numpy over many points / steps; scalars work too.

Side of a directed line ``start -> end``
    ``side_of_line`` is the 2-D cross product ``(end - start) x (p - start)``. With y pointing
    down, it is **positive on the right-hand side of the arrow as seen on screen**, which is the
    ``in`` side of a :class:`models.records.CountingLine`:

    >>> import numpy as np
    >>> up = ((200, 480), (200, 0))       # arrow drawn upwards: right side is x > 200
    >>> float(side_of_line((300, 100), *up)) > 0
    True
    >>> crossing_direction((150, 100), (250, 100), *up)   # left to right across an upward arrow
    'in'
    >>> down = ((200, 0), (200, 480))     # arrow drawn downwards: right side is x < 200
    >>> crossing_direction((150, 100), (250, 100), *down)
    'out'

Crossing rule (touching and collinear cases)
    A step ``p0 -> p1`` crosses a line segment ``a -> b`` only if the intersection is
    **proper**: ``p0`` and ``p1`` lie strictly on opposite sides of the line through ``a, b``
    *and* ``a`` and ``b`` lie strictly on opposite sides of the line through ``p0, p1``. A step
    that starts or ends exactly on the line, passes exactly through an end point of the
    segment, or runs along it (collinear) does not cross. An anchor exactly on the line is on
    neither side. This is the rule the footage reference (``tud-campus/expected_crossings.json``)
    is derived with. Counting (``core.counting``) by default puts an anchor that lies exactly on
    a line on the line's ``out`` side instead, so that a passage via the line counts once.

    >>> segments_cross((0, 0), (10, 0), (5, -5), (5, 5)).item()    # proper
    True
    >>> segments_cross((0, 0), (5, 0), (5, -5), (5, 5)).item()     # ends on the line: touching
    False
    >>> segments_cross((5, -9), (5, 9), (5, -5), (5, 5)).item()    # collinear
    False

Polygons
    >>> square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    >>> points_in_polygon([(5, 5), (15, 5)], square).tolist()
    [True, False]
    >>> polygon_area(square)
    100.0
    >>> signed_distance_to_polygon([(5, 2), (12, 5)], square).tolist()
    [2.0, -2.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "anchors",
    "side_of_line",
    "signed_distance_to_line",
    "segments_cross",
    "step_within_segment",
    "crossing_direction",
    "project_onto_segment",
    "points_in_polygon",
    "polygon_area",
    "distance_to_polygon_boundary",
    "signed_distance_to_polygon",
    "iou_matrix",
]

Point = Sequence[float] | NDArray[np.floating]


def anchors(boxes: ArrayLike) -> NDArray[np.float64]:
    """Anchor (ground point) of each ``[x1, y1, x2, y2, ...]`` box: bottom-centre ``((x1+x2)/2, y2)``.

    >>> anchors([[10, 20, 30, 120, 0.9]]).tolist()
    [[20.0, 120.0]]
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1:
        b = b[None, :]
    out = np.empty((b.shape[0], 2))
    out[:, 0] = (b[:, 0] + b[:, 2]) * 0.5
    out[:, 1] = b[:, 3]
    return out


def side_of_line(points: ArrayLike, start: Point, end: Point) -> NDArray[np.float64]:
    """Cross product ``(end - start) x (p - start)`` for each point: > 0 on the right-hand side of
    the arrow as seen on screen (the ``in`` side), < 0 on its left, 0 on the line.

    The magnitude is the distance to the line times ``|end - start|``.
    """
    p = np.asarray(points, dtype=np.float64)
    sx, sy = float(start[0]), float(start[1])
    dx, dy = float(end[0]) - sx, float(end[1]) - sy
    return dx * (p[..., 1] - sy) - dy * (p[..., 0] - sx)


def signed_distance_to_line(points: ArrayLike, start: Point, end: Point) -> NDArray[np.float64]:
    """Signed distance (pixels) from each point to the infinite line through ``start, end``;
    positive on the ``in`` (right-hand, on screen) side.

    >>> signed_distance_to_line([(203, 50), (190, 50)], (200, 0), (200, 480)).tolist()
    [-3.0, 10.0]
    """
    length = float(np.hypot(float(end[0]) - float(start[0]), float(end[1]) - float(start[1])))
    if length == 0.0:
        raise ValueError(f"a line needs two distinct points, got start={start} end={end}")
    return side_of_line(points, start, end) / length


def _orient(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def segments_cross(p0: ArrayLike, p1: ArrayLike, a: ArrayLike, b: ArrayLike) -> NDArray[np.bool_]:
    """Whether each step ``p0 -> p1`` properly crosses the segment ``a -> b`` (broadcasting).

    Touching (an end point of either segment on the other) and collinear overlap are **not**
    crossings; see the module docstring.
    """
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    o1 = _orient(a[..., 0], a[..., 1], b[..., 0], b[..., 1], p0[..., 0], p0[..., 1])
    o2 = _orient(a[..., 0], a[..., 1], b[..., 0], b[..., 1], p1[..., 0], p1[..., 1])
    o3 = _orient(p0[..., 0], p0[..., 1], p1[..., 0], p1[..., 1], a[..., 0], a[..., 1])
    o4 = _orient(p0[..., 0], p0[..., 1], p1[..., 0], p1[..., 1], b[..., 0], b[..., 1])
    return (o1 * o2 < 0) & (o3 * o4 < 0)


def step_within_segment(p0: Point, p1: Point, a: Point, b: Point) -> bool:
    """Scalar half of :func:`segments_cross`: whether ``a`` and ``b`` lie strictly on opposite
    sides of the line through ``p0, p1`` (the step passes between the segment's end points).
    Same arithmetic as the vectorised version, in plain floats (fast for a handful of calls).

    >>> step_within_segment((0, 0), (10, 0), (5, -5), (5, 5)), step_within_segment((0, 0), (10, 0), (5, 1), (5, 5))
    (True, False)
    """
    x0, y0 = float(p0[0]), float(p0[1])
    mx, my = float(p1[0]) - x0, float(p1[1]) - y0
    o_a = mx * (float(a[1]) - y0) - my * (float(a[0]) - x0)
    o_b = mx * (float(b[1]) - y0) - my * (float(b[0]) - x0)
    return o_a * o_b < 0


def crossing_direction(p0: Point, p1: Point, start: Point, end: Point) -> str | None:
    """``'in'``/``'out'`` if the step ``p0 -> p1`` properly crosses the directed line, else None.

    ``in`` = the step ends on the right-hand side of the arrow ``start -> end`` as seen on screen.
    """
    if not bool(segments_cross(p0, p1, start, end)):
        return None
    return "in" if float(side_of_line(p1, start, end)) > 0 else "out"


def project_onto_segment(points: ArrayLike, start: Point, end: Point) -> NDArray[np.float64]:
    """Closest point of the segment ``start -> end`` to each point.

    >>> project_onto_segment([(210, 50), (210, 900)], (200, 0), (200, 480)).tolist()
    [[200.0, 50.0], [200.0, 480.0]]
    """
    p = np.asarray(points, dtype=np.float64)
    s = np.asarray(start, dtype=np.float64)
    d = np.asarray(end, dtype=np.float64) - s
    t = np.clip(((p - s) @ d) / float(d @ d), 0.0, 1.0)
    return s + t[..., None] * d


def _as_polygon(polygon: ArrayLike) -> NDArray[np.float64]:
    poly = np.asarray(polygon, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
        raise ValueError(f"a polygon is a list of at least 3 [x, y] points, got shape {poly.shape}")
    return poly


def points_in_polygon(points: ArrayLike, polygon: ArrayLike) -> NDArray[np.bool_]:
    """Crossing-number test for many points at once (any simple or self-intersecting polygon,
    even-odd rule). Points exactly on an edge get a deterministic but unspecified answer; zone
    logic uses :func:`signed_distance_to_polygon` with a hysteresis band, so it never relies on it.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = _as_polygon(polygon)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    px, py = p[:, 0:1], p[:, 1:2]  # (N, 1) against (M,) edges
    straddles = (y1 > py) != (y2 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
    hits = straddles & (px < x_cross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def polygon_area(polygon: ArrayLike) -> float:
    """Area (square pixels) of a simple polygon, by the shoelace formula; orientation-free."""
    poly = _as_polygon(polygon)
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) * 0.5)


def distance_to_polygon_boundary(points: ArrayLike, polygon: ArrayLike) -> NDArray[np.float64]:
    """Unsigned distance from each point to the nearest edge of the polygon."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = _as_polygon(polygon)
    a = poly
    d = np.roll(poly, -1, axis=0) - a  # (M, 2) edge vectors
    dd = np.einsum("ij,ij->i", d, d)
    dd[dd == 0.0] = 1.0  # repeated vertex: the edge is a point, t = 0 below
    rel = p[:, None, :] - a[None, :, :]  # (N, M, 2)
    t = np.clip(np.einsum("nmk,mk->nm", rel, d) / dd, 0.0, 1.0)
    diff = rel - t[..., None] * d[None, :, :]
    return np.sqrt(np.min(np.einsum("nmk,nmk->nm", diff, diff), axis=1))


def signed_distance_to_polygon(points: ArrayLike, polygon: ArrayLike) -> NDArray[np.float64]:
    """Distance to the polygon's boundary, positive inside and negative outside."""
    dist = distance_to_polygon_boundary(points, polygon)
    return np.where(points_in_polygon(points, polygon), dist, -dist)


def iou_matrix(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4+) against every box in ``b`` (M, 4+).

    >>> iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]).round(3).tolist()
    [[1.0, 0.333, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 2:3], a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw * ih
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
