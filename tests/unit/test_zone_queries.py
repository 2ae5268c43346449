"""The zone analytics' SQL text and row arithmetic (api/queries.py, api/routes/zones.py)."""

from __future__ import annotations

import doctest

import api.queries as queries
from core.dwell import COLUMNS, histogram


def test_doctests_of_queries():
    assert doctest.testmod(queries).failed == 0


def test_each_interval_reads_its_own_aggregate_and_the_peak_time_from_the_level_below():
    for name, view, source in (
        ("minute", "zone_events_1m", "occupancy_samples"),
        ("hour", "zone_events_1h", "occupancy_1m"),
        ("day", "zone_events_1d", "occupancy_1h"),
    ):
        iv = queries.INTERVALS[name]
        assert iv.zones == view
        sql = queries.zone_events_sql(iv)
        assert f"FROM {view}" in sql and all(c in sql for c in COLUMNS)
        assert "zone_id = %(zone_id)s" in sql and "camera_id = %(camera_id)s" in sql
        assert f"FROM {source}" in queries.zone_peak_at_sql(iv)


def test_zones_summary_filters_cameras_only_when_asked():
    assert "ANY(%(camera_ids)s)" in queries.zones_summary_sql(True)
    assert "ANY(" not in queries.zones_summary_sql(False)
    assert "FROM zone_events_1h" in queries.zones_summary_sql(False)


def _row(dwells: list[float]) -> dict:
    return {"dwell_n": len(dwells), "dwell_s_sum": sum(dwells), "dwell_s_max": max(dwells, default=None),
            **dict(zip(COLUMNS, histogram(dwells), strict=True))}  # fmt: skip


def test_histograms_add_up_over_buckets():
    a, b = _row([10.0, 20.0, 30.0]), _row([400.0])
    total = queries.add_histograms([a, b, {}])
    assert total["dwell_n"] == 4 and total["dwell_s_sum"] == 460.0 and total["dwell_s_max"] == 400.0
    assert [total[c] for c in COLUMNS] == histogram([10.0, 20.0, 30.0, 400.0])
    stats = queries.dwell_stats(total)
    assert stats["exits"] == 4 and stats["avg_s"] == 115.0 and 20 <= stats["median_s"] < 45


def test_no_exits_gives_nulls():
    assert queries.dwell_stats(None) == {"exits": 0, "avg_s": None, "median_s": None, "p90_s": None, "max_s": None}
    assert queries.add_histograms([])["dwell_s_sum"] is None
