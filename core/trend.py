"""Trend of a metric between two consecutive values, as the product notes define it (seed 003,
``update_realtime_aggregation``), plus a tolerance so noise does not flap.

Seed rule: ``change = current - previous`` (a missing previous counts as 0);
``change_pct = change / previous * 100`` when ``previous > 0``, else 0; the direction is
``increasing`` if ``change > 0``, ``decreasing`` if ``< 0``, else ``stable``; the strength is
``min(|change_pct| / 100, 1)``.

Tolerance: a change within ``tolerance_abs`` (same unit as the metric) **or** within
``tolerance_pct`` percent of the previous value is ``stable``. Occupancy goes up and down by one
person all the time; with e.g. ``tolerance_abs=1`` a one-person wobble stays ``stable`` while a
real build-up still reads ``increasing``. Both default to 0, which is the seed's rule exactly.
The strength is reported as the seed computes it, whatever the tolerance.

>>> trend(12, 10)
Trend(direction='increasing', strength=0.2, change=2.0, change_pct=20.0)
>>> trend(9, 10).direction, trend(10, 10).direction, trend(5, None).direction
('decreasing', 'stable', 'increasing')
>>> trend(11, 10, tolerance_abs=1).direction, trend(12, 10, tolerance_abs=1).direction
('stable', 'increasing')
>>> trend(30, 10).strength    # capped at 1
1.0
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Trend", "trend", "INCREASING", "DECREASING", "STABLE"]

INCREASING, DECREASING, STABLE = "increasing", "decreasing", "stable"


class Trend(NamedTuple):
    direction: str  # increasing | decreasing | stable (models.records.TRENDS)
    strength: float  # 0..1
    change: float
    change_pct: float  # 0 when there is no positive previous value


def trend(
    current: float,
    previous: float | None,
    tolerance_abs: float = 0.0,
    tolerance_pct: float = 0.0,
) -> Trend:
    """Compare ``current`` with ``previous``; see the module docstring for the rule."""
    if tolerance_abs < 0 or tolerance_pct < 0:
        raise ValueError("tolerances must be >= 0")
    prev = 0.0 if previous is None else float(previous)
    change = float(current) - prev
    change_pct = change / prev * 100.0 if prev > 0 else 0.0
    strength = min(abs(change_pct) / 100.0, 1.0)
    within = abs(change) <= tolerance_abs or (prev > 0 and abs(change_pct) <= tolerance_pct)  # change 0 included
    direction = STABLE if within else INCREASING if change > 0 else DECREASING
    return Trend(direction, strength, change, change_pct)
