"""The aggregate refresher's windows: bottom-up order, whole buckets, the current bucket left real-time."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import sql.refresh as refresh
from sql.refresh import AGGREGATES, floor_to, windows


def test_order_is_bottom_up():
    views = [a.view for a in AGGREGATES]
    for base in ("crossings", "occupancy"):
        assert views.index(f"{base}_1m") < views.index(f"{base}_1h") < views.index(f"{base}_1d")


def test_windows_end_at_the_current_bucket_and_cover_the_policy_offsets():
    now = datetime(2026, 3, 4, 15, 42, 31, tzinfo=UTC)
    got = {v: (s, e) for v, s, e in windows(now)}
    assert got["crossings_1m"] == (datetime(2026, 3, 2, 15, 42, tzinfo=UTC), datetime(2026, 3, 4, 15, 42, tzinfo=UTC))
    assert got["crossings_1h"][1] == datetime(2026, 3, 4, 15, tzinfo=UTC)
    assert got["occupancy_1d"] == (datetime(2026, 2, 25, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC))
    for agg in AGGREGATES:
        start, end = got[agg.view]
        assert floor_to(start, agg.bucket) == start and floor_to(end, agg.bucket) == end
        assert end - start >= agg.start_offset - agg.bucket


def test_floor_to_is_time_bucket():
    t = datetime(2026, 1, 1, 0, 0, 59, 999999, tzinfo=UTC)
    assert floor_to(t, timedelta(minutes=1)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_doctests():
    assert doctest.testmod(refresh).failed == 0
