"""Event-time windows: tumbling assignment, watermark and grace, rolling sums. Pure functions
over a small serialisable state; no clock is read (the shell passes times in).

Windows are half-open, ``[start, start + size)``, aligned to the epoch, 1 minute by default.
The **watermark** is the largest event time seen minus the grace period; a window is *closed*
(its count final) once the watermark reaches its end. An event whose window is still open is
counted in *its own* window however late it is; an event whose window has closed is reported
``too_late`` (never silently dropped: the shell counts it and may dead-letter it) and changes
nothing.

>>> w = Windowing(size_s=60, grace_s=30)
>>> window_bounds(125.0, 60)
(120.0, 180.0)
>>> state = WindowState()
>>> state, r = add_event(state, ("door", "in"), 130.0, w)      # window [120, 180)
>>> state, r = add_event(state, ("door", "in"), 215.0, w)      # watermark 185: [120, 180) closes
>>> [(u.window_start, u.count, u.final) for u in r.updates]
[(180.0, 1, False), (120.0, 1, True)]
>>> state, r = add_event(state, ("door", "in"), 170.0, w)      # its window is closed: too late
>>> r.accepted, r.lateness
(False, 'too_late')
>>> state, r = add_event(state, ("door", "in"), 190.0, w)      # late, but within grace
>>> r.accepted, r.lateness, r.updates[0].count
(True, 'late', 2)
>>> rolling_sum(state, ("door", "in"), end=240.0, span_s=900)
3
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "Windowing",
    "WindowState",
    "WindowUpdate",
    "AddResult",
    "window_start",
    "window_bounds",
    "watermark",
    "is_closed",
    "classify",
    "add_event",
    "advance",
    "rolling_sum",
    "rolling_sums",
]

ON_TIME, LATE, TOO_LATE = "on_time", "late", "too_late"


@dataclass(frozen=True, slots=True)
class Windowing:
    """Window size, grace period and the span of rolling sums, in seconds.

    ``retain_s`` is how long closed windows are kept for rolling sums (at least ``rolling_s``).
    """

    size_s: float = 60.0
    grace_s: float = 30.0
    rolling_s: float = 900.0  # the product's rolling 15-minute sums

    def __post_init__(self) -> None:
        if self.size_s <= 0 or self.grace_s < 0 or self.rolling_s < self.size_s:
            raise ValueError("need size_s > 0, grace_s >= 0 and rolling_s >= size_s")

    @property
    def retain_s(self) -> float:
        return self.rolling_s + self.size_s


DEFAULT_WINDOWING = Windowing()


def window_start(t: float, size_s: float = 60.0) -> float:
    """Start of the tumbling window holding event time ``t``.

    >>> window_start(59.999, 60), window_start(60.0, 60), window_start(-1.0, 60)
    (0.0, 60.0, -60.0)
    """
    return float(math.floor(t / size_s) * size_s)


def window_bounds(t: float, size_s: float = 60.0) -> tuple[float, float]:
    """``(start, end)`` of the tumbling window holding ``t``; ``start <= t < end``."""
    start = window_start(t, size_s)
    return start, start + size_s


def watermark(max_event_time: float | None, grace_s: float) -> float:
    """Event time up to which windows are complete: the largest event time seen minus grace."""
    return -math.inf if max_event_time is None else max_event_time - grace_s


def is_closed(window_end: float, wm: float) -> bool:
    """A window is closed (final) once the watermark has reached its end."""
    return window_end <= wm


def classify(t: float, max_event_time: float | None, windowing: Windowing = DEFAULT_WINDOWING) -> str:
    """``on_time`` (not behind the newest event), ``late`` (behind it, but its window is still
    open) or ``too_late`` (its window has closed).

    >>> classify(100.0, 90.0), classify(80.0, 90.0), classify(50.0, 200.0)
    ('on_time', 'late', 'too_late')
    """
    if max_event_time is None or t >= max_event_time:
        return ON_TIME
    _, end = window_bounds(t, windowing.size_s)
    return TOO_LATE if is_closed(end, watermark(max_event_time, windowing.grace_s)) else LATE


class WindowUpdate(NamedTuple):
    """A window's count as it now stands (``final`` once closed), for ``WindowCount``."""

    key: Hashable
    window_start: float
    window_end: float
    count: int
    final: bool


class AddResult(NamedTuple):
    accepted: bool
    lateness: str  # on_time | late | too_late
    window_start: float
    window_end: float
    updates: list[WindowUpdate]  # the event's window (if accepted), then windows closed by it


