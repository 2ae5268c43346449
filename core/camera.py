"""One camera's whole counting step: tracker + lines + zones as one pure, deterministic function.

``process_frame(state, frame, scene) -> FrameResult(state, crossings, zone_events, occupancy)``

* ``state`` is a :class:`CameraState`; keep it in a changelogged table as ``state.to_bytes()``
  (a few hundred bytes for a typical scene: 26 + 88 per track + 2 per track and line + 9 per
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
121
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
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
)
from core.tracking import DEFAULT_PARAMS, TrackerParams, TrackerState, step

__all__ = [
    "Frame",
    "FrameLike",
    "CameraParams",
    "CameraState",
    "FrameResult",
    "already_processed",
    "process_frame",
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


@dataclass(frozen=True, slots=True)
class CameraParams:
    tracker: TrackerParams = DEFAULT_PARAMS
    counting: CountingParams = DEFAULT_COUNTING


DEFAULT_CAMERA = CameraParams()

_HEADER = struct.Struct("<BqBB")  # version, last_frame_seq, number of line ids, number of zone ids
_VERSION = 1


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
    """Tracker + counting state of one camera. Immutable; compare with ``==``."""

    tracker: TrackerState = field(default_factory=TrackerState)
    lines: LineState = field(default_factory=LineState)
    zones: ZoneState = field(default_factory=ZoneState)
    last_frame_seq: int = -1

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
                _HEADER.pack(_VERSION, self.last_frame_seq, len(lines.line_ids), len(zones.zone_ids)),
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
        version, last_seq, n_lines, n_zones = _HEADER.unpack_from(data, 0)
        if version != _VERSION:
            raise ValueError(f"camera state version {version} is not supported (reads {_VERSION})")
        offset = _HEADER.size
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
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for debugging and web views (not the changelog format)."""
        return {
            "last_frame_seq": self.last_frame_seq,
            "last_frame_time": self.last_frame_time,
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
    """Track and count one frame of one camera. Pure and deterministic (see the module docstring)."""
    seq = int(frame.frame_seq)
    if seq <= state.last_frame_seq:
        return FrameResult(state, [], [], [])
    tracker, tracks = step(state.tracker, frame.boxes, float(frame.captured_at), params.tracker)
    camera_id = frame.camera_id
    motion = moved(tracks, params.counting) if (scene.line_ids or scene.zone_ids) and len(tracks.matched) else None
    lines, crossings = update_lines(state.lines, tracks, scene, camera_id, seq, params.counting, motion)
    zones, zone_events, occupancy = update_zones(state.zones, tracks, scene, camera_id, seq, params.counting, motion)
    return FrameResult(CameraState(tracker, lines, zones, seq), crossings, zone_events, occupancy)
