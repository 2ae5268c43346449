"""A deterministic detection simulator: virtual cameras, people walking, a noisy detector, ground truth.

Each virtual camera has a 1280x720 view with one or two directed counting lines and one zone
(with a capacity). People arrive as a Poisson process, walk curved paths between the edges of the
view at human speeds (pixel speed follows the perspective: people are smaller, so slower on
screen, further up the frame), and some of them linger in the zone or walk up to a line and turn
back. A detector model turns each person into a box per frame with jitter, a confidence, missed
frames, short occlusions (also behind nearer people) and the odd one-frame false positive.

Ground truth is what people did: a person's dense path crossing a line segment (direction by the
side of the arrow ``start -> end``, as :class:`models.records.CountingLine` defines ``in``) and
entering the zone. It is counted on the first frame at or after the moment it happened, so
:meth:`Simulation.truth` always covers exactly the frames generated so far. Paths are planned so
that the truth is unambiguous: a person is never within ``near_px`` of a line (or the zone's edge)
without passing it cleanly, never passes near a line's ends, and only crosses where the whole box
is in view. Nothing here uses the counting core.

Deterministic: the same ``seed`` gives the same configs, frames and truth. Camera ``i`` draws from
its own random stream, so its frames do not depend on how many cameras are simulated.

>>> sim = Simulation(cameras=2, fps=10, seed=7)
>>> [c.camera_id for c in sim.configs()]
['sim-0001', 'sim-0002']
>>> frames = list(sim.frames(5.0))
>>> len(frames), frames[0].model_name, frames[0].frame_width
(100, 'simulator', 1280)
>>> all(a.captured_at <= b.captured_at for a, b in zip(frames, frames[1:]))
True
>>> sorted(sim.truth()["sim-0001"]["line-1"])
['in', 'out']
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from models.records import CameraConfig, CountingLine, FrameDetections, Zone

__all__ = [
    "DEFAULT_START",
    "SimParams",
    "Simulation",
    "polygon_signed_distance",
]

DEFAULT_START = 1_704_067_200.0  # 2024-01-01T00:00:00Z: fixed so that a seed alone fixes every record
MODEL_NAME = "simulator"
MODEL_VERSION = "1"
PERSON_HEIGHT_M = 1.7
_EDGE_WEIGHTS = (0.3, 0.3, 0.15, 0.25)  # where people enter and leave: left, right, bottom, far end


@dataclass(frozen=True)
class SimParams:
    """Scene, behaviour and detector-noise settings (all per camera)."""

    frame_width: int = 1280
    frame_height: int = 720
    # perspective: box height of an average person with the feet at the top / bottom of the view
    height_far_px: float = 50.0
    height_near_px: float = 210.0
    horizon_y: float = 100.0  # feet at or above this row are as small as at the far end
    arrivals_per_min: float = 12.0  # Poisson rate of people entering the view
    warm_up_s: float = 20.0  # people already walking when the first frame is taken
    speed_mps: tuple[float, float] = (1.35, 0.2)  # mean, sd of walking speed (clipped to 0.8..2.0)
    through_prob: float = 0.75  # share of the others who walk from one side of the main line to the other
    linger_prob: float = 0.25  # share of people who stop in the zone
    linger_s: tuple[float, float] = (3.0, 25.0)
    approach_prob: float = 0.15  # share of people who walk up to a line and turn back
    approach_px: tuple[float, float] = (20.0, 60.0)  # how close they come
    near_px: float = 15.0  # no one is this close to a line or the zone's edge without passing it
    clear_px: float = 5.0  # a passage starts/counts when the feet are this far before/past the line / edge
    max_turn_rad: float = math.pi / 4  # most a path turns within ~0.8 body heights of a line it crosses
    end_margin_px: float = 40.0  # no one passes this close to a line's ends
    # detector model
    miss_prob: float = 0.05  # independent missed detections per person and frame
    occlusions_per_s: float = 0.08  # short occlusions (pillars, carts) per person and second
    occlusion_s: tuple[float, float] = (0.1, 0.4)
    occluded_cover: float = 0.55  # hidden behind a nearer person covering this share of the box
    jitter_frac: float = 0.012  # sd of each box edge, as a fraction of the box height
    conf_base: tuple[float, float] = (0.65, 0.92)  # per person
    conf_sd: float = 0.06  # per frame
    conf_range: tuple[float, float] = (0.4, 0.95)
    false_positive_prob: float = 0.02  # per frame: one box that is gone on the next frame
    min_visible: float = 0.5  # share of a box inside the view for the detector to see it
    inference_ms: tuple[float, float] = (25.0, 4.0)  # mean, sd (reported, not spent)

    def __post_init__(self) -> None:
        if self.frame_width < 640 or self.frame_height < 360:
            raise ValueError(f"frame must be at least 640x360, got {self.frame_width}x{self.frame_height}")
        for name in ("arrivals_per_min", "warm_up_s", "occlusions_per_s", "false_positive_prob", "jitter_frac"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("linger_prob", "approach_prob", "miss_prob", "false_positive_prob", "min_visible"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {getattr(self, name)}")
        if self.linger_prob + self.approach_prob > 1.0:
            raise ValueError("linger_prob + approach_prob must be <= 1")
        lo, hi = self.conf_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"conf_range must be within 0..1 and ordered, got {self.conf_range}")

    def height_at(self, y: NDArray[np.float64] | float) -> Any:
        """Box height (px) of an average person whose feet are at row ``y``."""
        span = self.frame_height - self.horizon_y
        frac = np.clip((np.asarray(y, dtype=np.float64) - self.horizon_y) / span, 0.0, None)
        return self.height_far_px + frac * (self.height_near_px - self.height_far_px)


# --------------------------------------------------------------------------- geometry (pure)


def _cross2(u: NDArray[np.float64], v: NDArray[np.float64]) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def _meets_middle(
    p: NDArray[np.float64], q: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
) -> bool:
    """Whether segment p-q crosses segment a-b within its middle 70 %."""
    r, s = q - p, b - a
    den = _cross2(r, s)
    if den == 0.0:
        return False
    t = _cross2(a - p, s) / den  # along p-q
    u = _cross2(a - p, r) / den  # along a-b
    return 0.0 < t < 1.0 and 0.15 < u < 0.85


def _segment_distances(
    x: NDArray[np.float64], y: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(N, E) distance of points to segments ``a[e] -> b[e]``."""
    d = b - a
    dd = np.maximum(np.einsum("ij,ij->i", d, d), 1e-12)
    rx = np.subtract.outer(x, a[:, 0])
    ry = np.subtract.outer(y, a[:, 1])
    t = np.clip((rx * d[:, 0] + ry * d[:, 1]) / dd, 0.0, 1.0)
    return np.hypot(rx - t * d[:, 0], ry - t * d[:, 1])


