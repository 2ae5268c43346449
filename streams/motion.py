"""Motion gate: skip the detector on frames where nothing moved in the region that matters.

Most cameras look at an empty or still scene most of the time, and detection is by far the most
expensive step of the grabber. Before a frame goes to the detector, the gate compares it with the
frame the detector last ran on, cheaply:

1. the frame is shrunk to ``width`` (160) px wide with ``cv2.INTER_AREA`` (which averages the
   pixels, so sensor noise shrinks with them) and turned grey;
2. the absolute difference with the *reference* -- the small frame the detector last ran on -- is
   thresholded at ``pixel_threshold`` (16) grey levels;
3. the changed pixels inside the region of interest (:func:`roi_box`) are counted; the detector
   runs when they are at least ``min_fraction`` of the region, otherwise the frame is *gated*.

Why the frame the detector last ran on and not the previous frame: a gated frame repeats the
boxes of that detection (``streams.grabber``), and those are still right exactly as long as the
scene has not changed since. Compared with the reference, slow movement adds up until it opens
the gate; compared frame to frame it could creep past unseen.

The detector also runs, whatever the difference says:

* on a camera's first frame, after a reconnect or a restart of the file, after a config change and
  when the frame size changes (:meth:`MotionGate.reset`, or a new ``epoch`` given to
  :meth:`MotionGate.check`);
* when ``max_skip_s`` (2 s) have passed since it last ran: a safety net against anything the gate
  cannot see (a person slower than the gate's resolution, a change of light that shifts every
  pixel by less than the threshold), and it bounds how stale a repeated box can be. The tracker
  drops a track after ``max_lost_s`` (1 s) without a detection; repeated boxes keep a still
  person's track alive, so the net only has to catch what the gate misses, not feed the tracker.

Region of interest (:func:`roi_box`): the bounding box of the camera's lines and zones (their
points), cut to the detection ``region``'s bounding box when one is set (detections outside it
are dropped anyway), grown by ``roi_margin`` (25 %) of the frame height on every side: a person
standing on a line has their body up to a person's height above it, and someone walking towards a
line must be detected a few frames before it so that their track is confirmed (``min_hits``) when
they cross. A camera without lines and zones uses the whole frame (the region's box if set).
Movement outside the region does not open the gate.

Defaults, measured (``bench/accuracy.py --motion-gating both``, ``bench/quiet_clip.py``,
``tests/unit/test_streams_motion.py``; figures in ``streams/README.md``):

* cost: 0.3-0.5 ms per 640x360/640x480 frame, 1.5-1.6 ms per 1224x370, 1.9-2.0 ms per 1080p
  (one core of this shared 2-core machine, busy; the ``INTER_AREA`` resize is nearly all of it),
  against 57-435 ms for a PyTorch detection on its CPU;
* ``pixel_threshold`` 16 and ``min_fraction`` 0.002: on the quiet clip (sensor noise sigma 2 and
  mp4v artefacts) no small pixel of the region changes by more than 8 levels between frames,
  so the noise floor is 0 at any of 8..24; on the busy development footage 0.9-9 % of the small
  pixels change between consecutive frames. 0.002 (29 small pixels of a 160x90 frame) is low
  enough that a person 40 px tall in a 640x360 frame moving by their width opens the gate
  (a test), and has a wide margin: pooled counting accuracy is 0.905 with the gate off, at
  0.002, 0.01 and 0.03, and falls to 0.716 at 0.1 (two thirds of the busy frames gated);
* ``max_skip_s`` 2: twice the tracker's ``max_lost_s``; a stale repeated box lives at most that long.

>>> import numpy as np
>>> gate = MotionGate(MotionParams())
>>> still = np.full((360, 640, 3), 90, dtype=np.uint8)
>>> [gate.check(still, t / 10) for t in range(3)]   # the first frame runs, still ones are gated
[True, False, False]
>>> moved = still.copy()
>>> moved[100:220, 300:340] = 200                   # somebody walks in
>>> gate.check(moved, 0.3), gate.check(still, 2.5)  # motion opens it; so does max_skip_s
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MotionParams",
    "DEFAULT_MOTION",
    "Decision",
    "GateState",
    "MotionGate",
    "roi_box",
    "roi_for_camera",
    "downscale",
    "roi_mask",
    "changed_fraction",
    "decide",
]

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True, slots=True)
class MotionParams:
    """Gate parameters (see the module docstring for how the defaults were chosen)."""

    width: int = 160  # the frame is compared at this width (grey, INTER_AREA)
    pixel_threshold: int = 16  # grey levels a small pixel must change by to count as changed
    min_fraction: float = 0.002  # changed share of the region of interest that runs the detector
    max_skip_s: float = 2.0  # the detector runs at least this often
    roi_margin: float = 0.25  # the lines/zones box grows by this share of the frame height

    def __post_init__(self) -> None:
        if self.width < 16:
            raise ValueError(f"width must be >= 16, got {self.width}")
        if not 0 < self.pixel_threshold < 255:
            raise ValueError(f"pixel_threshold must be within 1..254, got {self.pixel_threshold}")
        if not 0.0 < self.min_fraction < 1.0:
            raise ValueError(f"min_fraction must be within (0, 1), got {self.min_fraction}")
        if self.max_skip_s < 0 or self.roi_margin < 0:
            raise ValueError("max_skip_s and roi_margin must be >= 0")


DEFAULT_MOTION = MotionParams()


# --------------------------------------------------------------------------- region of interest


def _bbox(points: Iterable[Sequence[float]]) -> Box | None:
    pts = np.asarray([p[:2] for p in points], dtype=float).reshape(-1, 2)
    if not len(pts):
        return None
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def roi_box(
    frame_size: tuple[int, int],
    lines: Iterable[tuple[Sequence[float], Sequence[float]]] = (),
    zones: Iterable[Sequence[Sequence[float]]] = (),
    region: Sequence[Sequence[float]] | None = None,
    margin: float = DEFAULT_MOTION.roi_margin,
) -> Box:
    """Region of interest ``(x1, y1, x2, y2)`` in frame pixels (see the module docstring).

    ``frame_size`` is (width, height); ``lines`` are (start, end) pairs, ``zones`` polygons.

    >>> roi_box((640, 360), lines=[((320, 100), (320, 200))])   # 25 % of 360 = 90 px around it
    (230.0, 10.0, 410.0, 290.0)
    >>> roi_box((640, 360))                                      # nothing to count at: all of it
    (0.0, 0.0, 640.0, 360.0)
    >>> roi_box((640, 360), lines=[((0, 300), (640, 300))], region=[[0, 0], [300, 0], [300, 360]])
    (0.0, 210.0, 390.0, 360.0)
    """
    w, h = frame_size
    points = [p for line in lines for p in line] + [p for poly in zones for p in poly]
    box = _bbox(points) or (0.0, 0.0, float(w), float(h))
    if region:
        r = _bbox(region)
        assert r is not None
        cut = (max(box[0], r[0]), max(box[1], r[1]), min(box[2], r[2]), min(box[3], r[3]))
        box = cut if cut[0] <= cut[2] and cut[1] <= cut[3] else r
    d = margin * h
    return (
        max(0.0, box[0] - d),
        max(0.0, box[1] - d),
        min(float(w), box[2] + d),
        min(float(h), box[3] + d),
    )


def roi_for_camera(config: Any, frame_size: tuple[int, int], margin: float = DEFAULT_MOTION.roi_margin) -> Box:
    """:func:`roi_box` of a ``models.records.CameraConfig`` (its lines, zones and detection region)."""
    detection = getattr(config, "detection", None)
    return roi_box(
        frame_size,
        [(line.start, line.end) for line in getattr(config, "lines", None) or ()],
        [zone.polygon for zone in getattr(config, "zones", None) or ()],
        detection.region if detection is not None else None,
        margin,
    )


# --------------------------------------------------------------------------- the pure parts


def downscale(image: np.ndarray, width: int = DEFAULT_MOTION.width) -> np.ndarray:
    """``image`` (BGR or grey) shrunk to ``width`` px wide (aspect kept), grey, uint8."""
    import cv2

    h, w = image.shape[:2]
    size = (min(width, w), max(1, round(h * min(width, w) / w)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small


def roi_mask(small_shape: tuple[int, ...], frame_size: tuple[int, int], box: Box | None) -> np.ndarray:
    """Boolean mask of the small frame's pixels inside ``box`` (frame pixels); all True for None."""
    sh, sw = small_shape[:2]
    mask = np.zeros((sh, sw), dtype=bool)
    if box is None:
        mask[:] = True
        return mask
    sx, sy = sw / frame_size[0], sh / frame_size[1]
    x1, y1 = int(np.floor(box[0] * sx)), int(np.floor(box[1] * sy))
    x2, y2 = int(np.ceil(box[2] * sx)), int(np.ceil(box[3] * sy))
    mask[max(0, y1) : max(y1 + 1, y2), max(0, x1) : max(x1 + 1, x2)] = True
    return mask


