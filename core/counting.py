"""Line crossings and zone occupancy over tracker output: pure functions, compact state.

Per camera, the counting state is two small integer matrices per line set (rows = the tracker's
track rows, columns = lines) and, per zone set, one integer and one time matrix. It is realigned
to the tracker's rows in every step through ``Tracks.kept_from``, so it needs no ids of its own.

Hysteresis band
    Anchors jitter: a person standing on a line moves its box a few pixels back and forth. Every
    decision uses a band around the line (or zone boundary) of half-width
    ``max(hysteresis_px, hysteresis_frac * box height)`` - by default 3 px or 2 % of the person's
    height, whichever is larger. Rationale: it is an assumption (configurable) that a standing
    person's box jitters by about 1 % of its height, so a +-2 sigma swing stays inside the band;
    on the other side, a walking person (~0.8 heights/s) moves ~3 % of its height per frame at
    25 fps and ~8 % at 10 fps, so confirming a crossing costs at most about one frame of delay.
    Scaling with the box keeps the rule independent of resolution and distance to the camera.
    A camera whose detector is noisier gets a wider band (:class:`CountingParams`).

Line rule (a Schmitt trigger per track and line; the decision is :func:`crossing_decision`)
    A track's *side* of a line is only updated when its anchor is outside the band. A crossing
    ``A -> B`` is counted when the track was last seen beyond the band on side A, then a step of
    its anchor crosses the line segment towards B, and then the anchor is beyond the band on side
    B (often in the same step). A step crosses when its end points lie on different sides of the
    line and the segment's end points on different sides of the step (collinear steps never
    cross). An anchor exactly on the line counts as being on the line's ``out`` side
    (``CountingParams.count_touching``, default), so a passage via a point on the line counts
    once; with ``count_touching=False`` it is on neither side and only proper intersections
    cross (:func:`core.geometry.segments_cross`, the footage reference's rule). So:

    * jitter inside the band never counts, however often the anchor flips sides;
    * each counted leg is a real passage from beyond the band on one side to beyond it on the
      other, and directions alternate per track and line: a person walking in and later out
      through the same door on the same track counts in=1, out=1; in, out, in counts three legs
      only if each one is such a passage;
    * a track that steps over the line and comes back before leaving the band counts nothing; one
      that goes round the end of a line changes side without counting (so out, round the end,
      out again counts two outs: the one exception to alternating directions);
    * a track first seen inside the band has no side yet; its first passage to beyond the band
      only sets its side (where it came from is unknown);
    * only matched detections move a track (a lost track's predicted box does not count), so a
      track re-found after an occlusion is judged on the step from where it was last seen;
    * tentative tracks keep their side but cannot confirm a crossing: it waits, and is counted on
      the frame the track is confirmed if the anchor is then still beyond the band;
    * ``count`` = ``in_only``/``out_only`` filters the events; the state still follows both ways.

    A crossing event carries the frame (seq and time) on which it was confirmed, so one camera's
    events never go back in time; its ``x, y`` is the anchor projected onto the line (where along
    the line the person crossed). Its id is ``camera:line:track:direction:frame_seq``.

Zone rule
    Confirmed tracks enter a zone when their anchor is inside by at least the band and exit when
    it is outside by at least the band (signed distance to the polygon boundary), so a person on
    the edge does not flicker. Occupancy counts the tracks inside, including lost tracks that the
    tracker still keeps (a person briefly occluded inside a zone stays inside); when the tracker
    removes a track (lost longer than its buffer), it exits all its zones on that frame with
    ``dwell_s`` = last time seen - time entered. An exit's dwell is the time since the enter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from core.geometry import step_within_segment
from core.tracking import Tracks

__all__ = [
    "CountingParams",
    "Scene",
    "LineState",
    "ZoneState",
    "Crossing",
    "ZoneTransition",
    "zone_event",
    "ZoneOccupancy",
    "update_lines",
    "crossing_decision",
    "LineDecision",
    "update_zones",
    "hysteresis_band",
    "moved",
    "Moved",
]

COUNT_MODES = ("both", "in_only", "out_only")


@dataclass(frozen=True, slots=True)
class CountingParams:
    """Hysteresis for lines and zones: band half-width = max(px, frac * box height)."""

    hysteresis_px: float = 3.0
    hysteresis_frac: float = 0.02
    # True (default): an anchor exactly on a line belongs to the line's ``out`` side (a half-open
    # rule), so a person whose anchor lands on the line and then leaves it counts once. False:
    # only proper intersections cross (:func:`core.geometry.segments_cross`), the rule the
    # footage reference ``tud-campus/expected_crossings.json`` is derived with; such a passage is
    # then not counted. Detector boxes are floats, where this is rare; sources publishing
    # integer coordinates (simulators, ground truth) hit it often.
    count_touching: bool = True

    def __post_init__(self) -> None:
        if self.hysteresis_px < 0 or self.hysteresis_frac < 0:
            raise ValueError("hysteresis_px and hysteresis_frac must be >= 0")


DEFAULT_COUNTING = CountingParams()


def hysteresis_band(heights: NDArray[np.float64], params: CountingParams = DEFAULT_COUNTING) -> NDArray[np.float64]:
    """Band half-width (px) for boxes of the given heights.

    >>> hysteresis_band(np.array([100.0, 300.0])).tolist()
    [3.0, 6.0]
    """
    return np.maximum(max(params.hysteresis_px, 1e-9), params.hysteresis_frac * heights)


# --------------------------------------------------------------------------- scene


def _field(item: Any, name: str, index: int, default: Any = None) -> Any:
    if isinstance(item, Sequence) and not isinstance(item, str):
        return item[index] if len(item) > index else default
    return getattr(item, name, default)


@dataclass(frozen=True, slots=True, eq=False)
class Scene:
    """A camera's lines and zones compiled to arrays. Build once per camera configuration.

    Accepts ``models.records.CountingLine``/``Zone`` records or plain tuples
    ``(line_id, start, end[, count])`` and ``(zone_id, polygon)``:

    >>> scene = Scene.from_config(lines=[("door", (200, 0), (200, 480), "both")],
    ...                           zones=[("hall", [(0, 0), (100, 0), (100, 100), (0, 100)])])
    >>> scene.line_ids, scene.zone_ids
    (('door',), ('hall',))
    """

    line_ids: tuple[str, ...] = ()
    line_modes: tuple[str, ...] = ()
    line_start: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))
    line_end: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))
    line_inv_len: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    line_length: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    line_delta: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))  # end - start
    # contiguous copies of the columns the hot path reads (numpy is slower on strided views)
    _lsx: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _lsy: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _ldx: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _ldy: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _eax: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _eay: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _eby: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _edge_zone: NDArray[np.int8] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int8))  # one-hot
    zone_ids: tuple[str, ...] = ()
    zone_polygons: tuple[NDArray[np.float64], ...] = ()
    # all zones' edges concatenated; zone z owns edges edge_start[z]:edge_start[z + 1]
    edge_a: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))
    edge_b: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))
    edge_start: NDArray[np.intp] = field(default_factory=lambda: np.zeros(1, dtype=np.intp))
    edge_slope: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # dx/dy, 0 if horizontal

    @classmethod
    def from_config(cls, lines: Iterable[Any] = (), zones: Iterable[Any] = ()) -> Scene:
        line_ids, modes, starts, ends = [], [], [], []
        for i, line in enumerate(lines):
            lid = str(_field(line, "line_id", 0))
            start = np.asarray(_field(line, "start", 1), dtype=np.float64)
            end = np.asarray(_field(line, "end", 2), dtype=np.float64)
            mode = _field(line, "count", 3, "both") or "both"
            if start.shape != (2,) or end.shape != (2,) or np.array_equal(start, end):
                raise ValueError(f"lines[{i}] ({lid!r}): start and end must be two distinct [x, y] points")
            if mode not in COUNT_MODES:
                raise ValueError(f"lines[{i}] ({lid!r}): count must be one of {COUNT_MODES}, got {mode!r}")
            if lid in line_ids:
                raise ValueError(f"lines[{i}]: duplicate line_id {lid!r}")
            line_ids.append(lid)
            modes.append(mode)
            starts.append(start)
            ends.append(end)
        zone_ids, polys = [], []
        for i, zone in enumerate(zones):
            zid = str(_field(zone, "zone_id", 0))
            poly = np.asarray(_field(zone, "polygon", 1), dtype=np.float64)
            if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
                raise ValueError(f"zones[{i}] ({zid!r}): polygon needs at least 3 [x, y] points")
            if zid in zone_ids:
                raise ValueError(f"zones[{i}]: duplicate zone_id {zid!r}")
            zone_ids.append(zid)
            polys.append(poly)
        s = np.array(starts).reshape(-1, 2)
        e = np.array(ends).reshape(-1, 2)
        d = e - s
        length = np.hypot(d[:, 0], d[:, 1])
        if polys:
            edge_a = np.concatenate(polys)
            edge_b = np.concatenate([np.roll(p, -1, axis=0) for p in polys])
            edge_start = np.concatenate([[0], np.cumsum([len(p) for p in polys])]).astype(np.intp)
            ed = edge_b - edge_a
            flat = ed[:, 1] == 0.0
            slope = np.where(flat, 0.0, ed[:, 0] / np.where(flat, 1.0, ed[:, 1]))
        else:
            edge_a = edge_b = np.zeros((0, 2))
            edge_start = np.zeros(1, dtype=np.intp)
            slope = np.zeros(0)
        return cls(
            line_ids=tuple(line_ids),
            line_modes=tuple(modes),
            line_start=s,
            line_end=e,
            line_inv_len=1.0 / length,
            line_length=length,
            line_delta=d,
            zone_ids=tuple(zone_ids),
            zone_polygons=tuple(polys),
            edge_a=edge_a,
            edge_b=edge_b,
            edge_start=edge_start,
            edge_slope=slope,
            _lsx=s[:, 0].copy(),
            _lsy=s[:, 1].copy(),
            _ldx=d[:, 0].copy(),
            _ldy=d[:, 1].copy(),
            _eax=edge_a[:, 0].copy(),
            _eay=edge_a[:, 1].copy(),
            _eby=edge_b[:, 1].copy(),
            _edge_zone=np.repeat(np.eye(len(polys), dtype=np.int8), [len(p) for p in polys], axis=0),
        )

    def line_orientation(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, L) cross product ``(end - start) x (p - start)`` for points ``(x, y)``: > 0 on the
        ``in`` side. Same arithmetic as :func:`core.geometry.side_of_line`, so exact zeros agree."""
        a = y[:, None] - self._lsy
        a *= self._ldx
        b = x[:, None] - self._lsx
        b *= self._ldy
        a -= b
        return a

    def line_distances(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, L) signed distance of each (x, y) point to each line (positive on the ``in`` side)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return self.line_orientation(p[:, 0], p[:, 1]) * self.line_inv_len

    def inside_zones(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        """(N, Z) even-odd point-in-polygon of points ``(x, y)`` for every zone at once."""
        ay = self._eay
        py = y[:, None]
        straddles = (ay > py) != (self._eby > py)
        xc = py - ay
        xc *= self.edge_slope
        xc += self._eax
        straddles &= x[:, None] < xc  # the ray from the point to the right crosses the edge
        if len(self.zone_ids) == 1:
            return np.logical_xor.reduce(straddles, axis=1)[:, None]
        return ((straddles.view(np.int8) @ self._edge_zone) & 1).view(bool)  # parity per zone (mod 256)

    def zone_boundary_distances(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, Z) unsigned distance of points ``(x, y)`` to each zone's boundary."""
        a, b = self.edge_a, self.edge_b
        d = b - a
        dd = np.einsum("ij,ij->i", d, d)
        dd[dd == 0.0] = 1.0
        relx = np.subtract.outer(x, a[:, 0])
        rely = np.subtract.outer(y, a[:, 1])
        t = np.clip((relx * d[:, 0] + rely * d[:, 1]) / dd, 0.0, 1.0)
        ex = relx - t * d[:, 0]
        ey = rely - t * d[:, 1]
        return np.sqrt(np.minimum.reduceat(ex * ex + ey * ey, self.edge_start[:-1], axis=1))

    def zone_distances(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, Z) signed distance of each (x, y) point to each zone's boundary (positive inside)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        dist = self.zone_boundary_distances(p[:, 0], p[:, 1])
        return np.where(self.inside_zones(p[:, 0], p[:, 1]), dist, -dist)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Crossing:
    """A confirmed line crossing; fields match ``models.records.CrossingEvent`` (the shell adds
    ``processed_at``)."""

    event_id: str
    camera_id: str
    line_id: str
    track_id: int
    direction: str  # in | out
    frame_seq: int
    occurred_at: float
    x: float
    y: float
    confidence: float


@dataclass(frozen=True, slots=True)
class ZoneTransition:
    """A track entering or leaving a zone; fields match ``models.records.ZoneEvent``."""

    event_id: str
    camera_id: str
    zone_id: str
    track_id: int
    kind: str  # enter | exit
    frame_seq: int
    occurred_at: float
    dwell_s: float | None = None


@dataclass(frozen=True, slots=True)
class ZoneOccupancy:
    """Tracks inside one zone after a frame (``OccupancySample`` without the config-derived fields)."""

    zone_id: str
    at: float
    count: int
    avg_dwell_s: float | None
    track_ids: tuple[int, ...]


# --------------------------------------------------------------------------- state


def _realign(matrix: NDArray[Any], kept_from: NDArray[np.intp] | None, fill: Any) -> NDArray[Any]:
    """Rows of ``matrix`` for the new track rows (a copy); new tracks get ``fill``."""
    if kept_from is None:
        return matrix.copy()
    old = kept_from >= 0
    if old.all():
        return matrix[kept_from]
    out = np.full((len(kept_from), matrix.shape[1]), fill, dtype=matrix.dtype)
    out[old] = matrix[kept_from[old]]
    return out


def _remap_columns(matrix: NDArray[Any], old_ids: tuple[str, ...], new_ids: tuple[str, ...], fill: Any) -> NDArray[Any]:
    """Columns for a changed set of line/zone ids: kept ids keep their state, new ones start at ``fill``."""
    if old_ids == new_ids:
        return matrix
    out = np.full((matrix.shape[0], len(new_ids)), fill, dtype=matrix.dtype)
    for j, key in enumerate(new_ids):
        if key in old_ids:
            out[:, j] = matrix[:, old_ids.index(key)]
    return out


def _empty_int8() -> NDArray[np.int8]:
    return np.zeros((0, 0), dtype=np.int8)


@dataclass(frozen=True, slots=True, eq=False)
class LineState:
    """Per track row and line: ``side`` (-1 out side, 0 unknown, +1 in side; last seen beyond
    the band) and ``pending`` (the side the last proper crossing went towards, 0 if none since)."""

    line_ids: tuple[str, ...] = ()
    side: NDArray[np.int8] = field(default_factory=_empty_int8)
    pending: NDArray[np.int8] = field(default_factory=_empty_int8)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineState):
            return NotImplemented
        return (
            self.line_ids == other.line_ids
            and np.array_equal(self.side, other.side)
            and np.array_equal(self.pending, other.pending)
        )