def point_in_polygon(xy: NDArray[np.float64], polygon: Any) -> NDArray[np.bool_]:
    """Even-odd rule for each point.

    >>> point_in_polygon(np.array([[5.0, 5.0], [15.0, 5.0]]), [(0, 0), (10, 0), (10, 10), (0, 10)]).tolist()
    [True, False]
    """
    poly = np.asarray(polygon, dtype=np.float64)
    a, b = poly, np.roll(poly, -1, axis=0)
    px, py = xy[:, 0][:, None], xy[:, 1][:, None]
    straddle = (a[:, 1] > py) != (b[:, 1] > py)
    dy = np.where(b[:, 1] == a[:, 1], 1.0, b[:, 1] - a[:, 1])
    xc = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
    return np.logical_xor.reduce(straddle & (px < xc), axis=1)


def polygon_signed_distance(xy: NDArray[np.float64], polygon: Any) -> NDArray[np.float64]:
    """Distance of each point to the polygon's boundary, positive inside.

    >>> polygon_signed_distance(np.array([[5.0, 4.0], [13.0, 5.0]]), [(0, 0), (10, 0), (10, 10), (0, 10)]).tolist()
    [4.0, -3.0]
    """
    poly = np.asarray(polygon, dtype=np.float64)
    dist = _segment_distances(xy[:, 0], xy[:, 1], poly, np.roll(poly, -1, axis=0)).min(axis=1)
    return np.where(point_in_polygon(xy, poly), dist, -dist)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """``[(first, last)]`` index ranges where ``mask`` is True."""
    if not mask.any():
        return []
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(m)
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1, strict=True))


def _passages(
    signed: NDArray[np.float64], relevant: NDArray[np.bool_], near: float, clear: float
) -> list[tuple[int, int, int, bool]] | None:
    """The clean passages of a path over a boundary, or None if it has an unclean one.

    ``signed`` is the distance to the boundary (positive on one side) at each path point. Every
    stretch within ``near`` of it (where ``relevant``) must come from beyond ``near`` on one side,
    change side exactly once and leave beyond ``near`` on the other side, neither starting nor
    ending the path there. Returns ``(begin, cross, clear, to_positive)`` indexes per passage:
    the last point ``clear`` before the boundary, the first point on the new side, and the first
    point ``clear`` beyond it.
    """
    n = len(signed)
    out = []
    for i, j in _runs((np.abs(signed) < near) & relevant):
        if i == 0 or j == n - 1:
            return None
        seg = signed[i - 1 : j + 2]
        if abs(seg[0]) < near or abs(seg[-1]) < near:  # it ran past the end of a line while near it
            return None
        positive = seg > 0
        flips = np.nonzero(positive[1:] != positive[:-1])[0]
        if positive[0] == positive[-1] or len(flips) != 1:
            return None
        f = int(flips[0])
        cross = i + f  # index into signed of the first point on the new side
        before = np.nonzero(np.abs(seg[: f + 1]) >= clear)[0]
        beyond = np.nonzero(np.abs(seg[f + 1 :]) >= clear)[0]
        out.append((i - 1 + int(before[-1]), cross, cross + int(beyond[0]), bool(positive[-1])))
    return out


