"""Reconnect schedule: exponential backoff with jitter, then retries at the cap.

Failure ``n`` (1-based) waits ``base * 2**(n-1)`` seconds, capped at ``cap``; once ``retry_count``
consecutive attempts have failed the camera is reported offline and every further retry waits
``cap``. Jitter shortens a delay by up to ``jitter`` of itself, so a fleet of grabbers that lost the
same camera server does not reconnect in lock-step, and no delay ever exceeds the cap.

>>> [backoff_delay(n, base_s=5, cap_s=60, retry_count=3, jitter=0.0) for n in range(1, 6)]
[5.0, 10.0, 20.0, 60.0, 60.0]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DEFAULT_CAP_S = 60.0
DEFAULT_JITTER = 0.2


def backoff_delay(
    failures: int,
    base_s: float,
    cap_s: float = DEFAULT_CAP_S,
    retry_count: int = 3,
    jitter: float = DEFAULT_JITTER,
    rand: float | None = None,
) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (``rand`` in [0, 1) for tests)."""
    if failures <= 0:
        return 0.0
    cap_s = max(cap_s, 0.0)
    raw = cap_s if failures > retry_count else min(cap_s, base_s * 2.0 ** (failures - 1))
    r = random.random() if rand is None else rand
    return raw * (1.0 - jitter * r)


@dataclass
class Backoff:
    """Counts consecutive failures of one camera and says how long to wait and whether it is offline."""

    base_s: float
    retry_count: int
    cap_s: float = DEFAULT_CAP_S
    jitter: float = DEFAULT_JITTER
    failures: int = field(default=0, init=False)

    def failed(self) -> float:
        """Record a failure; returns the delay before the next attempt."""
        self.failures += 1
        return backoff_delay(self.failures, self.base_s, self.cap_s, self.retry_count, self.jitter)

    def succeeded(self) -> None:
        self.failures = 0

    @property
    def exhausted(self) -> bool:
        """``retry_count`` consecutive attempts failed: report the camera offline (retries go on)."""
        return self.failures >= max(self.retry_count, 1)