@dataclass(frozen=True, slots=True, eq=False)
class ZoneState:
    """Per track row and zone: ``inside`` (-1 outside, 0 unknown, +1 inside; last seen beyond
    the band) and ``entered_at`` (frame time of the enter, NaN when not inside)."""

    zone_ids: tuple[str, ...] = ()
    inside: NDArray[np.int8] = field(default_factory=_empty_int8)
    entered_at: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ZoneState):
            return NotImplemented
        return (
            self.zone_ids == other.zone_ids
            and np.array_equal(self.inside, other.inside)
            and np.array_equal(self.entered_at, other.entered_at, equal_nan=True)
        )


# --------------------------------------------------------------------------- steps


class Moved(NamedTuple):
    """The tracks matched in a step (``idx``: a slice when all were) with their anchors,
    hysteresis bands (a column) and whether each is confirmed (not tentative). Computed once per
    frame and shared by lines and zones."""

    idx: NDArray[np.intp] | slice
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    band: NDArray[np.float64]
    confirmed: NDArray[np.bool_]


def moved(tracks: Tracks, params: CountingParams = DEFAULT_COUNTING) -> Moved:
    """Anchors and bands of the tracks matched in this step."""
    n_moved = int(np.count_nonzero(tracks.matched))
    idx: NDArray[np.intp] | slice = slice(None) if n_moved == len(tracks.matched) else tracks.matched.nonzero()[0]
    det = tracks.boxes(idx)
    x = det[0] + det[2]
    x *= 0.5
    band = det[3] - det[1]
    band *= params.hysteresis_frac
    np.maximum(band, max(params.hysteresis_px, 1e-9), out=band)  # > 0: on the line is never beyond it
    return Moved(idx, x, det[3], band[:, None], tracks.confirmed[idx])


