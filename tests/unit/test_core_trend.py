"""core.trend: the seed-003 rule and the tolerance."""

from __future__ import annotations

import pytest

from core.trend import trend


@pytest.mark.parametrize(
    ("current", "previous", "direction", "strength", "change_pct"),
    [
        (12, 10, "increasing", 0.2, 20.0),
        (8, 10, "decreasing", 0.2, -20.0),
        (10, 10, "stable", 0.0, 0.0),
        (25, 10, "increasing", 1.0, 150.0),  # strength capped at 1
        (0, 10, "decreasing", 1.0, -100.0),
        (5, None, "increasing", 0.0, 0.0),  # seed: COALESCE(previous, 0); no percentage without a base
        (5, 0, "increasing", 0.0, 0.0),
        (0, 0, "stable", 0.0, 0.0),
    ],
)
def test_seed_rule(current, previous, direction, strength, change_pct):
    t = trend(current, previous)
    assert (t.direction, t.strength, t.change_pct) == (direction, pytest.approx(strength), pytest.approx(change_pct))


def test_tolerance_keeps_noise_stable():
    assert trend(11, 10, tolerance_abs=1).direction == "stable"
    assert trend(9, 10, tolerance_abs=1).direction == "stable"
    assert trend(12, 10, tolerance_abs=1).direction == "increasing"
    assert trend(104, 100, tolerance_pct=5).direction == "stable"
    assert trend(106, 100, tolerance_pct=5).direction == "increasing"
    assert trend(1, 0, tolerance_pct=5).direction == "increasing"  # no base: the percentage is not used
    assert trend(11, 10, tolerance_abs=1).strength == pytest.approx(0.1)  # strength as the seed computes it
    with pytest.raises(ValueError):
        trend(1, 1, tolerance_abs=-1)


def test_directions_are_the_wire_vocabulary():
    from models.records import TRENDS

    assert {trend(2, 1).direction, trend(1, 2).direction, trend(1, 1).direction} == set(TRENDS)
