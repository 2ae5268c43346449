"""Retroactive counting: a line or zone that was not configured, counted over stored paths.

The stored paths (:mod:`core.trajectories`, table ``track_summaries``) are replayed vertex by
vertex through the *same* rules the live counter uses: :func:`core.counting.crossing_decision`
for lines (hysteresis band from the stored box heights, ``count_touching``, the segment check of
:func:`core.geometry.step_within_segment`, tentative tracks waiting until ``confirmed_t``) and the
zone rule of :func:`core.counting.update_zones` (enter/exit beyond the band; a track that ends
inside exits). So a recount differs from what a live line would have counted only through the
simplification of the paths:

Tolerance
    A path keeps the raw anchors' vertices within ``tolerance_px`` (2 px by default) of the
    simplified polyline, and the rules see the vertices only. A decision can therefore differ
    where the raw path came within ``tolerance_px`` of the band's edge (the band is at least
    3 px: a person who stepped just past the band and back), or where a step's crossing point lies
    within ``tolerance_px`` of the line's end; and the time of a crossing is that of the vertex
    where the live rule would have decided, or a later one (at most the time to the next kept
    vertex; straight walking keeps few vertices). Lost frames are not stored, as the live
    rule does not use them either. Measured on the simulator (tests/integration/
    test_trajectories.py, bench/recount.py): see core/README.md.

Vectorised over paths: all paths advance one vertex per step (``crossing_decision`` on every
path at once), so a month of one camera's tracks costs a few thousand numpy calls, not one per
vertex and path.

>>> p = StoredPath(track_id=1, t=np.array([0.0, 1.0, 2.0]), x=np.array([100.0, 200.0, 300.0]),
...                y=np.array([300.0, 300.0, 300.0]), h=np.array([100.0, 100.0, 100.0]), confirmed_at=0.0)
>>> [(e.direction, e.at) for e in recount_line([p], (200.0, 0.0), (200.0, 480.0))]
[('out', 2.0)]
>>> [(e.direction, e.at) for e in recount_zone([p], [(150, 250), (250, 250), (250, 350), (150, 350)])]
[('enter', 1.0), ('exit', 2.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from core.counting import DEFAULT_COUNTING, CountingParams, Scene, crossing_decision, hysteresis_band
from core.geometry import step_within_segment

__all__ = ["StoredPath", "RecountEvent", "join_segments", "recount_line", "recount_zone", "bucket_counts"]


@dataclass(frozen=True, slots=True)
class StoredPath:
    """One track's whole path: absolute times ``t``, anchors ``x, y``, box heights ``h``."""

    track_id: int
    t: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    h: NDArray[np.float64]
    confirmed_at: float

    def __len__(self) -> int:
        return len(self.t)


class RecountEvent(NamedTuple):
    at: float
    direction: str  # in | out (lines), enter | exit (zones)
    track_id: int


def join_segments(
    rows: Iterable[tuple[int, int, float, Sequence[float], Sequence[float], Sequence[float], Sequence[float], float]],
) -> list[StoredPath]:
    """Stored summary rows ``(track_id, segment, first_seen, ts, xs, ys, hs, confirmed_t)`` -> one
    path per track (a long stay is stored in segments; each segment starts where the last ended).

    >>> [len(p) for p in join_segments([(4, 1, 10.0, [0, 1], [2, 3], [0, 0], [9, 9], 0.0),
    ...                                 (4, 0, 0.0, [0, 10], [1, 2], [0, 0], [9, 9], 0.5)])]
    [3]
    """
    by_track: dict[int, list[tuple[Any, ...]]] = {}
    for track_id, segment, first_seen, ts, xs, ys, hs, confirmed_t in rows:
        by_track.setdefault(int(track_id), []).append((int(segment), float(first_seen), ts, xs, ys, hs, confirmed_t))
    out = []
    for track_id, segs in by_track.items():
        segs.sort(key=lambda s: s[0])
        t, x, y, h = [], [], [], []
        for k, (_, first, ts, xs, ys, hs, _c) in enumerate(segs):
            skip = 1 if k and t and abs(first + float(ts[0]) - t[-1]) < 1e-3 else 0  # the shared vertex
            t.extend(first + float(v) for v in ts[skip:])
            x.extend(xs[skip:])
            y.extend(ys[skip:])
            h.extend(hs[skip:])
        first_seg = segs[0]
        confirmed_at = first_seg[1] + float(first_seg[6]) if first_seg[0] == 0 else t[0]
        arrays = (np.asarray(v, dtype=np.float64) for v in (t, x, y, h))
        out.append(StoredPath(track_id, *arrays, confirmed_at))
    return out