def update_lines(
    state: LineState,
    tracks: Tracks,
    scene: Scene,
    camera_id: str,
    frame_seq: int,
    params: CountingParams = DEFAULT_COUNTING,
    motion: Moved | None = None,
) -> tuple[LineState, list[Crossing]]:
    """Advance the line state by one tracker step; return the new state and confirmed crossings.
    ``motion`` is :func:`moved` of ``tracks`` if the caller has it already."""
    # states are immutable: their arrays are shared until the rows change, never written to
    side = _remap_columns(state.side, state.line_ids, scene.line_ids, 0)
    pending = _remap_columns(state.pending, state.line_ids, scene.line_ids, 0)
    if tracks.kept_from is not None:
        side = _realign(side, tracks.kept_from, 0)
        pending = _realign(pending, tracks.kept_from, 0)
    if not scene.line_ids or not np.count_nonzero(tracks.matched):
        return LineState(scene.line_ids, side, pending), []
    idx, x, y, band, confirmed = motion or moved(tracks, params)
    px, py = tracks.prev_anchors(idx)
    n = len(x)
    both = scene.line_orientation(np.concatenate([x, px]), np.concatenate([y, py]))
    orient = both[:n]  # distance to the line times its length, > 0 on the in side
    prev_orient = both[n:]  # the same before this step (NaN for tracks born in it)
    reach = band * scene.line_length  # the band in the same units

    # which steps crossed a line segment: end points on different sides of the line (on the line =
    # its out side with count_touching), then the segment's extent (a few pairs at most)
    if params.count_touching:
        stepped = (prev_orient > 0) != (orient > 0)
        if tracks.any_born:
            stepped &= prev_orient == prev_orient  # not NaN
    else:
        stepped = prev_orient * orient < 0
    if np.count_nonzero(stepped):
        for i, j in zip(*stepped.nonzero(), strict=True):
            if not step_within_segment((px[i], py[i]), (x[i], y[i]), scene.line_start[j], scene.line_end[j]):
                stepped[i, j] = False

    s = side[idx]
    p = pending[idx]
    new_side, new_pending, emit = crossing_decision(s, p, orient, reach, stepped, confirmed)
    if new_pending is not p:
        pending = _replace_rows(pending, idx, new_pending)
    events: list[Crossing] = []
    if new_side is not s:  # (nothing is counted without deciding a side)
        side = _replace_rows(side, idx, new_side)
        if np.count_nonzero(emit):
            events = _crossings(tracks, idx, emit, x, y, scene, camera_id, frame_seq)
    return LineState(scene.line_ids, side, pending), events