# --------------------------------------------------------------------------- camera layout


@dataclass(frozen=True)
class _Layout:
    config: CameraConfig
    line_ids: tuple[str, ...]
    line_start: NDArray[np.float64]  # (L, 2)
    line_end: NDArray[np.float64]
    zone_id: str
    zone: NDArray[np.float64]  # (K, 2)


def _make_layout(rng: np.random.Generator, camera_id: str, index: int, p: SimParams, at: float) -> _Layout:
    w, h = p.frame_width, p.frame_height
    sx, sy = w / 1280.0, h / 720.0
    lines = []
    # a threshold across the walkway (roughly horizontal) ...
    y = rng.uniform(300, 470) * sy
    a = np.array([rng.uniform(100, 250) * sx, y + rng.uniform(-40, 40) * sy])
    b = np.array([rng.uniform(1030, 1180) * sx, y + rng.uniform(-40, 40) * sy])
    lines.append((a, b) if rng.random() < 0.5 else (b, a))
    # ... and, for half the cameras, a second one across it (roughly vertical)
    if rng.random() < 0.5:
        x = rng.uniform(470, 830) * sx
        a = np.array([x + rng.uniform(-60, 60) * sx, rng.uniform(190, 260) * sy])
        b = np.array([x + rng.uniform(-60, 60) * sx, rng.uniform(590, 640) * sy])
        lines.append((a, b) if rng.random() < 0.5 else (b, a))
    ls = np.array([a for a, _ in lines])
    le = np.array([b for _, b in lines])

    zone = None
    for attempt in range(200):
        scale = 1.0 if attempt < 100 else 0.6
        zw, zh = rng.uniform(220, 380) * sx * scale, rng.uniform(110, 180) * sy * scale
        x0, y0 = rng.uniform(60 * sx, w - 60 * sx - zw), rng.uniform(210 * sy, h - 40 * sy - zh)
        rect = np.array([[x0, y0], [x0 + zw, y0], [x0 + zw, y0 + zh], [x0, y0 + zh]])
        poly = rect + rng.uniform(-12, 12, size=(4, 2))
        # clear of every line by 50 px (lines do not cross it, lingering people are far from lines)
        dense = np.concatenate([np.linspace(ls[i], le[i], 200) for i in range(len(ls))])
        if point_in_polygon(dense, poly).any():
            continue
        edge = _segment_distances(dense[:, 0], dense[:, 1], poly, np.roll(poly, -1, axis=0))
        if edge.min() >= 50.0:
            zone = poly
            break
    if zone is None:  # cannot happen with the default frame; keep a valid config anyway
        zone = np.array([[60, 660], [260, 660], [260, 700], [60, 700]], dtype=np.float64) * [sx, sy]
    zone = np.round(zone, 1)
    ls, le = np.round(ls, 1), np.round(le, 1)

    line_ids = tuple(f"line-{i + 1}" for i in range(len(ls)))
    names = ("walkway", "crossing")
    config = CameraConfig(
        camera_id=camera_id,
        name=f"Simulated camera {index + 1}",
        location="simulator",
        groups=["simulated"],
        lines=[
            CountingLine(line_id=lid, start=ls[i].tolist(), end=le[i].tolist(), name=names[i])
            for i, lid in enumerate(line_ids)
        ],
        zones=[
            Zone(
                zone_id="zone-1",
                polygon=zone.tolist(),
                name="waiting area",
                capacity=int(rng.integers(5, 21)),
                alert_threshold_pct=80.0,
            )
        ],
        updated_at=at,
    )
    return _Layout(config, line_ids, ls, le, "zone-1", zone)


# --------------------------------------------------------------------------- people


@dataclass
class _Person:
    """One person's frames (rows = this camera's frames ``k0 .. k0 + n - 1``) and truth events."""

    k0: int
    boxes: NDArray[np.float64]  # (n, 4) detector boxes (jittered, clipped)
    conf: NDArray[np.float64]  # (n,)
    seen: NDArray[np.bool_]  # (n,) detected (not missed, not occluded by things, visible enough)
    body: NDArray[np.float64]  # (n, 4) true boxes, for occlusion by other people
    in_view: NDArray[np.bool_]  # (n,) some of the body is in view
    # (time it counts, time it began, "line" | "zone", id, "in" | "out" | "enter" | "exit"), by time
    events: list[tuple[float, float, str, str, str]]
    next_event: int = 0

    @property
    def k_end(self) -> int:
        return self.k0 + len(self.conf) - 1


def _spline(points: NDArray[np.float64], step_px: float) -> NDArray[np.float64]:
    """A smooth curve through ``points`` sampled every ~``step_px`` (chord-length parameter)."""
    chords = np.hypot(*np.diff(points, axis=0).T)
    keep = np.concatenate([[True], chords > 1e-6])
    points, chords = points[keep], chords[keep[1:]]
    u = np.concatenate([[0.0], np.cumsum(chords)])
    n = max(2, int(math.ceil(u[-1] / step_px)) + 1)
    s = np.linspace(0.0, u[-1], n)
    if len(points) == 2:
        return points[0] + np.outer(s / u[-1], points[1] - points[0])
    return CubicSpline(u, points, bc_type="natural")(s)


