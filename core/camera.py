"""One camera's whole counting step: tracker + lines + zones as one pure, deterministic function.

``process_frame(state, frame, scene) -> FrameResult(state, crossings, zone_events, occupancy)``

* ``state`` is a :class:`CameraState`; keep it in a changelogged table as ``state.to_bytes()``
  (a few hundred bytes for a typical scene: 34 + 88 per track + 2 per track and line + 9 per
  track and zone, plus the line/zone ids).
* ``frame`` is anything with ``camera_id``, ``frame_seq``, ``captured_at`` and ``boxes``
  (``models.records.FrameDetections`` or :class:`Frame`).
* ``scene`` is the camera's lines and zones, compiled once per configuration
  (:meth:`core.counting.Scene.from_config`).

Same state + same frame = same result, bit for bit, also after ``to_bytes``/``from_bytes``.
A frame whose ``frame_seq`` is not greater than ``state.last_frame_seq`` was already processed
(a replay after a crash): it returns the same state object and no events (``already_processed``
tells beforehand).
Nothing here reads a clock: ``processed_at`` is the shell's business.

``params`` (:class:`CameraParams`, tracker and counting thresholds) may differ per camera and change
while it runs. The state records which params produced it (``params_digest``, a 64-bit digest of
their values, stored in ``to_bytes``), so a replay never folds frames into tracks made with other
params: when a frame comes with params whose digest differs from the state's, the tracks are
dropped first (as if the tracker had removed them all: tracks inside a zone leave it with an
``exit`` event; half-done line crossings are forgotten; ``next_id`` is kept so track ids never
repeat) and the new digest is stored. So a params change restarts the camera's tracks once,
whether it arrives live or is met again in a replay, and a change of the *default* params (a new
release) does the same for the cameras that use them. A fresh state, and a state stored by the
previous format (version 1, which did not record params), has digest 0: its first frame stamps
the digest, dropping any tracks it had.

For the shell: write ``to_bytes()`` to the table on every frame (that is the durable copy), but
keep the live ``CameraState`` objects of the cameras a worker owns in memory and decode with
``from_bytes`` only when one is missing (after a rebalance or a restart); decoding costs about as
much as a tenth of a step. The whole state is replaced on every frame: never mutate it.

>>> scene = Scene.from_config(lines=[("door", (200, 0), (200, 480))])
>>> state = CameraState()
>>> crossings = []
>>> for seq in range(12):   # one person walking right, 10 px per frame
...     x = 155 + 10 * seq
...     frame = Frame("cam-1", seq, 1_700_000_000 + seq / 25, [[x - 20, 100, x + 20, 200, 0.9]])
...     state, c, z, o = process_frame(state, frame, scene)
...     crossings += c
>>> [(c.event_id, c.direction) for c in crossings]   # arrow points down: left-to-right is out
[('cam-1:door:1:out:5', 'out')]
>>> CameraState.from_bytes(state.to_bytes()) == state
True
>>> len(state.to_bytes())
129
>>> state.params_digest == DEFAULT_CAMERA.digest != 0
True
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, Protocol

import numpy as np

from core.counting import (
    DEFAULT_COUNTING,
    CountingParams,
    Crossing,
    LineState,
    Scene,
    ZoneOccupancy,
    ZoneState,
    ZoneTransition,
    moved,
    update_lines,
    update_zones,
    zone_event,
)
from core.tracking import DEFAULT_PARAMS, TrackerParams, TrackerState, step

__all__ = [
    "Frame",
    "FrameLike",
    "CameraParams",
    "DEFAULT_CAMERA",
    "params_digest",
    "CameraState",
    "FrameResult",
    "already_processed",
    "process_frame",
    "reset_tracks",
    "Scene",
]


class FrameLike(Protocol):
    camera_id: str
    frame_seq: int
    captured_at: float
    boxes: Any  # (N, 5) x1, y1, x2, y2, confidence


class Frame(NamedTuple):
    """Minimal frame for the core (``FrameDetections`` has the same attributes)."""

    camera_id: str
    frame_seq: int
    captured_at: float
    boxes: Any


def _canonical(value: Any) -> str:
    """A parameter value as text; numbers as floats, so ``3`` and ``3.0`` are the same params."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


def params_digest(params: CameraParams) -> int:
    """64-bit digest of every field value of ``params`` (never 0, the "unknown" digest)."""
    text = ";".join(
        f"{part}.{f.name}={_canonical(getattr(obj, f.name))}"
        for part, obj in (("tracker", params.tracker), ("counting", params.counting))
        for f in fields(obj)
    )
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") or 1