def _padded(paths: Sequence[StoredPath]) -> tuple[list[StoredPath], NDArray[np.intp], tuple[NDArray[np.float64], ...]]:
    """Paths sorted longest first (so the paths still going at vertex k are a prefix), their
    lengths and (n, L) matrices t, x, y, h padded with NaN."""
    order = sorted(paths, key=len, reverse=True)
    n, width = len(order), (len(order[0]) if order else 0)
    lens = np.array([len(p) for p in order], dtype=np.intp)
    mats = tuple(np.full((n, width), np.nan) for _ in range(4))
    for i, p in enumerate(order):
        for m, v in zip(mats, (p.t, p.x, p.y, p.h), strict=True):
            m[i, : len(p)] = v
    return order, lens, mats


def recount_line(
    paths: Sequence[StoredPath],
    start: tuple[float, float],
    end: tuple[float, float],
    params: CountingParams = DEFAULT_COUNTING,
    count: str = "both",
) -> list[RecountEvent]:
    """Crossings of the directed line ``start -> end`` by ``paths``, as the live rule counts them."""
    scene = Scene.from_config(lines=[("recount", start, end, count)])
    if not paths:
        return []
    order, lens, (T, X, Y, H) = _padded(paths)
    confirmed_at = np.array([p.confirmed_at for p in order])
    side = np.zeros((len(order), 1), dtype=np.int8)
    pending = np.zeros_like(side)
    prev_orient = np.full((len(order), 1), np.nan)
    a, b = scene.line_start[0], scene.line_end[0]
    events: list[RecountEvent] = []
    for k in range(T.shape[1]):
        m = int(np.count_nonzero(lens > k))  # paths with a vertex k: rows 0..m-1
        x, y = X[:m, k], Y[:m, k]
        orient = scene.line_orientation(x, y)
        reach = hysteresis_band(H[:m, k], params)[:, None] * scene.line_length
        before = prev_orient[:m]
        # as update_lines: with count_touching on the line is its out side; NaN: no step yet
        touching = ((before > 0) != (orient > 0)) & (before == before)
        stepped = touching if params.count_touching else before * orient < 0
        for i in stepped[:, 0].nonzero()[0]:
            if not step_within_segment((X[i, k - 1], Y[i, k - 1]), (x[i], y[i]), a, b):
                stepped[i, 0] = False
        confirmed = T[:m, k] >= confirmed_at[:m]
        s, p, emit = crossing_decision(side[:m], pending[:m], orient, reach, stepped, confirmed)
        side[:m], pending[:m], prev_orient[:m] = s, p, orient
        for i in emit[:, 0].nonzero()[0]:
            direction = "in" if emit[i, 0] > 0 else "out"
            if count == "both" or count == f"{direction}_only":
                events.append(RecountEvent(float(T[i, k]), direction, order[i].track_id))
    events.sort()
    return events


def recount_zone(
    paths: Sequence[StoredPath], polygon: Sequence[Sequence[float]], params: CountingParams = DEFAULT_COUNTING
) -> list[RecountEvent]:
    """Entries and exits of the polygon by ``paths``, as the live zone rule counts them: a
    confirmed track enters when its anchor is inside by at least the band, exits when outside by
    at least the band, and a track that ends inside exits at its last vertex."""
    scene = Scene.from_config(zones=[("recount", polygon)])
    if not paths:
        return []
    order, lens, (T, X, Y, H) = _padded(paths)
    confirmed_at = np.array([p.confirmed_at for p in order])
    inside = np.zeros(len(order), dtype=bool)
    events: list[RecountEvent] = []
    for k in range(T.shape[1]):
        m = int(np.count_nonzero(lens > k))
        dist = scene.zone_distances(np.stack([X[:m, k], Y[:m, k]], axis=1))[:, 0]
        band = hysteresis_band(H[:m, k], params)
        ok = T[:m, k] >= confirmed_at[:m]
        enter = ok & ~inside[:m] & (dist >= band)
        leave = ok & inside[:m] & (dist <= -band)
        for i in enter.nonzero()[0]:
            events.append(RecountEvent(float(T[i, k]), "enter", order[i].track_id))
        for i in leave.nonzero()[0]:
            events.append(RecountEvent(float(T[i, k]), "exit", order[i].track_id))
        inside[:m] = (inside[:m] | enter) & ~leave
        ended = inside[:m] & (lens[:m] == k + 1)
        for i in ended.nonzero()[0]:
            events.append(RecountEvent(float(T[i, k]), "exit", order[i].track_id))
    events.sort()
    return events


def bucket_counts(events: Iterable[RecountEvent], interval_s: float) -> dict[float, dict[str, int]]:
    """Counts per interval start (epoch seconds, aligned to ``interval_s``) and direction.

    >>> bucket_counts([RecountEvent(61.0, "in", 1), RecountEvent(65.0, "in", 2), RecountEvent(130.0, "out", 3)], 60)
    {60.0: {'in': 2}, 120.0: {'out': 1}}
    """
    out: dict[float, dict[str, int]] = {}
    for e in events:
        start = float(e.at // interval_s * interval_s)
        per = out.setdefault(start, {})
        per[e.direction] = per.get(e.direction, 0) + 1
    return out
