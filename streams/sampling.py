"""Sampling a frame stream down to a target fps.

A frame is taken when it arrives no earlier than half a period before the next due time; the due
time then advances by exactly one period, so a faster source yields the target rate on average, a
source at the target rate with jittery timestamps loses nothing, and a slower source keeps every
frame. After a gap (stall, slow source) the schedule restarts from the frame instead of bursting to
catch up.

>>> s = FpsSampler(10.0)
>>> sum(s.want(i / 24) for i in range(240))  # 10 s of a 24 fps source
100
"""

from __future__ import annotations


class FpsSampler:
    def __init__(self, target_fps: float) -> None:
        if target_fps <= 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        self.period = 1.0 / target_fps
        self._due: float | None = None

    def want(self, t: float) -> bool:
        """Whether the frame captured at ``t`` (seconds, any monotonic-ish clock) is wanted."""
        if self._due is None or t - self._due >= self.period:
            self._due = t + self.period
            return True
        if t >= self._due - self.period / 2:
            self._due += self.period
            return True
        return False

    def reset(self) -> None:
        self._due = None