@dataclass(frozen=True, slots=True)
class CameraParams:
    """Tracker and counting thresholds of one camera; ``digest`` identifies their values."""

    tracker: TrackerParams = DEFAULT_PARAMS
    counting: CountingParams = DEFAULT_COUNTING
    digest: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", params_digest(self))


DEFAULT_CAMERA = CameraParams()

# version, last_frame_seq, number of line ids, number of zone ids, params digest
_HEADER = struct.Struct("<BqBBQ")
_HEADER_V1 = struct.Struct("<BqBB")  # version 1: no params digest
_VERSION = 2
_HEADERS = {_VERSION: _HEADER, 1: _HEADER_V1}


def _pack_ids(ids: tuple[str, ...]) -> bytes:
    out = bytearray()
    for key in ids:
        raw = key.encode()
        if len(raw) > 255:
            raise ValueError(f"id too long to store: {key[:40]!r}...")
        out.append(len(raw))
        out += raw
    return bytes(out)


def _unpack_ids(data: bytes | memoryview, offset: int, n: int) -> tuple[tuple[str, ...], int]:
    ids = []
    for _ in range(n):
        size = data[offset]
        ids.append(bytes(data[offset + 1 : offset + 1 + size]).decode())
        offset += 1 + size
    return tuple(ids), offset