# dense path points, their times (from arrival), behaviour, passages (see _Camera._check_path)
_Plan = tuple[NDArray[np.float64], NDArray[np.float64], str, list[tuple[str, str, int, int, str]]]


class _Camera:
    """One virtual camera: its layout, random stream, people and truth."""

    STEP_PX = 2.0

    def __init__(self, index: int, camera_id: str, seed: int, fps: float, start: float, p: SimParams) -> None:
        self.index, self.camera_id, self.fps, self.p = index, camera_id, fps, p
        self.layout = _make_layout(np.random.default_rng([seed, index, 0]), camera_id, index, p, start)
        self.rng = np.random.default_rng([seed, index, 1])
        self.t0 = start + float(self.rng.uniform(0.0, 1.0 / fps))  # this camera's first frame
        self.k = 0  # next frame index
        self.last_seq = -1
        self.people: list[_Person] = []
        self.waiting: list[tuple[float, float, float, float, float]] = []  # boxes of waiting people, until when
        self.next_arrival = start - p.warm_up_s + self._gap()
        self.log: list[tuple[float, str, str, str, str]] | None = None
        self.under_way_at_start: dict[str, int] = {}
        self.truth_lines = {lid: {"in": 0, "out": 0} for lid in self.layout.line_ids}
        self.truth_zones = {self.layout.zone_id: {"entries": 0, "exits": 0, "inside_at_start": 0}}
        self.stats = {"people": 0, "lingering": 0, "approaching": 0, "unplanned": 0, "false_positives": 0}
        self.stats |= {"boxes": 0, "hidden": 0}

    def _gap(self) -> float:
        rate = self.p.arrivals_per_min / 60.0
        return float(self.rng.exponential(1.0 / rate)) if rate > 0 else math.inf

    def time_of(self, k: int) -> float:
        return self.t0 + k / self.fps

    # ------------------------------------------------------------------ planning

    def _edge_point(self, exclude: int | None = None) -> tuple[NDArray[np.float64], int]:
        """A point where people enter or leave the view: beyond the left, right or bottom edge,
        or at the far end (top) where they become too small to detect."""
        p, rng = self.p, self.rng
        w, h = p.frame_width, p.frame_height
        weights = np.array(_EDGE_WEIGHTS)
        if exclude is not None:
            weights[exclude] = 0.0
        edge = int(rng.choice(4, p=weights / weights.sum()))
        if edge in (0, 1):  # left / right: feet anywhere from the far end to near the bottom
            y = rng.uniform(p.horizon_y + 60, h - 30)
            half = 0.3 * float(p.height_at(y))  # the whole box is out of view
            x = -half - 5 if edge == 0 else w + half + 5
        elif edge == 2:  # bottom: just below the view
            x = rng.uniform(0.1 * w, 0.9 * w)
            y = h + 0.25 * float(p.height_at(h))
        else:  # far end
            x = rng.uniform(0.15 * w, 0.85 * w)
            y = rng.uniform(p.horizon_y, p.horizon_y + 40)
        return np.array([x, y]), edge

    def _interior(self) -> NDArray[np.float64]:
        p = self.p
        return np.array(
            [self.rng.uniform(0.12, 0.88) * p.frame_width, self.rng.uniform(p.horizon_y + 90, p.frame_height - 80)]
        )

    def _plan(self, arrival: float) -> _Plan | None:
        """A path (dense points and their times, relative to arrival) that passes the cleanliness
        checks, or None after some tries."""
        p, rng = self.p, self.rng
        r = rng.random()
        kind = "lingering" if r < p.linger_prob else "approaching" if r < p.linger_prob + p.approach_prob else "passing"
        through = kind == "passing" and rng.random() < p.through_prob
        for _ in range(40):  # retry the same behaviour: giving up on hard ones would bias the mix
            plan = self._try_plan(arrival, kind, through)
            if plan is not None:
                return plan
        return None

    def _try_plan(self, arrival: float, kind: str, through: bool) -> _Plan | None:
        p, rng, lay = self.p, self.rng, self.layout
        speed = float(np.clip(rng.normal(*p.speed_mps), 0.8, 2.0))
        start, edge = self._edge_point()
        legs: list[NDArray[np.float64]] = []
        dwell_at: list[tuple[int, float]] = []  # (leg index after which people stand still, seconds)
        if kind == "lingering":
            inner = self._zone_point(35.0, arrival)
            if inner is None:  # no room to wait: walk on
                return self._try_plan(arrival, "passing", through)
            via = [self._interior()] if rng.random() < 0.3 else []
            legs.append(np.array([start, *via, inner]))
            # shuffle around a little while waiting
            spots = [inner]
            for _ in range(int(rng.integers(1, 4))):
                spots.append(spots[-1] + rng.normal(0.0, 6.0, 2))
            total = float(rng.uniform(*p.linger_s))
            for i in range(1, len(spots)):
                dwell_at.append((len(legs), total / len(spots)))
                legs.append(np.array([spots[i - 1], spots[i]]))
            dwell_at.append((len(legs), total / len(spots)))
            end, _ = self._edge_point()
            legs.append(np.array([spots[-1], end]))
        elif kind == "approaching":
            i = int(rng.integers(len(lay.line_ids)))
            a, b = lay.line_start[i], lay.line_end[i]
            d = b - a
            normal = np.array([d[1], -d[0]]) / np.hypot(*d)  # points to the out side
            side = 1.0 if float(np.dot(start - a, normal)) > 0 else -1.0
            near = a + rng.uniform(0.2, 0.8) * d + side * normal * rng.uniform(*p.approach_px)
            back = near + side * normal * rng.uniform(80, 200) + d / np.hypot(*d) * rng.uniform(-150, 150)
            end = None
            for _ in range(20):
                cand, _e = self._edge_point()
                if float(np.dot(cand - a, normal)) * side > 0:
                    end = cand
                    break
            if end is None:
                return None
            legs.append(np.array([start, near, back, end]))
        else:
            # most walk through the main line (it is where the camera was put to count them)
            for _ in range(20):
                end, _ = self._edge_point(exclude=edge if rng.random() < 0.8 else None)
                if not through or _meets_middle(start, end, lay.line_start[0], lay.line_end[0]):
                    break
            # gentle curves: one or two waypoints off the straight line by ~10 % of its length
            span = end - start
            normal = np.array([-span[1], span[0]])
            fracs = np.sort(rng.uniform(0.2, 0.8, int(rng.integers(1, 3))))
            mid = [start + span * f + normal * rng.normal(0.0, 0.1) for f in fracs]
            legs.append(np.array([start, *mid, end]))

        # dense path and timing: on-screen speed follows the perspective
        pts, times, t = [], [], 0.0
        dwell = dict(dwell_at)
        for li, leg in enumerate(legs):
            if li in dwell:
                t += dwell[li]
                pts.append(leg[:1])
                times.append(np.array([t]))
            dense = _spline(leg, self.STEP_PX)
            slow = 0.25 if kind == "lingering" and 0 < li < len(legs) - 1 else 1.0
            px_per_s = speed * slow * p.height_at(dense[:, 1]) / PERSON_HEIGHT_M
            seg = np.hypot(*np.diff(dense, axis=0).T)
            dt = seg / (0.5 * (px_per_s[1:] + px_per_s[:-1]))
            tt = t + np.concatenate([[0.0], np.cumsum(dt)])
            if pts:  # the leg starts where the last one ended
                dense, tt = dense[1:], tt[1:]
            pts.append(dense)
            times.append(tt)
            t = float(tt[-1]) if len(tt) else t
        xy = np.concatenate(pts)
        tt = np.concatenate(times)
        tt = np.maximum.accumulate(tt + np.arange(len(tt)) * 1e-9)  # strictly increasing
        events = self._check_path(xy)
        if events is None:
            return None
        return xy, tt, kind, events

    def _zone_point(self, inset: float, arrival: float) -> NDArray[np.float64] | None:
        """A place to wait in the zone, ``inset`` inside its edge, where the person's box does not
        overlap anyone else's waiting there (people do not stand in each other)."""
        zone = self.layout.zone
        lo, hi = zone.min(axis=0), zone.max(axis=0)
        self.waiting = [w for w in self.waiting if w[4] > arrival]
        for _ in range(30):
            pt = self.rng.uniform(lo, hi)
            if polygon_signed_distance(pt[None, :], zone)[0] < inset:
                continue
            box = self._waiting_box(pt)
            if all(box[0] > w[2] or box[2] < w[0] or box[1] > w[3] or box[3] < w[1] for w in self.waiting):
                return pt
        return None

    def _waiting_box(self, pt: NDArray[np.float64]) -> tuple[float, float, float, float]:
        h = float(self.p.height_at(pt[1])) * 1.1
        return (pt[0] - 0.25 * h - 15, pt[1] - h - 15, pt[0] + 0.25 * h + 15, pt[1] + 15)

    def _check_path(self, xy: NDArray[np.float64]) -> list[tuple[str, str, int, int, str]] | None:
        """The path's passages over lines and the zone's edge as ``(what, id, begin, clear,
        direction)`` point indexes, or None when the path is not clean (see the module docstring)."""
        p, lay = self.p, self.layout
        events: list[tuple[str, str, int, int, str]] = []
        for lid, a, b in zip(lay.line_ids, lay.line_start, lay.line_end, strict=True):
            d = b - a
            length = float(np.hypot(*d))
            rel = xy - a
            signed = (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / length  # > 0 on the in side
            along = (rel @ d) / length
            relevant = (along > -p.end_margin_px) & (along < length + p.end_margin_px)
            passages = _passages(signed, relevant, p.near_px, p.clear_px)
            if passages is None:
                return None
            for begin, cross, clear, to_in in passages:
                # away from the ends, with the whole body in view
                if not p.end_margin_px <= along[cross] <= length - p.end_margin_px:
                    return None
                x, y = xy[cross]
                hh = float(p.height_at(y)) * 1.15
                if y - hh < 0 or x - 0.3 * hh < 0 or x + 0.3 * hh > p.frame_width or y > p.frame_height:
                    return None
                # no sharp turns near a line: people walk through a threshold (and a tracker that
                # loses someone turning there behind an occlusion would count them wrong)
                far = np.nonzero(np.abs(signed) >= 0.8 * hh)[0]
                lo = far[far < cross].max(initial=0)
                hi = far[far > cross].min(initial=len(xy) - 1)
                step = np.diff(xy[lo : hi + 1], axis=0)
                heading = np.unwrap(np.arctan2(step[:, 1], step[:, 0]))
                if len(heading) and heading.max() - heading.min() > p.max_turn_rad:
                    return None
                events.append(("line", lid, begin, clear, "in" if to_in else "out"))
        zone = _passages(polygon_signed_distance(xy, lay.zone), np.ones(len(xy), dtype=bool), p.near_px, p.clear_px)
        if zone is None:
            return None
        events += [("zone", lay.zone_id, b, c, "enter" if inside else "exit") for b, _x, c, inside in zone]
        return events

    # ------------------------------------------------------------------ sampling

    def _spawn(self, arrival: float) -> None:
        plan = self._plan(arrival)
        self.stats["people"] += 1
        if plan is None:
            self.stats["unplanned"] += 1
            return
        xy, rel_t, kind, passages = plan
        if kind == "lingering":
            self.waiting.append((*self._waiting_box(xy[np.argmax(np.diff(rel_t))]), arrival + float(rel_t[-1])))
        if kind != "passing":
            self.stats[kind] += 1
        p, rng, lay = self.p, self.rng, self.layout
        times = arrival + rel_t
        k0 = max(self.k, math.ceil((times[0] - self.t0) * self.fps - 1e-9))
        k1 = math.floor((times[-1] - self.t0) * self.fps + 1e-9)
        # (time it counts, time it began, line|zone, id, direction)
        events = sorted((float(times[c]), float(times[b]), what, key, d) for what, key, b, c, d in passages)
        if k1 < k0:
            return
        frame_t = self.t0 + np.arange(k0, k1 + 1) / self.fps
        n = len(frame_t)
        fx, fy = np.interp(frame_t, times, xy[:, 0]), np.interp(frame_t, times, xy[:, 1])
        if k0 == 0 and polygon_signed_distance(np.array([[fx[0], fy[0]]]), lay.zone)[0] > 0:
            self.truth_zones[lay.zone_id]["inside_at_start"] += 1
        scale = rng.uniform(0.9, 1.1)
        aspect = rng.uniform(0.36, 0.46)
        hh = p.height_at(fy) * scale
        ww = hh * aspect
        body = np.column_stack([fx - ww / 2, fy - hh, fx + ww / 2, fy])
        sd = p.jitter_frac * hh
        boxes = body + rng.normal(0.0, 1.0, (n, 4)) * sd[:, None]
        w, h = p.frame_width, p.frame_height
        clipped = np.column_stack(
            [
                np.clip(boxes[:, 0], 0, w),
                np.clip(boxes[:, 1], 0, h),
                np.clip(boxes[:, 2], 0, w),
                np.clip(boxes[:, 3], 0, h),
            ]
        )
        area = (body[:, 2] - body[:, 0]) * (body[:, 3] - body[:, 1])
        vis = (np.clip(body[:, 2], 0, w) - np.clip(body[:, 0], 0, w)) * (
            np.clip(body[:, 3], 0, h) - np.clip(body[:, 1], 0, h)
        )
        visible = vis / area
        seen = (visible >= p.min_visible) & (rng.random(n) >= p.miss_prob)
        seen &= (clipped[:, 2] - clipped[:, 0] >= 4) & (clipped[:, 3] - clipped[:, 1] >= 10)
        # short occlusions: a Poisson number over the person's time in view
        life = n / self.fps
        for _ in range(int(rng.poisson(p.occlusions_per_s * life))):
            t_occ = rng.uniform(0, life)
            dur = rng.uniform(*p.occlusion_s)
            seen &= ~((frame_t >= frame_t[0] + t_occ) & (frame_t < frame_t[0] + t_occ + dur))
        lo, hi = p.conf_range
        conf = rng.uniform(*p.conf_base) + rng.normal(0.0, p.conf_sd, n) - 0.4 * (1.0 - np.minimum(visible, 1.0))
        conf = np.clip(conf, lo, hi)
        self.people.append(_Person(k0, np.round(clipped, 1), np.round(conf, 3), seen, body, visible > 0, events))

    def next_frame(self) -> FrameDetections:
        """Generate this camera's next frame and count the truth up to it."""
        p, rng = self.p, self.rng
        k, t = self.k, self.time_of(self.k)
        while self.next_arrival <= t:
            self._spawn(self.next_arrival)
            self.next_arrival += self._gap()

        rows, bodies, conf = [], [], []
        live: list[_Person] = []
        for person in self.people:
            # truth: everything this person did up to this frame (only after the first frame)
            ev = person.events
            while person.next_event < len(ev) and ev[person.next_event][0] <= t:
                when, began, what, key, direction = ev[person.next_event]
                person.next_event += 1
                if began <= self.t0:  # it was under way before the first frame
                    if when > self.t0:
                        self.under_way_at_start[key] = self.under_way_at_start.get(key, 0) + 1
                    continue
                if self.log is not None:
                    self.log.append((when, self.camera_id, what, key, direction))
                if what == "line":
                    self.truth_lines[key][direction] += 1
                else:
                    self.truth_zones[key]["entries" if direction == "enter" else "exits"] += 1
            if k > person.k_end:
                continue
            live.append(person)
            r = k - person.k0
            if r < 0 or not person.in_view[r]:
                continue
            bodies.append(person.body[r])
            rows.append(person.boxes[r] if person.seen[r] else None)
            conf.append(person.conf[r])
        self.people = live

        boxes: list[list[float]] = []
        if bodies:
            hidden = self._hidden_by_others(bodies)
            for i, row in enumerate(rows):
                if row is None:
                    continue
                if hidden[i]:
                    self.stats["hidden"] += 1
                    continue
                boxes.append([*row.tolist(), float(conf[i])])
        if p.false_positive_prob and rng.random() < p.false_positive_prob:
            boxes.append(self._false_positive())
            self.stats["false_positives"] += 1
        self.stats["boxes"] += len(boxes)

        t = round(t, 6)
        seq = max(self.last_seq + 1, round(t * 1_000_000))  # capture-clock microseconds
        self.last_seq = seq
        self.k += 1
        inference_ms = round(max(1.0, float(rng.normal(*p.inference_ms))), 2)
        return FrameDetections(
            camera_id=self.camera_id,
            frame_seq=seq,
            captured_at=t,
            frame_width=p.frame_width,
            frame_height=p.frame_height,
            boxes=boxes,
            model_name=MODEL_NAME,
            model_version=MODEL_VERSION,
            inference_ms=inference_ms,
            published_at=round(t + inference_ms / 1000.0 + 0.002, 6),
        )

    def _hidden_by_others(self, body: list[NDArray[np.float64]]) -> list[bool]:
        """A person is hidden when a nearer one (feet lower in the frame) covers most of the box.
        Plain Python: a handful of people per frame is cheaper than numpy's per-call cost."""
        boxes = [b.tolist() for b in body]
        hidden = [False] * len(boxes)
        limit = self.p.occluded_cover
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            area = (x2 - x1) * (y2 - y1)
            for j, (u1, v1, u2, v2) in enumerate(boxes):
                if j == i or v2 <= y2:
                    continue
                w = min(x2, u2) - max(x1, u1)
                h = min(y2, v2) - max(y1, v1)
                if w > 0 and h > 0 and w * h > limit * area:
                    hidden[i] = True
                    break
        return hidden

    def _false_positive(self) -> list[float]:
        p, rng = self.p, self.rng
        y2 = rng.uniform(p.horizon_y + 40, p.frame_height)
        hh = float(p.height_at(y2)) * rng.uniform(0.5, 1.1)
        ww = hh * rng.uniform(0.3, 0.8)
        x1 = rng.uniform(0, p.frame_width - ww)
        y1 = max(0.0, y2 - hh)
        return [round(x1, 1), round(y1, 1), round(x1 + ww, 1), round(y2, 1), round(float(rng.uniform(0.4, 0.62)), 3)]


# --------------------------------------------------------------------------- public API


@dataclass
class Simulation:
    """N virtual cameras. ``frames()`` continues the same timeline on every call; ``truth()``
    counts what happened up to the last frame generated.

    ``start`` is the first frame's capture time (epoch seconds; each camera adds its own phase
    under one frame period). ``camera_prefix`` makes the ids (``<prefix>-0001`` ...) unique.
    """

    cameras: int
    fps: float = 10.0
    seed: int = 0
    start: float = DEFAULT_START
    camera_prefix: str = "sim"
    params: SimParams = field(default_factory=SimParams)
    keep_events: bool = False  # keep every truth event for :meth:`events` (grows without bound)

    def __post_init__(self) -> None:
        if self.cameras < 1:
            raise ValueError(f"cameras must be >= 1, got {self.cameras}")
        if not 0.1 <= self.fps <= 120:
            raise ValueError(f"fps must be within 0.1..120, got {self.fps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        ids = [f"{self.camera_prefix}-{i + 1:04d}" for i in range(self.cameras)]
        self._cameras = [_Camera(i, cid, self.seed, self.fps, self.start, self.params) for i, cid in enumerate(ids)]
        if self.keep_events:
            for cam in self._cameras:
                cam.log = []
        self._order = sorted(self._cameras, key=lambda c: (c.t0, c.index))  # phase order within a tick
        self._tick = 0
        self._pos = 0  # next camera within the tick
        self.frames_generated = 0
        CameraConfig(camera_id=ids[-1])  # fail early on a bad prefix, naming the field

    @property
    def camera_ids(self) -> list[str]:
        return [c.camera_id for c in self._cameras]

    @property
    def next_time(self) -> float:
        """Capture time of the next frame :meth:`frames` will yield."""
        return self._order[self._pos].time_of(self._tick)

    def configs(self) -> list[CameraConfig]:
        """Each camera's configuration (1-2 directed lines, one zone with a capacity)."""
        return [c.layout.config for c in self._cameras]

    def frames(self, duration_s: float | None = None) -> Iterator[FrameDetections]:
        """Frames of all cameras in capture-time order: ``duration_s`` seconds of capture time
        (``round(duration_s * fps)`` frames per camera) from where the last call stopped, or
        forever when None."""
        if duration_s is not None and duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {duration_s}")
        ticks = None if duration_s is None else int(round(duration_s * self.fps))
        end_tick = None if ticks is None else self._tick + ticks
        while end_tick is None or self._tick < end_tick:
            cam = self._order[self._pos]
            frame = cam.next_frame()
            self.frames_generated += 1
            self._pos += 1
            if self._pos == len(self._order):
                self._pos = 0
                self._tick += 1
            yield frame

    def truth(self) -> dict[str, dict[str, dict[str, int]]]:
        """Line crossings so far: ``{camera_id: {line_id: {"in": n, "out": n}}}``."""
        return {c.camera_id: {k: dict(v) for k, v in c.truth_lines.items()} for c in self._cameras}

    def events(self) -> list[tuple[float, str, str, str, str]]:
        """Every truth event so far, by time: ``(time, camera_id, "line" | "zone", id, direction)``
        with direction ``in``/``out`` for lines and ``enter``/``exit`` for zones. Needs ``keep_events``."""
        if not self.keep_events:
            raise RuntimeError("create the Simulation with keep_events=True to keep truth events")
        return sorted(e for c in self._cameras for e in c.log or ())

    def under_way(self) -> dict[str, dict[str, dict[str, int]]]:
        """Passages (lines and zone edges) that the truth leaves out because they were under way
        at the first frame (``at_start``) or are still under way at the last one (``at_end``):
        ``{camera_id: {line_or_zone_id: {"at_start": n, "at_end": n}}}``, non-zero entries only.
        A counter that sees the same frames may or may not count these; compare with that slack."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for c in self._cameras:
            last = c.time_of(c.k - 1)
            entry: dict[str, dict[str, int]] = {}
            for key, n in c.under_way_at_start.items():
                entry.setdefault(key, {"at_start": 0, "at_end": 0})["at_start"] = n
            for person in c.people:
                for _when, began, _what, key, _d in person.events[person.next_event :]:
                    if c.t0 < began <= last:
                        entry.setdefault(key, {"at_start": 0, "at_end": 0})["at_end"] += 1
            if entry:
                out[c.camera_id] = entry
        return out

    def zone_truth(self) -> dict[str, dict[str, dict[str, int]]]:
        """Zone transitions so far: ``{camera_id: {zone_id: {"entries": n, "exits": n}}}``."""
        return {c.camera_id: {k: dict(v) for k, v in c.truth_zones.items()} for c in self._cameras}

    def totals(self) -> dict[str, int]:
        lines = [d for cam in self.truth().values() for d in cam.values()]
        zones = [d for cam in self.zone_truth().values() for d in cam.values()]
        return {
            "in": sum(d["in"] for d in lines),
            "out": sum(d["out"] for d in lines),
            "crossings": sum(d["in"] + d["out"] for d in lines),
            "zone_entries": sum(d["entries"] for d in zones),
        }

    def stats(self) -> dict[str, int]:
        """What was generated: people, how many lingered or approached a line, boxes, hidden ..."""
        out: dict[str, int] = {}
        for c in self._cameras:
            for k, v in c.stats.items():
                out[k] = out.get(k, 0) + v
        return out

    def truth_document(self) -> dict[str, Any]:
        """The ground-truth JSON document (what ``--truth`` writes)."""
        return {
            "cameras": len(self._cameras),
            "fps": self.fps,
            "seed": self.seed,
            "start": self.start,
            "camera_prefix": self.camera_prefix,
            "frames": self.frames_generated,
            "frames_per_camera": {c.camera_id: c.k for c in self._cameras},
            "last_frame_seq": {c.camera_id: c.last_seq for c in self._cameras if c.last_seq >= 0},
            "lines": self.truth(),
            "zones": self.zone_truth(),
            "under_way": self.under_way(),
            "totals": self.totals(),
            "generated": self.stats(),
            "params": asdict(self.params),
        }