def _replace_rows(matrix: NDArray[Any], idx: NDArray[np.intp] | slice, rows: NDArray[Any]) -> NDArray[Any]:
    """``matrix`` with its rows ``idx`` replaced by ``rows``, as a new array (``matrix`` may be a
    state's, so it is never written to). A slice is every row (:func:`moved`)."""
    if isinstance(idx, slice):
        return rows
    out = matrix.copy()
    out[idx] = rows
    return out


_IN, _OUT, _NONE = np.int8(1), np.int8(-1), np.int8(0)


class LineDecision(NamedTuple):
    """What :func:`crossing_decision` decided for (tracks, lines): the new ``side`` and
    ``pending`` (as in :class:`LineState`) and ``emit``: +1 where a crossing towards the line's
    ``in`` side is counted now, -1 towards its ``out`` side, 0 elsewhere (int8, (n, L))."""

    side: NDArray[np.int8]
    pending: NDArray[np.int8]
    emit: NDArray[np.int8]


def crossing_decision(
    side: NDArray[np.int8],
    pending: NDArray[np.int8],
    orient: NDArray[np.float64],
    reach: NDArray[np.float64],
    stepped: NDArray[np.bool_],
    confirmed: NDArray[np.bool_],
) -> LineDecision:
    """The line rule: one Schmitt-trigger step for every (track, line) pair at once. Pure.

    Arguments, for ``n`` tracks matched in this step and ``L`` lines:

    * ``side`` (n, L) int8: the side each track was last seen beyond the band on (+1 the line's
      ``in`` side, -1 its ``out`` side, 0 not yet known);
    * ``pending`` (n, L) int8: the side the last step over the line segment went towards, 0 if
      none since the track was last beyond the band on its remembered side (a half crossing);
    * ``orient`` (n, L): the anchor's signed distance to the line now (> 0 on the ``in`` side),
      in any unit (:meth:`Scene.line_orientation` uses distance times line length);
    * ``reach`` (n, L) or (n, 1), > 0: the band's half-width in the same unit;
    * ``stepped`` (n, L) bool: the anchor's step from where the track was last seen crossed the
      line segment (the geometry, computed by :func:`update_lines` with the ``count_touching``
      convention: a step onto the line goes to its out side);
    * ``confirmed`` (n,) bool: the track is confirmed (not tentative).

    The rule: a step over the segment sets ``pending`` to the side it went towards. A pair is
    *decided* when its anchor is beyond the band (``|orient| >= reach``) on the side opposite the
    remembered one, or on either side while the side is unknown. A decided pair whose pending
    half crossing points to where the anchor now is is a crossing: counted (``emit``) if the
    track is confirmed; if it is tentative nothing changes, so the crossing waits and is counted
    on the first frame the track is confirmed while still beyond the band there. Every other
    decided pair (a counted crossing, a first side, a track that went round the end of the line)
    takes the far side as its side and clears ``pending``. Finally, an anchor back beyond the band
    on its remembered side forgets any half crossing. An anchor on the line (``orient == 0``) is
    never beyond the band, and a far side is +1 only for ``orient > 0``.

    The inputs are never written to; an output that did not change *is* the input object.

    One track and one line, band 3 (``side, pending, emit`` after the step):

    >>> def decide(side, pending, orient, stepped=False, confirmed=True):
    ...     d = crossing_decision(np.array([[side]], np.int8), np.array([[pending]], np.int8),
    ...                           np.array([[orient]]), np.array([[3.0]]), np.array([[stepped]]),
    ...                           np.array([confirmed]))
    ...     return d.side.item(), d.pending.item(), d.emit.item()
    >>> decide(-1, 0, 1.0, stepped=True)  # stepped over to the in side, still inside the band
    (-1, 1, 0)
    >>> decide(-1, 1, 5.0)  # then beyond it: counted in
    (1, 0, 1)
    >>> decide(-1, 1, 5.0, confirmed=False)  # the same for a tentative track: the crossing waits
    (-1, 1, 0)
    >>> decide(-1, 1, -5.0)  # back beyond the band on its own side: the half crossing is forgotten
    (-1, 0, 0)
    >>> decide(-1, 0, 5.0)  # round the end of the line: new side, nothing counted
    (1, 0, 0)
    >>> decide(0, 0, -5.0)  # first time beyond the band: sets the side only
    (-1, 0, 0)
    """
    s, p = side, pending
    far_side = None  # the side the anchor is on now: +1 in, -1 out (on the line: out)
    if np.count_nonzero(stepped):
        far_side = np.where(orient > 0, _IN, _OUT)
        p = np.where(stepped, far_side, p)

    # beyond the band on the side opposite the remembered one, or the first time beyond it
    decide = orient * s <= -reach  # false where s == 0 (reach > 0)
    unknown = s == 0
    if np.count_nonzero(unknown):
        decide |= unknown & (np.abs(orient) >= reach)
    if np.count_nonzero(decide):
        if far_side is None:
            far_side = np.where(orient > 0, _IN, _OUT)
        flip = decide & ~unknown
        through = flip & (p == far_side)
        counted = through & confirmed[:, None]
        wait = through & ~counted  # tentative: keep the half crossing until the track is confirmed
        settle = decide & ~wait  # counted, first side (s == 0), or round the end of the line
        s = np.where(settle, far_side, s)
        p = np.where(settle, _NONE, p)
        emit = np.where(counted, far_side, _NONE) if np.count_nonzero(counted) else counted.view(np.int8)
    else:
        emit = decide.view(np.int8)  # all zero
    if np.count_nonzero(p):  # beyond the band on its own side again: forget a half crossing
        forget = orient * s >= reach
        if np.count_nonzero(forget):
            p = np.where(forget, _NONE, p)
    return LineDecision(s, p, emit)


