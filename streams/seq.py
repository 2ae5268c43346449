"""``frame_seq``: capture-clock microseconds, strictly increasing per camera.

``max(previous + 1, captured_us)`` keeps the sequence increasing across grabber restarts and
fail-overs (a new grabber starts from the clock, which is past anything the old one sent) and
across clock hiccups within one grabber.

>>> clock = SeqClock()
>>> clock.next(1.5), clock.next(1.5), clock.next(1.0)
(1500000, 1500001, 1500002)
"""

from __future__ import annotations


def next_frame_seq(previous: int | None, captured_at: float) -> int:
    now_us = int(captured_at * 1_000_000)
    return now_us if previous is None else max(previous + 1, now_us)


class SeqClock:
    def __init__(self, last: int | None = None) -> None:
        self.last = last

    def next(self, captured_at: float) -> int:
        self.last = next_frame_seq(self.last, captured_at)
        return self.last