def changed_fraction(small: np.ndarray, reference: np.ndarray, mask: np.ndarray, pixel_threshold: int) -> float:
    """Share of the ``mask`` pixels whose grey level differs by more than ``pixel_threshold``."""
    diff = np.abs(small.astype(np.int16) - reference.astype(np.int16)) > pixel_threshold
    n = int(np.count_nonzero(mask))
    return int(np.count_nonzero(diff & mask)) / n if n else 0.0


@dataclass
class GateState:
    """What the gate keeps per camera: the small frame the detector last ran on, and when."""

    reference: np.ndarray | None = None
    detected_at: float | None = None


class Decision(NamedTuple):
    run: bool  # True: run the detector on this frame
    reason: str  # first | max_skip | motion | still
    fraction: float  # changed share of the region (0 when not compared)


def decide(
    state: GateState, small: np.ndarray, mask: np.ndarray, t: float, params: MotionParams = DEFAULT_MOTION
) -> Decision:
    """Whether to run the detector on the frame ``small`` captured at ``t`` (seconds). Pure."""
    if state.reference is None or state.detected_at is None or state.reference.shape != small.shape:
        return Decision(True, "first", 0.0)
    if t - state.detected_at >= params.max_skip_s or t < state.detected_at:
        return Decision(True, "max_skip", 0.0)
    fraction = changed_fraction(small, state.reference, mask, params.pixel_threshold)
    if fraction >= params.min_fraction:
        return Decision(True, "motion", fraction)
    return Decision(False, "still", fraction)


