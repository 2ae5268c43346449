"""Per-camera multi-object tracker (ByteTrack-class) as a pure, deterministic step function.

``step(state, boxes, frame_time) -> (new_state, tracks)`` never mutates ``state``; the same state
and input give bit-identical output, also after ``TrackerState.to_bytes``/``from_bytes`` (every
float the state keeps is rounded to its stored precision *inside* the step, so a deserialised
state equals the in-memory one). That is what exactly-once recovery of a changelogged Faust table
needs: replaying the detections since the last committed state reproduces the same tracks.

Algorithm (ByteTrack, Zhang et al. 2022, with its published thresholds):

1. predict every track with a constant-velocity Kalman filter over the real time step (a lost
   track coasts as a rigid box, as ByteTrack's lost tracks keep their height: see
   :func:`_rigid_while_lost`);
2. high-confidence detections (``>= high_conf``) vs confirmed tracks (tracked and lost), IoU;
3. low-confidence detections (``low_conf <= c < high_conf``) vs still unmatched tracks that were
   tracked on the previous frame (revives occluded people the detector is unsure about);
4. remaining high-confidence detections vs tentative tracks;
5. a track is born tentative from an unmatched detection with ``>= new_track_conf`` and is
   confirmed after ``min_hits`` consecutive hits; a tentative track that misses is dropped; a
   confirmed track that misses is *lost* and is removed after ``max_lost_s`` seconds unmatched.

Each stage is an optimal assignment (scipy ``linear_sum_assignment``) on IoU, with pairs under
the stage's IoU threshold made infeasible. Track ids come from a per-camera counter in the state
and are allocated at birth, never reused (ids of tentative tracks that never confirm are skipped).

The Kalman filter is ByteTrack's (position noise 1/20, velocity noise 1/160 of the box height
per frame at 30 fps, here scaled by the real time step) on ``x1, y1, x2, y2`` and their
velocities. Its four coordinates are independent constant-velocity filters with identical noise
*relative to box height*; so one normalised 2x2 covariance (3 numbers) per track is the exact
covariance of all four, and the gains do not depend on the height at all. That is what makes the
state small: 88 bytes per track.

A track's ``box`` is the detection it was last matched to (what the detector saw; its anchor is
what counting uses), not the filtered estimate, which only serves prediction.

Why not roboflow ``trackers`` (2.6.1, ``ByteTrackTracker``)? Measured here with
``bench/core_step.py`` (same detections for both: people walking at 25 fps; CPU time per frame,
best of 5; CPython 3.11, numpy 2.4 on a shared 2-core machine where one small numpy call costs
~0.5 us):

======  =====================  ==================  =====================  =================
people  trackers update (us)   trackers pickle (B)  this step (us)         this state (B)
======  =====================  ==================  =====================  =================
5       388                    25,346              76                     455
10      591                    49,301              76                     895
20      1,056                  97,220              87                     1,775
======  =====================  ==================  =====================  =================

Its pickle resumes identically (checked: a sequence split by pickle/unpickle gives the same ids),
so it is deterministic; but a changelogged table written on every frame would carry ~50 kB per
frame of a 10-person camera (~250 MB/s at 5,000 frames/s), its step alone is several times the
per-frame budget, and it pulls OpenCV and supervision into the agents. Here the state is explicit,
versioned and 15 + 88 bytes per track, and the step is 5-12x faster; the association logic and
Kalman tuning are ByteTrack's. Cost is dominated by the number of numpy calls (~45 per step,
roughly independent of the number of people up to a few dozen), not by their size.

>>> import numpy as np
>>> s = TrackerState()
>>> for i in range(10):  # one person walking right, 10 px per frame at 25 fps (250 px/s)
...     s, tracks = step(s, [[100 + 10 * i, 50, 140 + 10 * i, 150, 0.9]], i / 25)
>>> t = tracks.view()[0]
>>> (t.track_id, t.status, t.hits, t.anchor)
(1, 'tracked', 10, (210.0, 150.0))
>>> round(t.velocity[0])  # px/s, Kalman estimate
237
>>> len(s.to_bytes()), TrackerState.from_bytes(s.to_bytes()) == s
(103, True)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

__all__ = [
    "NFIELDS",
    "TENTATIVE",
    "TRACKED",
    "LOST",
    "TrackerParams",
    "TrackerState",
    "Track",
    "Tracks",
    "step",
    "as_boxes",
]

TENTATIVE, TRACKED, LOST = 0, 1, 2
_STATUS_NAMES = ("tentative", "tracked", "lost")

# The working state is one float64 matrix with a *column* per live track (sorted by id) and these
# rows, so that every field is a contiguous vector (numpy's per-call cost dominates at this size):
ID, STATUS, HITS, AGE, T_UPDATE, CONF = 0, 1, 2, 3, 4, 5  # hits: matches since birth; age: frames since birth
DET = slice(6, 10)  # last matched detection x1, y1, x2, y2
MEAN = slice(10, 14)  # Kalman estimate x1, y1, x2, y2 (predicted to the last frame)
VEL = slice(14, 18)  # Kalman velocity of x1, y1, x2, y2, px/s
PXX, PXV, PVV = 18, 19, 20  # normalised covariance (var_pos, cov_pos_vel, var_vel) / height^2
NFIELDS = 21
_F32 = slice(5, 21)  # stored as float32: rounded to it in every step, so serialising loses nothing
TRACK_BYTES = 4 * 4 + 8 + 16 * 4  # ids/counters as uint32, t_update float64, the rest float32: 88
_EMPTY = np.zeros((NFIELDS, 0))
_EMPTY_INT = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Tracker thresholds. Defaults are ByteTrack's published ones except the two confidence
    thresholds, lowered to fit how the offline detector scores people (0.3-0.6 when partly hidden
    or small): with ByteTrack's 0.5/0.6 many people at the edge of a crowd are never born, and
    pooled counting accuracy over the development footage is 0.73, against 0.91 at 0.4/0.4 (0.84
    at 0.45, 0.88 at 0.35; ``bench/accuracy.py --grid high_conf=... new_track_conf=...``).
    Time is in seconds so a camera's frame rate may vary. Replaying a state must use the params
    that produced it."""

    high_conf: float = 0.4  # first-stage detections (ByteTrack: 0.5)
    low_conf: float = 0.1  # below this a detection is ignored
    new_track_conf: float = 0.4  # a new track needs at least this (ByteTrack: 0.6)
    match_iou: float = 0.2  # stage 1: high detections vs confirmed tracks
    low_match_iou: float = 0.5  # stage 2: low detections vs tracks seen on the previous frame
    tentative_match_iou: float = 0.3  # stage 3: high detections vs tentative tracks
    min_hits: int = 2  # consecutive hits for a tentative track to be confirmed
    max_lost_s: float = 1.0  # a confirmed track unmatched for longer is removed (ByteTrack: 30 frames)
    std_position: float = 1.0 / 20  # of box height, per reference frame
    std_velocity: float = 1.0 / 160  # of box height per reference frame, per reference frame
    reference_fps: float = 30.0  # the frame rate the two noise figures are quoted for

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_conf <= self.high_conf <= 1.0:
            raise ValueError(f"need 0 <= low_conf <= high_conf <= 1, got {self.low_conf}, {self.high_conf}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.max_lost_s < 0 or self.reference_fps <= 0:
            raise ValueError("max_lost_s must be >= 0 and reference_fps > 0")

    # Normalised (divided by height^2) noise terms, per second of elapsed time.
    @property
    def _q_pos(self) -> float:
        return self.std_position**2 * self.reference_fps

    @property
    def _q_vel(self) -> float:
        return (self.std_velocity * self.reference_fps) ** 2 * self.reference_fps

    @property
    def _r(self) -> float:
        return self.std_position**2

    @property
    def _p0(self) -> tuple[float, float]:
        return (2 * self.std_position) ** 2, (10 * self.std_velocity * self.reference_fps) ** 2


DEFAULT_PARAMS = TrackerParams()

_HEADER = struct.Struct("<BIdH")  # version, next_id, last_time (NaN = none), number of tracks
_VERSION = 1
_MAX_ID = 2**32 - 1


@dataclass(frozen=True, slots=True, eq=False)
class TrackerState:
    """Everything the tracker remembers about one camera. Treat as immutable.

    ``tracks`` is an (NFIELDS, T) float64 matrix: rows ``ID`` ... ``PVV`` of this module, one
    column per live track, sorted by id; ``next_id`` is the id the next new track gets;
    ``last_time`` the time of the last frame stepped.
    """

    tracks: NDArray[np.float64] = field(default_factory=lambda: _EMPTY)
    next_id: int = 1
    last_time: float | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrackerState):
            return NotImplemented
        return (
            self.next_id == other.next_id
            and self.last_time == other.last_time
            and self.tracks.shape == other.tracks.shape
            and self.tracks.tobytes() == other.tracks.tobytes()
        )

    def __len__(self) -> int:
        return self.tracks.shape[1]

    def to_bytes(self) -> bytes:
        """Compact binary form: 15 bytes + 88 per track, field-major, little-endian."""
        m = self.tracks
        last = float("nan") if self.last_time is None else self.last_time
        return b"".join(
            (
                _HEADER.pack(_VERSION, self.next_id, last, m.shape[1]),
                m[:4].astype("<u4").tobytes(),
                m[T_UPDATE].astype("<f8").tobytes(),
                m[_F32].astype("<f4").tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> TrackerState:
        state, end = cls.read(data, 0)
        if end != len(data):
            raise ValueError(f"tracker state has {len(data)} bytes, expected {end}")
        return state

    @classmethod
    def read(cls, data: bytes | memoryview, offset: int = 0) -> tuple[TrackerState, int]:
        """Decode a state at ``offset``; return it and the offset just past it."""
        if len(data) < offset + _HEADER.size:
            raise ValueError("tracker state truncated: no header")
        version, next_id, last, n = _HEADER.unpack_from(data, offset)
        if version != _VERSION:
            raise ValueError(f"tracker state version {version} is not supported (reads {_VERSION})")
        offset += _HEADER.size
        end = offset + n * TRACK_BYTES
        if len(data) < end:
            raise ValueError(f"tracker state truncated: need {end} bytes, got {len(data)}")
        m = np.empty((NFIELDS, n))
        m[:4] = np.frombuffer(data, dtype="<u4", count=4 * n, offset=offset).reshape(4, n)
        offset += 16 * n
        m[T_UPDATE] = np.frombuffer(data, dtype="<f8", count=n, offset=offset)
        offset += 8 * n
        m[_F32] = np.frombuffer(data, dtype="<f4", count=16 * n, offset=offset).reshape(16, n)
        return cls(tracks=m, next_id=next_id, last_time=None if last != last else last), end

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for inspection (not the changelog format)."""
        return {
            "next_id": self.next_id,
            "last_time": self.last_time,
            "tracks": [t._asdict() for t in self.view()],
        }

    def view(self) -> list[Track]:
        """The live tracks (tentative, tracked and lost) as :class:`Track` tuples."""
        return _views(self.tracks, self.last_time or 0.0)


class Track(NamedTuple):
    """One track as the shell and tests see it."""

    track_id: int
    status: str  # tentative | tracked | lost
    box: tuple[float, float, float, float]  # last matched detection
    anchor: tuple[float, float]  # bottom-centre of ``box``
    velocity: tuple[float, float]  # of the anchor, px/s (Kalman)
    confidence: float
    age: int  # frames since birth
    hits: int  # matched detections
    time_since_update: float  # seconds

    @property
    def confirmed(self) -> bool:
        return self.status != "tentative"


def _views(m: NDArray[np.float64], now: float) -> list[Track]:
    out = []
    for r in m.T.tolist():
        x1, y1, x2, y2 = r[DET]
        vx1, _, vx2, vy2 = r[VEL]
        out.append(
            Track(
                track_id=int(r[ID]),
                status=_STATUS_NAMES[int(r[STATUS])],
                box=(x1, y1, x2, y2),
                anchor=((x1 + x2) * 0.5, y2),
                velocity=((vx1 + vx2) * 0.5, vy2),
                confidence=r[CONF],
                age=int(r[AGE]),
                hits=int(r[HITS]),
                time_since_update=max(now - r[T_UPDATE], 0.0),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Tracks:
    """What one step produced, aligned with the new state's track columns (for counting).

    ``kept_from[i]`` is the column in the *previous* state of track ``i`` (-1 for a track born in
    this step), or None when the tracks are exactly the previous ones; ``removed`` holds the
    previous columns this step dropped and ``removed_from`` their previous indices. ``previous``
    is the state's matrix before the step (for the anchors tracks moved from).
    """

    rows: NDArray[np.float64]  # the new state's (NFIELDS, T) matrix
    frame_time: float
    matched: NDArray[np.bool_]  # matched to a detection in this step (births included)
    kept_from: NDArray[np.intp] | None
    previous: NDArray[np.float64]  # the previous state's matrix
    removed: NDArray[np.float64]  # (NFIELDS, R)
    removed_from: NDArray[np.intp]

    def __len__(self) -> int:
        """Number of live tracks (columns of ``rows``)."""
        return self.rows.shape[1]

    @property
    def any_born(self) -> bool:
        return self.kept_from is not None and bool(np.count_nonzero(self.kept_from < 0))

    # Named accessors: consumers read fields through these, never ``rows``/``removed``/``previous``
    # by row number (the layout is this module's business). ``idx`` selects track columns; with a
    # slice the result is a view of the matrix: read it, never write to it.

    def boxes(self, idx: NDArray[np.intp] | slice = slice(None)) -> NDArray[np.float64]:
        """(4, n) last matched detection ``x1, y1, x2, y2`` of tracks ``idx`` (a lost track keeps
        the box it was last seen with)."""
        return self.rows[DET, idx]

    def confidences(self, idx: NDArray[np.intp] | slice = slice(None)) -> NDArray[np.float64]:
        """(n,) detector confidence of the last matched detection of tracks ``idx``."""
        return self.rows[CONF, idx]

    def last_update(self, idx: NDArray[np.intp] | slice = slice(None)) -> NDArray[np.float64]:
        """(n,) frame time tracks ``idx`` were last matched at."""
        return self.rows[T_UPDATE, idx]

    @property
    def statuses(self) -> NDArray[np.int8]:
        """(T,) ``TENTATIVE``, ``TRACKED`` or ``LOST`` per track."""
        return self.rows[STATUS].astype(np.int8)

    @property
    def removed_ids(self) -> NDArray[np.int64]:
        """(R,) ids of the tracks this step removed (aligned with ``removed_from``)."""
        return self.removed[ID].astype(np.int64)

    @property
    def removed_last_seen(self) -> NDArray[np.float64]:
        """(R,) frame time each removed track was last matched at."""
        return self.removed[T_UPDATE]

    def prev_anchors(self, idx: NDArray[np.intp] | slice = slice(None)) -> tuple[NDArray, NDArray]:
        """Anchor x, y of tracks ``idx`` before this step (NaN for tracks born in it)."""
        if self.kept_from is None:
            det = self.previous[DET, idx]
            x = det[0] + det[2]
            x *= 0.5
            return x, det[3]
        src = self.kept_from[idx]
        born = src < 0
        if not self.previous.shape[1]:
            nan = np.full(len(src), np.nan)
            return nan, nan.copy()
        det = self.previous[DET, src]  # born tracks read column -1 here and are blanked below
        x = det[0] + det[2]
        x *= 0.5
        y = det[3].copy()
        x[born] = np.nan
        y[born] = np.nan
        return x, y

    @property
    def ids(self) -> NDArray[np.int64]:
        """(T,) track ids."""
        return self.rows[ID].astype(np.int64)

    @property
    def anchors(self) -> NDArray[np.float64]:
        """(T, 2) current anchors (bottom-centre of ``boxes()``)."""
        det = self.rows[DET]
        return np.stack([(det[0] + det[2]) * 0.5, det[3]], axis=1)

    @property
    def confirmed(self) -> NDArray[np.bool_]:
        """(T,) True for tracked and lost tracks, False for tentative ones."""
        return self.rows[STATUS] != TENTATIVE

    def view(self) -> list[Track]:
        return _views(self.rows, self.frame_time)


def as_boxes(boxes: ArrayLike) -> NDArray[np.float64]:
    """Detections as an (N, 5) float64 array ``x1, y1, x2, y2, confidence`` (accepts the
    ``FrameDetections.boxes`` list of lists, or (N, 4) boxes with confidence 1)."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 2 and b.shape[1] == 5:
        return b
    if b.size == 0:
        return np.zeros((0, 5))
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 5) [x1, y1, x2, y2, confidence] or (N, 4), got shape {b.shape}")
    return np.hstack([b, np.ones((b.shape[0], 1))])


def _iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """IoU of (4, T) boxes (rows x1, y1, x2, y2) against (4+, N) boxes: a (T, N) matrix."""
    wh = np.minimum(a[2:4, :, None], b[2:4, None, :])
    wh -= np.maximum(a[0:2, :, None], b[0:2, None, :])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[0] * wh[1]
    sa = a[2:4] - a[0:2]
    sb = b[2:4] - b[0:2]
    union = np.add.outer(sa[0] * sa[1], sb[0] * sb[1])
    union -= inter
    np.maximum(union, 1e-9, out=union)
    inter /= union
    return inter


@lru_cache(maxsize=64)
def _predict_matrices(dt: float, q_pos: float, q_vel: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Constant-velocity covariance propagation for a step of ``dt`` seconds: ``F`` acting on
    (pxx, pxv, pvv) and the process noise column. Cached: a camera's frame interval repeats."""
    f = np.array([[1.0, 2.0 * dt, dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    q = np.array([[q_pos * dt], [0.0], [q_vel * dt]])
    f.setflags(write=False)
    q.setflags(write=False)
    return f, q


def _rigid_while_lost(m: NDArray[np.float64], lost: NDArray[np.bool_]) -> None:
    """Lost tracks coast as a rigid box: both x edges move with their mean velocity, both y edges
    with theirs. (In place, on the step's working copy.)

    The four edges are independent filters, so a noisy detector leaves them with different velocity
    estimates (say 6 and 4 px/frame for the left and right edge of a walking person). While a track
    is matched that is harmless; while it coasts through an occlusion the difference accumulates and
    the predicted box shrinks or grows without bound (a 52 px wide person predicted 9 px wide after
    22 frames), so the person cannot be matched again when they reappear. ByteTrack does the same
    with its (centre, aspect, height) state: a lost track's height velocity is zeroed.
    """
    v = m[VEL][:, lost]
    vx = v[0] + v[2]
    vx *= 0.5
    vy = v[1] + v[3]
    vy *= 0.5
    m[VEL.start, lost] = m[VEL.start + 2, lost] = vx
    m[VEL.start + 1, lost] = m[VEL.start + 3, lost] = vy


def _assign(
    sim: NDArray[np.float64], rows: NDArray[np.intp], cols: NDArray[np.intp], threshold: float
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Optimal assignment of ``rows`` x ``cols`` of ``sim``; pairs under ``threshold`` are
    infeasible. Returns matched (row, col) index arrays in ``sim``'s coordinates."""
    if not len(rows) or not len(cols):
        return _EMPTY_INT, _EMPTY_INT
    everyone = len(rows) == sim.shape[0] and len(cols) == sim.shape[1]  # the common case
    sub = sim if everyone else sim[rows[:, None], cols]
    sub = np.where(sub >= threshold, sub, 0.0)
    r, c = linear_sum_assignment(sub, maximize=True)
    ok = sub[r, c] > 0.0
    if np.count_nonzero(ok) < len(ok):
        r, c = r[ok], c[ok]
    return (r, c) if everyone else (rows[r], cols[c])


def step(
    state: TrackerState,
    boxes: ArrayLike,
    frame_time: float,
    params: TrackerParams = DEFAULT_PARAMS,
) -> tuple[TrackerState, Tracks]:
    """Advance the tracker by one frame. Pure: ``state`` is not modified.

    ``boxes`` are ``[x1, y1, x2, y2, confidence]`` rows; ``frame_time`` is the frame's capture time
    in seconds (epoch or relative; only differences matter). A time earlier than the previous
    frame's is treated as no time passing (the filter does not run backwards).
    """
    dets = as_boxes(boxes)
    n_det = dets.shape[0]
    frame_time = float(frame_time)
    old = state.tracks
    n_old = old.shape[1]
    last_time = frame_time if state.last_time is None else max(state.last_time, frame_time)
    if n_old == 0 and n_det == 0:
        return TrackerState(_EMPTY, state.next_id, last_time), Tracks(
            _EMPTY, frame_time, np.zeros(0, bool), None, _EMPTY, _EMPTY, _EMPTY_INT
        )
    dt = 0.0 if state.last_time is None else max(frame_time - state.last_time, 0.0)
    d = np.ascontiguousarray(dets.T)  # (5, N): x1, y1, x2, y2, confidence
    conf = d[4]

    m = old.copy()
    # 1. predict: x += v dt; P = F P F' + Q on the normalised (pxx, pxv, pvv)
    if n_old and dt > 0.0:
        if n_old > np.count_nonzero(old[STATUS] != LOST):
            _rigid_while_lost(m, old[STATUS] == LOST)
        m[MEAN] += m[VEL] * dt
        f, q = _predict_matrices(dt, params._q_pos, params._q_vel)
        cov = f @ m[PXX : PVV + 1]
        cov += q
        m[PXX : PVV + 1] = cov

    # 2-4. associate: every stage is an optimal IoU assignment
    status = old[STATUS]
    tentative_mask = status == TENTATIVE
    any_tentative = bool(np.count_nonzero(tentative_mask))
    det_of = None  # detection matched to each old track, -1 for none
    n_used = 0
    used = None
    if n_old and n_det:
        sim = _iou(m[MEAN], d)
        high_mask = conf >= params.high_conf
        all_high = np.count_nonzero(high_mask) == n_det
        high = np.arange(n_det) if all_high else high_mask.nonzero()[0]
        confirmed = np.arange(n_old) if not any_tentative else (~tentative_mask).nonzero()[0]
        r, c = _assign(sim, confirmed, high, params.match_iou)
        if len(r) == n_old:  # every track matched in the first stage (r is then 0..n-1, sorted)
            det_of = c
        else:
            det_of = np.full(n_old, -1, dtype=np.intp)
            det_of[r] = c
        n_used = len(c)
        if not all_high or any_tentative:
            used = np.zeros(n_det, dtype=bool)
            used[c] = True
        if not all_high:
            low = (~high_mask & (conf >= params.low_conf)).nonzero()[0]
            rest = ((status == TRACKED) & (det_of < 0)).nonzero()[0]
            r, c = _assign(sim, rest, low, params.low_match_iou)
            det_of[r] = c
            used[c] = True
            n_used += len(c)
        if any_tentative:
            r, c = _assign(sim, tentative_mask.nonzero()[0], high[~used[high]], params.tentative_match_iou)
            det_of[r] = c
            used[c] = True
            n_used += len(c)
    if det_of is None:
        det_of = np.full(n_old, -1, dtype=np.intp)
    matched_old = det_of >= 0
    n_matched = int(np.count_nonzero(matched_old))
    all_matched = n_matched == n_old

    # 5. Kalman update of the matched tracks (in place when all of them matched)
    if n_matched:
        mi = None if all_matched else matched_old.nonzero()[0]
        matched_dets = d[:, det_of if all_matched else det_of[mi]]
        z = matched_dets[:4]
        rows = m if all_matched else m[:, mi]
        gains = rows[PXX : PXV + 1] / (rows[PXX] + params._r)  # k0 (position), k1 (velocity)
        innov = z - rows[MEAN]
        rows[10:18].reshape(2, 4, -1)[...] += gains[:, None, :] * innov
        rows[PVV] -= gains[1] * rows[PXV]
        rows[PXX : PXV + 1] *= 1.0 - gains[0]
        rows[DET] = z
        rows[CONF] = matched_dets[4]
        rows[T_UPDATE] = frame_time
        if all_matched:
            rows[HITS : AGE + 1] += 1.0  # hits and age together
        else:
            rows[HITS] += 1.0
        if any_tentative:
            rows[STATUS] = (rows[STATUS] != TENTATIVE) | (rows[HITS] >= params.min_hits)  # TRACKED = 1
        else:
            rows[STATUS] = TRACKED
        if not all_matched:
            m[:, mi] = rows
    if not all_matched:
        m[AGE] += 1.0

    # lost tracks; drop unmatched tentative tracks and tracks lost for too long
    kept = None
    survivors = m
    removed_from = _EMPTY_INT
    if not all_matched:
        lost = ~matched_old & ~tentative_mask
        m[STATUS, lost] = LOST
        alive = matched_old | (lost & (frame_time - old[T_UPDATE] <= params.max_lost_s))
        if not alive.all():
            kept = alive.nonzero()[0]
            survivors = m[:, kept]
            removed_from = (~alive).nonzero()[0]

    # 6. births from unmatched confident detections
    nb = 0
    next_id = state.next_id
    if n_used < n_det:
        born_mask = conf >= max(params.new_track_conf, params.high_conf)
        if used is not None:
            born_mask &= ~used
        elif n_used:
            born_mask[det_of[matched_old]] = False
        born = born_mask.nonzero()[0]
        nb = len(born)
    if nb:
        if next_id + nb > _MAX_ID:
            raise OverflowError("track ids of this camera exhausted (2**32)")
        births = np.zeros((NFIELDS, nb))
        births[ID] = np.arange(next_id, next_id + nb)
        births[STATUS] = TRACKED if params.min_hits <= 1 else TENTATIVE
        births[HITS] = 1.0
        births[AGE] = 1.0
        births[T_UPDATE] = frame_time
        births[CONF] = conf[born]
        births[DET] = d[:4, born]
        births[MEAN] = births[DET]
        births[PXX], births[PVV] = params._p0
        next_id += nb
        new = np.concatenate([survivors, births], axis=1)
    else:
        new = survivors
    new[_F32] = new[_F32].astype(np.float32)  # canonical: exactly what to_bytes keeps

    # which tracks moved in this step, and where each came from
    if kept is None:
        matched = matched_old if not nb else np.concatenate([matched_old, np.ones(nb, bool)])
        kept_from = None if not nb else np.concatenate([np.arange(n_old), np.full(nb, -1, dtype=np.intp)])
    else:
        matched = matched_old[kept] if not nb else np.concatenate([matched_old[kept], np.ones(nb, bool)])
        kept_from = kept if not nb else np.concatenate([kept, np.full(nb, -1, dtype=np.intp)])
    removed = old[:, removed_from] if len(removed_from) else _EMPTY

    return TrackerState(new, next_id, last_time), Tracks(
        rows=new,
        frame_time=frame_time,
        matched=matched,
        kept_from=kept_from,
        previous=old,
        removed=removed,
        removed_from=removed_from,
    )
