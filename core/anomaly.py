"""Count anomalies: a line's count for an hour against its own baseline for that hour of the day.

Each (line, direction) keeps, per hour of the day (0-23, in the camera's time zone), an
exponentially weighted mean and variance of its hourly counts (:func:`update`). When an hour ends,
:func:`z_score` says how far its count is from that baseline in standard deviations; the
``count_anomaly_z`` alert metric is its absolute value. Variance gets a floor of the mean (a
Poisson count's variance is its mean) plus one, so a quiet line whose counts never varied does not
call every small change an anomaly. No score until the hour has been seen on ``min_days`` days.

>>> b = None
>>> for count in (100, 110, 95, 105, 100, 98, 102):
...     b = update(b, count)
>>> round(z_score(b, 101, min_days=5), 2), round(z_score(b, 20, min_days=5), 1)
(0.02, -8.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.2  # weight of the newest day: about the last week matters


@dataclass(frozen=True, slots=True)
class Baseline:
    """Hourly counts seen at one hour of the day: EWMA mean and variance, and how many days."""

    mean: float
    var: float
    days: int


def update(b: Baseline | None, count: float, alpha: float = ALPHA) -> Baseline:
    """The baseline after one more day's count for this hour (West's EWMA variance)."""
    if b is None:
        return Baseline(float(count), 0.0, 1)
    diff = count - b.mean
    mean = b.mean + alpha * diff
    var = (1 - alpha) * (b.var + alpha * diff * diff)
    return Baseline(mean, var, b.days + 1)


def z_score(b: Baseline | None, count: float, min_days: int) -> float | None:
    """How many standard deviations ``count`` is from the baseline (None before ``min_days``)."""
    if b is None or b.days < min_days:
        return None
    spread = math.sqrt(max(b.var, b.mean) + 1.0)
    return (count - b.mean) / spread


def hour_start(t: float) -> float:
    """The start of the UTC hour holding ``t`` (hours are whole in every time zone this serves)."""
    return math.floor(t / 3600.0) * 3600.0