# --------------------------------------------------------------------------- the stateful shell


@dataclass
class MotionGate:
    """One camera's gate: ``check`` each frame; after a detection that succeeded, ``detected``.

    ``roi`` is the region of interest in frame pixels (None: the whole frame; see
    :func:`roi_box`). A frame for which ``check`` said True becomes the reference only once
    :meth:`detected` confirms the detector ran on it (a failed inference keeps the old one, so
    the next frame runs again). ``epoch``: anything that changes when the stream restarts (a
    reconnect); a new value resets the gate.

    >>> import numpy as np
    >>> gate, frame = MotionGate(), np.zeros((90, 160), dtype=np.uint8)
    >>> gate.check(frame, 0.0, detected=False), gate.check(frame, 0.1)  # not confirmed: runs again
    (True, True)
    >>> gate.check(frame, 0.2), gate.gated, gate.checked
    (False, 1, 3)
    """

    params: MotionParams = DEFAULT_MOTION
    roi: Box | None = None
    frame_size: tuple[int, int] | None = None  # (width, height) ``roi`` was made for (informational)
    state: GateState = field(default_factory=GateState)
    last: Decision | None = None
    checked: int = 0  # frames checked since the gate was made
    gated: int = 0  # of which the detector was skipped
    _mask: np.ndarray | None = field(default=None, repr=False)
    _mask_key: tuple[Any, ...] | None = field(default=None, repr=False)
    _pending: tuple[np.ndarray, float] | None = field(default=None, repr=False)
    _epoch: Any = field(default=None, repr=False)

    def reset(self) -> None:
        """Forget the reference: the next frame runs the detector."""
        self.state = GateState()
        self._pending = None

    def check(self, image: np.ndarray, t: float, epoch: Any = None, *, detected: bool = True) -> bool:
        """True when the detector should run on ``image`` (captured at ``t``, seconds).

        ``detected=True`` (the default) confirms at once that it will (benchmarks, where
        inference never fails); the grabber passes False and calls :meth:`detected` itself."""
        if epoch != self._epoch:
            self._epoch = epoch
            self.reset()
        small = downscale(image, self.params.width)
        h, w = image.shape[:2]
        key = (small.shape, w, h, self.roi)
        if key != self._mask_key:
            self._mask = roi_mask(small.shape, (w, h), self.roi)
            self._mask_key = key
        assert self._mask is not None
        decision = decide(self.state, small, self._mask, t, self.params)
        self.last = decision
        self.checked += 1
        if not decision.run:
            self.gated += 1
            self._pending = None
            return False
        self._pending = (small, t)
        if detected:
            self.detected()
        return True

    def detected(self) -> None:
        """The detector ran on the frame ``check`` last let through: it becomes the reference."""
        if self._pending is not None:
            self.state = GateState(self._pending[0], self._pending[1])
            self._pending = None

    @property
    def gated_ratio(self) -> float:
        return self.gated / self.checked if self.checked else 0.0
