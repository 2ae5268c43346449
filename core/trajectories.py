"""Tracks as data: each person's path through a camera's view, kept while the tracker follows it.

The counting agent already follows every person; :func:`observe` records, per live track, the
anchor (bottom-centre of the box, the point counting uses), the box height (the counting band
scales with it), speed, the lines it crossed and the zones it visited, and returns a
:class:`PathSummary` when the track ends -- or, for a long stay, every ``segment_s`` seconds while
it lives, so no summary waits for hours and a worker's memory stays bounded.

Path simplification: Douglas-Peucker (the ``simplification`` package) within ``tolerance_px`` on
(x, y); every kept vertex keeps its time and box height. It runs on chunks of ``CHUNK`` raw points
as they arrive (each chunk starts at the last kept vertex), so the whole path is within the
tolerance of the raw anchors -- chunks never re-simplify an already simplified part, which would
let the error add up -- and a live track holds at most ``CHUNK`` raw points plus its kept vertices.

Only what a counting decision could use is kept: anchors of frames where the track was matched to
a detection (a lost track's predicted box is not where the person was). Tracks never confirmed
(a false positive, a flicker) produce no summary.

``PathBook`` is mutable on purpose: it is appended to on every frame, and copying every path per
frame would cost more than the counting itself. The shell persists it with the camera's runtime
(``to_list``/``from_list``), so a worker that takes over after a crash continues the same
paths and emits the same summaries (``event_id`` = ``camera:track:segment``) for sinks to
deduplicate.

>>> from core.tracking import Track
>>> book = PathBook()
>>> out = []
>>> for k in range(5):
...     box = (10.0 * k, 0.0, 10.0 * k + 20, 100.0)
...     t = Track(7, "tracked", box, (10.0 * k + 10, 100.0), (100.0, 0.0), 0.9, k, k + 1, 0.0)
...     out += observe(book, "cam-1", [t], float(k) / 10)
>>> out
[]
>>> [s.event_id for s in observe(book, "cam-1", [], 0.5)]   # the track ended: its summary
['cam-1:7:0']
>>> s = summary_of("cam-1", LivePath(7, 0, 0.0, [[0.0, 10, 100, 100], [0.4, 50, 100, 100]]), True, 1.0)
>>> s.path, s.last_seen, s.mean_speed
([[0.0, 10, 100, 100], [0.4, 50, 100, 100]], 0.4, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from simplification.cutil import simplify_coords_idx

from core.counting import Crossing, ZoneTransition
from core.tracking import Track

__all__ = [
    "TOLERANCE_PX",
    "SEGMENT_S",
    "CHUNK",
    "LivePath",
    "PathBook",
    "PathSummary",
    "observe",
    "simplify",
    "summary_of",
]

# Douglas-Peucker tolerance. The counting band is at least 3 px (core.counting.hysteresis_band).
# Simulator, 10 min at 12 people/min, every line and zone recounted from the stored paths against
# the live counts: 1 px keeps 71 vertices per track (2.0 kB as JSON) and 2 px 40 (1.3 kB), both
# recounting every line and zone exactly; 3 px keeps 24 but loses 3 of 44 zone entries (a person
# lingering just inside the edge), 4 px 7 of them. So 2 px.
TOLERANCE_PX = 2.0
SEGMENT_S = 60.0  # a long stay is summarised in segments of at most this long
CHUNK = 32  # raw points simplified together


def simplify(points: Sequence[Sequence[float]], tolerance_px: float) -> list[list[float]]:
    """Douglas-Peucker on the (x, y) of ``[t, x, y, h]`` points; the kept points whole, ends kept.

    >>> simplify([[0, 0, 0, 50], [1, 10, 0.4, 50], [2, 20, 0, 50], [3, 20, 10, 50]], 1.0)
    [[0, 0, 0, 50], [2, 20, 0, 50], [3, 20, 10, 50]]
    """
    if len(points) <= 2:
        return [list(p) for p in points]
    xy = np.asarray([(p[1], p[2]) for p in points], dtype=np.float64)
    return [list(points[i]) for i in simplify_coords_idx(xy, tolerance_px)]


@dataclass(slots=True)
class LivePath:
    """One live track's path segment so far (absolute times)."""

    track_id: int
    segment: int
    first_seen: float
    kept: list[list[float]] = field(default_factory=list)  # simplified [t, x, y, h]
    raw: list[list[float]] = field(default_factory=list)  # since the last kept vertex
    length_px: float = 0.0
    max_speed: float = 0.0
    confirmed_at: float | None = None
    lines: list[list[Any]] = field(default_factory=list)  # [line_id, direction, at]
    zones: list[list[Any]] = field(default_factory=list)  # [zone_id, entered_at, dwell_s | None]

    @property
    def last(self) -> list[float] | None:
        if self.raw:
            return self.raw[-1]
        return self.kept[-1] if self.kept else None

    def add(self, point: list[float], speed: float, tolerance_px: float) -> None:
        last = self.last
        if last is not None:
            self.length_px += math.hypot(point[1] - last[1], point[2] - last[2])
        self.max_speed = max(self.max_speed, speed)
        if not self.raw and self.kept:
            self.raw.append(self.kept.pop())  # the chunk starts at the last kept vertex
        self.raw.append(point)
        if len(self.raw) >= CHUNK:
            self.compact(tolerance_px)

    def compact(self, tolerance_px: float) -> None:
        """Simplify the raw points into ``kept``."""
        if self.raw:
            self.kept.extend(simplify(self.raw, tolerance_px))
            self.raw = []

    def to_list(self) -> list[Any]:
        return [
            self.track_id,
            self.segment,
            self.first_seen,
            self.kept,
            self.raw,
            self.length_px,
            self.max_speed,
            self.confirmed_at,
            self.lines,
            self.zones,
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> LivePath:
        return cls(int(v[0]), int(v[1]), float(v[2]), v[3], v[4], float(v[5]), float(v[6]), v[7], v[8], v[9])


@dataclass(slots=True)
class PathBook:
    """The live paths of one camera, by track id."""

    paths: dict[int, LivePath] = field(default_factory=dict)
    tolerance_px: float = TOLERANCE_PX
    segment_s: float = SEGMENT_S

    def __len__(self) -> int:
        return len(self.paths)

    def to_list(self) -> list[Any]:
        return [self.tolerance_px, self.segment_s, [p.to_list() for p in self.paths.values()]]

    @classmethod
    def from_list(cls, v: list[Any] | None) -> PathBook:
        if not v:
            return cls()
        paths = [LivePath.from_list(p) for p in v[2]]
        return cls({p.track_id: p for p in paths}, float(v[0]), float(v[1]))


@dataclass(frozen=True, slots=True)
class PathSummary:
    """A finished path segment; fields match ``models.records.TrackSummary`` (the shell adds
    ``processed_at``). ``path`` vertices are ``[t, x, y, h]`` with ``t`` relative to ``first_seen``."""

    event_id: str
    camera_id: str
    track_id: int
    segment: int
    final: bool
    first_seen: float
    last_seen: float
    path: list[list[float]]
    tolerance_px: float
    confirmed_t: float
    mean_speed: float
    max_speed: float
    lines: list[list[Any]]
    zones: list[list[Any]]


def summary_of(camera_id: str, p: LivePath, final: bool, tolerance_px: float) -> PathSummary:
    """The summary of ``p`` (compacted first); times rounded to 10 ms, pixels to 0.1."""
    p.compact(tolerance_px)
    first = p.kept[0][0]
    last = p.kept[-1][0]
    path = [[round(t - first, 2), round(x, 1), round(y, 1), round(h, 1)] for t, x, y, h in p.kept]
    duration = last - first
    confirmed_t = 0.0 if p.confirmed_at is None else max(round(p.confirmed_at - first, 2), 0.0)
    return PathSummary(
        event_id=f"{camera_id}:{p.track_id}:{p.segment}",
        camera_id=camera_id,
        track_id=p.track_id,
        segment=p.segment,
        final=final,
        first_seen=first,
        last_seen=last,
        path=path,
        tolerance_px=tolerance_px,
        confirmed_t=confirmed_t,
        mean_speed=round(p.length_px / duration, 2) if duration > 0 else 0.0,
        max_speed=round(p.max_speed, 2),
        lines=[list(x) for x in p.lines],
        zones=[list(z) for z in p.zones],
    )


def observe(
    book: PathBook,
    camera_id: str,
    tracks: Iterable[Track],
    frame_time: float,
    crossings: Iterable[Crossing] = (),
    zone_events: Iterable[ZoneTransition] = (),
) -> list[PathSummary]:
    """Fold one frame's tracker output into ``book``; return the summaries finished now.

    ``tracks`` are the tracker's live tracks after the frame (``TrackerState.view()``), the
    crossings and zone events those of the same frame. A track that is no longer live ended.
    """
    paths = book.paths
    live: set[int] = set()
    for tr in tracks:
        tid = tr.track_id
        live.add(tid)
        p = paths.get(tid)
        if p is None:
            p = paths[tid] = LivePath(tid, 0, frame_time)
        if tr.time_since_update == 0.0:
            x1, y1, x2, y2 = tr.box
            speed = math.hypot(tr.velocity[0], tr.velocity[1])
            point = [round(frame_time, 3), round((x1 + x2) * 0.5, 1), round(y2, 1), round(y2 - y1, 1)]
            p.add(point, speed, book.tolerance_px)
        if p.confirmed_at is None and tr.confirmed:
            p.confirmed_at = frame_time
    for c in crossings:
        p = paths.get(c.track_id)
        if p is not None:
            p.lines.append([c.line_id, c.direction, float(c.occurred_at)])
    for z in zone_events:
        p = paths.get(z.track_id)
        if p is None:
            continue
        if z.kind == "enter":
            p.zones.append([z.zone_id, float(z.occurred_at), None])
        else:
            open_visit = next((v for v in reversed(p.zones) if v[0] == z.zone_id and v[2] is None), None)
            if open_visit is not None:
                open_visit[2] = z.dwell_s
            else:  # entered in an earlier segment
                dwell = z.dwell_s or 0.0
                p.zones.append([z.zone_id, float(z.occurred_at) - dwell, z.dwell_s])
    out: list[PathSummary] = []
    for tid in [t for t in paths if t not in live]:
        p = paths.pop(tid)
        if p.confirmed_at is not None and (p.kept or p.raw):
            out.append(summary_of(camera_id, p, True, book.tolerance_px))
    for p in list(paths.values()):
        if p.kept or p.raw:
            start = p.kept[0][0] if p.kept else p.raw[0][0]
            if frame_time - start >= book.segment_s and p.confirmed_at is not None:
                s = summary_of(camera_id, p, False, book.tolerance_px)
                out.append(s)
                tail = p.kept[-1]
                inside = [[z[0], z[1], None] for z in p.zones if z[2] is None]
                paths[p.track_id] = LivePath(
                    p.track_id, p.segment + 1, tail[0], [tail], [], 0.0, 0.0, tail[0], [], inside
                )
    return out
