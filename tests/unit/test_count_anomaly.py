"""Count anomalies (pure): the hour-of-day baseline and the closing of hours."""

from __future__ import annotations

import doctest

import pytest

from agents.anomaly import MIN_DAYS, close_hours
from core import anomaly
from core.anomaly import Baseline, update, z_score

DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def test_doctests():
    assert doctest.testmod(anomaly).failed == 0


def test_no_score_before_enough_days():
    b = None
    for _ in range(MIN_DAYS - 1):
        b = update(b, 100)
    assert z_score(b, 0, MIN_DAYS) is None
    assert z_score(update(b, 100), 0, MIN_DAYS) is not None


def test_steady_counts_are_not_anomalies_and_a_collapse_is():
    b = None
    for c in (100, 104, 97, 101, 99, 103, 98, 100):
        b = update(b, c)
    assert abs(z_score(b, 102, MIN_DAYS)) < 1
    assert z_score(b, 10, MIN_DAYS) < -8
    assert z_score(b, 200, MIN_DAYS) > 8


def test_a_quiet_line_is_not_alarmed_by_small_changes():
    b = Baseline(0.0, 0.0, 30)
    assert z_score(b, 1, MIN_DAYS) == pytest.approx(1.0)  # floor: variance >= mean, + 1


def test_close_hours_judges_each_hour_and_learns_its_count():
    entry = {"hour": T0 + 10 * 3600, "minutes": {"0": 40, "60": 60}, "baselines": {}}
    closed = close_hours(entry, T0 + 13 * 3600, "UTC")
    assert [end for end, _ in closed] == [T0 + 11 * 3600, T0 + 12 * 3600, T0 + 13 * 3600]
    assert all(z is None for _, z in closed)  # first day
    assert entry["baselines"]["10"] == [100.0, 0.0, 1] and entry["baselines"]["11"] == [0.0, 0.0, 1]
    assert entry["hour"] == T0 + 13 * 3600 and entry["minutes"] == {}


def test_hour_of_day_follows_the_camera_time_zone():
    entry = {"hour": T0 + 10 * 3600, "minutes": {"0": 5}, "baselines": {}}
    close_hours(entry, T0 + 11 * 3600, "Asia/Tokyo")  # UTC 10:00 is 19:00 in Tokyo
    assert list(entry["baselines"]) == ["19"]


def test_a_long_silence_restarts_the_hour_without_judging_a_week_of_zeros():
    entry = {"hour": T0, "minutes": {"0": 5}, "baselines": {}}
    assert close_hours(entry, T0 + 30 * DAY, "UTC") == []
    assert entry["hour"] == T0 + 30 * DAY and entry["baselines"] == {}