def _crossings(
    tracks: Tracks,
    idx: NDArray[np.intp] | slice,
    emit: NDArray[np.int8],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    scene: Scene,
    camera_id: str,
    frame_seq: int,
) -> list[Crossing]:
    events = []
    cols = np.arange(len(tracks))[idx]
    ids = tracks.ids
    confidence = tracks.confidences()
    t = tracks.frame_time
    for i, j in zip(*emit.nonzero(), strict=True):
        direction = "in" if emit[i, j] > 0 else "out"
        mode = scene.line_modes[j]
        if (mode == "in_only" and direction != "in") or (mode == "out_only" and direction != "out"):
            continue
        cx, cy = _project(float(x[i]), float(y[i]), scene.line_start[j], scene.line_end[j])
        col = cols[i]
        track_id = int(ids[col])
        line_id = scene.line_ids[j]
        events.append(
            Crossing(
                event_id=f"{camera_id}:{line_id}:{track_id}:{direction}:{frame_seq}",
                camera_id=camera_id,
                line_id=line_id,
                track_id=track_id,
                direction=direction,
                frame_seq=frame_seq,
                occurred_at=t,
                x=cx,
                y=cy,
                confidence=float(confidence[col]),
            )
        )
    return events


def _project(x: float, y: float, a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[float, float]:
    ax, ay, dx, dy = float(a[0]), float(a[1]), float(b[0] - a[0]), float(b[1] - a[1])
    t = ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)
    t = min(max(t, 0.0), 1.0)
    return ax + t * dx, ay + t * dy