@dataclass(frozen=True, slots=True)
class CameraState:
    """Tracker + counting state of one camera. Immutable; compare with ``==``.

    ``params_digest`` is the :attr:`CameraParams.digest` of the params that produced it (0: none
    recorded yet); see the module docstring for what a frame with other params does."""

    tracker: TrackerState = field(default_factory=TrackerState)
    lines: LineState = field(default_factory=LineState)
    zones: ZoneState = field(default_factory=ZoneState)
    last_frame_seq: int = -1
    params_digest: int = 0

    @property
    def last_frame_time(self) -> float | None:
        return self.tracker.last_time

    def to_bytes(self) -> bytes:
        """Versioned binary form (little-endian, numpy buffers); see the module docstring."""
        n = self.tracker.tracks.shape[1]
        lines, zones = self.lines, self.zones
        if lines.side.shape != (n, len(lines.line_ids)) or zones.inside.shape != (n, len(zones.zone_ids)):
            raise ValueError("counting state is not aligned with the tracker's tracks")
        return b"".join(
            (
                _HEADER.pack(
                    _VERSION, self.last_frame_seq, len(lines.line_ids), len(zones.zone_ids), self.params_digest
                ),
                _pack_ids(lines.line_ids),
                _pack_ids(zones.zone_ids),
                self.tracker.to_bytes(),
                lines.side.astype(np.int8).tobytes(),
                lines.pending.astype(np.int8).tobytes(),
                zones.inside.astype(np.int8).tobytes(),
                zones.entered_at.astype("<f8").tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> CameraState:
        """Inverse of :meth:`to_bytes`; also reads version 1 (no params digest: 0)."""
        version = data[0] if len(data) else -1
        header = _HEADERS.get(version)
        if header is None:
            raise ValueError(f"camera state version {version} is not supported (reads 1, {_VERSION})")
        if len(data) < header.size:
            raise ValueError(f"camera state truncated: {len(data)} bytes, expected at least {header.size}")
        _, last_seq, n_lines, n_zones, *rest = header.unpack_from(data, 0)
        digest = rest[0] if rest else 0
        offset = header.size
        line_ids, offset = _unpack_ids(data, offset, n_lines)
        zone_ids, offset = _unpack_ids(data, offset, n_zones)
        tracker, offset = TrackerState.read(data, offset)
        n = tracker.tracks.shape[1]
        expected = offset + 2 * n * n_lines + 9 * n * n_zones
        if len(data) != expected:
            raise ValueError(f"camera state has {len(data)} bytes, expected {expected}")

        def take(dtype: str, count: int, shape: tuple[int, int]) -> np.ndarray:
            nonlocal offset
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
            offset += arr.nbytes
            return arr

        side = take("i1", n * n_lines, (n, n_lines))
        pending = take("i1", n * n_lines, (n, n_lines))
        inside = take("i1", n * n_zones, (n, n_zones))
        entered = take("<f8", n * n_zones, (n, n_zones)).astype(np.float64)
        return cls(
            tracker=tracker,
            lines=LineState(line_ids, side, pending),
            zones=ZoneState(zone_ids, inside, entered),
            last_frame_seq=last_seq,
            params_digest=digest,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for debugging and web views (not the changelog format)."""
        return {
            "last_frame_seq": self.last_frame_seq,
            "last_frame_time": self.last_frame_time,
            "params_digest": f"{self.params_digest:016x}",
            "tracker": self.tracker.to_dict(),
            "lines": {
                "line_ids": list(self.lines.line_ids),
                "side": self.lines.side.tolist(),
                "pending": self.lines.pending.tolist(),
            },
            "zones": {
                "zone_ids": list(self.zones.zone_ids),
                "inside": self.zones.inside.tolist(),
                "entered_at": [[None if v != v else v for v in row] for row in self.zones.entered_at.tolist()],
            },
        }


class FrameResult(NamedTuple):
    state: CameraState
    crossings: list[Crossing]
    zone_events: list[ZoneTransition]
    occupancy: list[ZoneOccupancy]  # one per zone; empty when the frame was skipped


def already_processed(state: CameraState, frame: FrameLike) -> bool:
    """True when ``frame`` is at or before the last frame folded into ``state`` (a replay)."""
    return int(frame.frame_seq) <= state.last_frame_seq


def process_frame(
    state: CameraState,
    frame: FrameLike,
    scene: Scene,
    params: CameraParams = DEFAULT_CAMERA,
) -> FrameResult:
    """Track and count one frame of one camera. Pure and deterministic (see the module docstring).

    With ``params`` other than those that produced ``state`` (``params.digest`` differs from
    ``state.params_digest``), the tracks are dropped before this frame: see :func:`reset_tracks`."""
    seq = int(frame.frame_seq)
    if seq <= state.last_frame_seq:
        return FrameResult(state, [], [], [])
    exits: list[ZoneTransition] = []
    if state.params_digest != params.digest:
        state, exits = reset_tracks(state, frame, scene, params)
    tracker, tracks = step(state.tracker, frame.boxes, float(frame.captured_at), params.tracker)
    camera_id = frame.camera_id
    motion = moved(tracks, params.counting) if (scene.line_ids or scene.zone_ids) and len(tracks.matched) else None
    lines, crossings = update_lines(state.lines, tracks, scene, camera_id, seq, params.counting, motion)
    zones, zone_events, occupancy = update_zones(state.zones, tracks, scene, camera_id, seq, params.counting, motion)
    if exits:
        zone_events = exits + zone_events
    return FrameResult(CameraState(tracker, lines, zones, seq, params.digest), crossings, zone_events, occupancy)


def reset_tracks(
    state: CameraState, frame: FrameLike, scene: Scene, params: CameraParams
) -> tuple[CameraState, list[ZoneTransition]]:
    """``state`` without its tracks, stamped with ``params.digest``: what :func:`process_frame` does
    before a frame whose params differ from the state's. ``next_id``, the last frame time and the
    line/zone ids are kept (line/zone state has no rows left); every track inside a zone of
    ``scene`` leaves it, with an ``exit`` event at ``frame`` (dwell up to when it was last seen)."""
    tracker = state.tracker
    exits: list[ZoneTransition] = []
    zones = state.zones
    if len(tracker) and zones.zone_ids:
        now = tracker.last_time or 0.0
        seq, t = int(frame.frame_seq), float(frame.captured_at)
        for i, track in enumerate(tracker.view()):
            last_seen = now - track.time_since_update
            for j, zone_id in enumerate(zones.zone_ids):
                if zones.inside[i, j] == 1 and zone_id in scene.zone_ids:
                    dwell = max(last_seen - float(zones.entered_at[i, j]), 0.0)
                    exits.append(zone_event(frame.camera_id, zone_id, track.track_id, "exit", seq, t, dwell))
    n_lines, n_zones = len(state.lines.line_ids), len(zones.zone_ids)
    empty = CameraState(
        tracker=TrackerState(next_id=tracker.next_id, last_time=tracker.last_time),
        lines=LineState(
            state.lines.line_ids, np.zeros((0, n_lines), dtype=np.int8), np.zeros((0, n_lines), dtype=np.int8)
        ),
        zones=ZoneState(zones.zone_ids, np.zeros((0, n_zones), dtype=np.int8), np.zeros((0, n_zones))),
        last_frame_seq=state.last_frame_seq,
        params_digest=params.digest,
    )
    return empty, exits