@dataclass(frozen=True, slots=True)
class WindowState:
    """Counts per ``(key, window_start)``, the windows already closed, and the newest event time.
    Keys are any hashable (e.g. ``(line_id, direction)``). Treat as immutable."""

    counts: dict[tuple[Hashable, float], int] = field(default_factory=dict)
    closed_until: float = -math.inf  # every window ending at or before this is final and emitted
    max_event_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (keys must be JSON-friendly: strings or lists of strings)."""
        return {
            "counts": [
                [list(k) if isinstance(k, tuple) else k, s, c] for (k, s), c in sorted(self.counts.items(), key=_order)
            ],
            "closed_until": None if self.closed_until == -math.inf else self.closed_until,
            "max_event_time": self.max_event_time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowState:
        counts = {(tuple(k) if isinstance(k, list) else k, float(s)): int(c) for k, s, c in data["counts"]}
        closed = data.get("closed_until")
        return cls(counts, -math.inf if closed is None else float(closed), data.get("max_event_time"))


def _order(item: tuple[tuple[Hashable, float], int]) -> tuple[float, str]:
    (key, start), _ = item
    return start, repr(key)


def add_event(
    state: WindowState, key: Hashable, t: float, windowing: Windowing = DEFAULT_WINDOWING, n: int = 1
) -> tuple[WindowState, AddResult]:
    """Count ``n`` events of ``key`` at event time ``t``. Pure: returns a new state.

    The result lists the updated count of the event's window, then every window that this
    event's time closed (``final=True``), oldest first.
    """
    start, end = window_bounds(t, windowing.size_s)
    lateness = classify(t, state.max_event_time, windowing)
    if lateness == TOO_LATE or end <= state.closed_until:
        return state, AddResult(False, TOO_LATE, start, end, [])
    counts = dict(state.counts)
    counts[(key, start)] = counts.get((key, start), 0) + n
    update = WindowUpdate(key, start, end, counts[(key, start)], False)
    newest = t if state.max_event_time is None else max(state.max_event_time, t)
    # an accepted event's own window never closes here: its end is after t >= the new watermark
    new_state, closed = _close(WindowState(counts, state.closed_until, newest), windowing)
    return new_state, AddResult(True, lateness, start, end, [update, *closed])


def advance(
    state: WindowState, event_time: float, windowing: Windowing = DEFAULT_WINDOWING
) -> tuple[WindowState, list[WindowUpdate]]:
    """Move the newest event time forward without an event (e.g. a frame with no crossings, so
    quiet lines' windows still close); returns the windows this closed."""
    if state.max_event_time is not None and event_time <= state.max_event_time:
        return state, []
    return _close(WindowState(state.counts, state.closed_until, event_time), windowing)


def _close(state: WindowState, windowing: Windowing) -> tuple[WindowState, list[WindowUpdate]]:
    """Finalise windows whose end the watermark has reached; forget those past retention."""
    wm = watermark(state.max_event_time, windowing.grace_s)
    size = windowing.size_s
    newly_closed_until = window_start(wm, size) if wm != -math.inf else -math.inf  # end of last closed window
    if newly_closed_until <= state.closed_until:
        return state, []
    closed = [
        WindowUpdate(k, s, s + size, c, True)
        for (k, s), c in sorted(state.counts.items(), key=_order)
        if state.closed_until < s + size <= newly_closed_until
    ]
    horizon = newly_closed_until - windowing.retain_s
    counts = {ks: c for ks, c in state.counts.items() if ks[1] >= horizon}
    return WindowState(counts, newly_closed_until, state.max_event_time), closed


def rolling_sum(
    state: WindowState, key: Hashable, end: float, span_s: float | None = None, windowing: Windowing = DEFAULT_WINDOWING
) -> int:
    """Sum of ``key``'s windows that lie within ``[end - span, end)`` (``end`` is rounded down to
    a window boundary): the rolling 15-minute count by default."""
    span = windowing.rolling_s if span_s is None else span_s
    hi = window_start(end, windowing.size_s)
    lo = hi - span
    return sum(c for (k, s), c in state.counts.items() if k == key and lo <= s < hi)


def rolling_sums(
    state: WindowState, keys: Iterable[Hashable], end: float, windowing: Windowing = DEFAULT_WINDOWING
) -> dict[Hashable, int]:
    """:func:`rolling_sum` for several keys at once."""
    return {k: rolling_sum(state, k, end, windowing=windowing) for k in keys}