def update_zones(
    state: ZoneState,
    tracks: Tracks,
    scene: Scene,
    camera_id: str,
    frame_seq: int,
    params: CountingParams = DEFAULT_COUNTING,
    motion: Moved | None = None,
) -> tuple[ZoneState, list[ZoneTransition], list[ZoneOccupancy]]:
    """Advance the zone state by one tracker step; return the new state, enter/exit events and
    the occupancy of every zone after this frame. ``motion`` as for :func:`update_lines`."""
    old_inside = _remap_columns(state.inside, state.zone_ids, scene.zone_ids, 0)
    old_entered = _remap_columns(state.entered_at, state.zone_ids, scene.zone_ids, np.nan)
    inside = _realign(old_inside, tracks.kept_from, 0)
    entered = _realign(old_entered, tracks.kept_from, np.nan)
    if not scene.zone_ids:
        return ZoneState(scene.zone_ids, inside, entered), [], []
    t = tracks.frame_time
    events: list[ZoneTransition] = []

    # tracks the tracker dropped in this step leave every zone they were in
    if len(tracks.removed_from):
        removed_from = tracks.removed_from.tolist()
        gone = zip(removed_from, tracks.removed_ids.tolist(), tracks.removed_last_seen.tolist(), strict=True)
        for i, track_id, last_seen in gone:
            if i < len(old_inside):
                for j in (old_inside[i] == 1).nonzero()[0]:
                    dwell = max(last_seen - float(old_entered[i, j]), 0.0)
                    events.append(zone_event(camera_id, scene.zone_ids[j], track_id, "exit", frame_seq, t, dwell))

    if np.count_nonzero(tracks.matched):
        idx, x, y, band, confirmed = motion or moved(tracks, params)  # tentative tracks are in no zone
        if np.count_nonzero(confirmed) == len(confirmed):
            upd = np.arange(len(tracks))[idx]
        else:
            upd = np.arange(len(tracks))[idx][confirmed]
            x, y, band = x[confirmed], y[confirmed], band[confirmed]
    else:
        upd = np.zeros(0, dtype=np.intp)
    if len(upd):
        now_in = scene.inside_zones(x, y)
        zin = inside[upd]
        # only pairs whose state could change need the (costlier) distance to the boundary
        maybe = zin != now_in.view(np.int8) * 2 - 1  # inside now but not remembered so, or the reverse
        if np.count_nonzero(maybe):
            rows = maybe.any(axis=1).nonzero()[0]
            far = scene.zone_boundary_distances(x[rows], y[rows]) >= band[rows]
            far &= maybe[rows]
            for r, j in zip(*far.nonzero(), strict=True):
                i = rows[r]
                col = upd[i]
                track_id = int(tracks.ids[col])
                if now_in[i, j]:
                    inside[col, j] = 1
                    entered[col, j] = t
                    events.append(zone_event(camera_id, scene.zone_ids[j], track_id, "enter", frame_seq, t))
                else:
                    if zin[i, j] == 1:
                        dwell = max(t - float(entered[col, j]), 0.0)
                        events.append(zone_event(camera_id, scene.zone_ids[j], track_id, "exit", frame_seq, t, dwell))
                    inside[col, j] = -1
                    entered[col, j] = np.nan

    occupancy = []
    members_all = inside == 1
    for j, zid in enumerate(scene.zone_ids):
        col = members_all[:, j].nonzero()[0]
        if len(col):
            avg = max(t - float(np.add.reduce(entered[col, j])) / len(col), 0.0)
            members = tuple(tracks.ids[col].tolist())
        else:
            avg, members = None, ()
        occupancy.append(ZoneOccupancy(zone_id=zid, at=t, count=len(members), avg_dwell_s=avg, track_ids=members))
    return ZoneState(scene.zone_ids, inside, entered), events, occupancy


def zone_event(
    camera_id: str, zone_id: str, track_id: int, kind: str, frame_seq: int, t: float, dwell: float | None = None
) -> ZoneTransition:
    """One zone ``enter``/``exit`` event with its deterministic id (a NaN dwell is no dwell)."""
    return ZoneTransition(
        event_id=f"{camera_id}:{zone_id}:{track_id}:{kind}:{frame_seq}",
        camera_id=camera_id,
        zone_id=zone_id,
        track_id=track_id,
        kind=kind,
        frame_seq=frame_seq,
        occurred_at=t,
        dwell_s=None if dwell is None or math.isnan(dwell) else dwell,
    )
