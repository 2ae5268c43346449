"""core.windows: tumbling assignment by event time, watermark/grace, too-late reporting, rolling sums."""

from __future__ import annotations

import json
import math

import pytest

from core.windows import (
    Windowing,
    WindowState,
    add_event,
    advance,
    classify,
    is_closed,
    rolling_sum,
    rolling_sums,
    watermark,
    window_bounds,
    window_start,
)

W = Windowing(size_s=60, grace_s=30)
KEY = ("door", "in")


@pytest.mark.parametrize(
    ("t", "bounds"),
    [
        (0.0, (0.0, 60.0)),
        (59.999, (0.0, 60.0)),
        (60.0, (60.0, 120.0)),
        (1_700_000_039.5, (1_699_999_980.0, 1_700_000_040.0)),
    ],
)
def test_window_assignment_is_half_open(t, bounds):
    assert window_bounds(t, 60) == bounds
    assert window_start(t) == bounds[0]  # 1 minute by default


def test_watermark_and_closing():
    assert watermark(None, 30) == -math.inf
    assert watermark(200.0, 30) == 170.0
    assert is_closed(120.0, 170.0) and not is_closed(180.0, 170.0) and is_closed(170.0, 170.0)
    assert classify(200.0, 200.0, W) == "on_time"
    assert classify(155.0, 200.0, W) == "late"  # window [120, 180) still open (watermark 170)
    assert classify(119.0, 200.0, W) == "too_late"  # window [60, 120) closed


def test_late_event_within_grace_goes_to_its_own_window():
    s = WindowState()
    s, _ = add_event(s, KEY, 100.0, W)
    s, _ = add_event(s, KEY, 205.0, W)  # watermark 175: [60, 120) is final now
    s, r = add_event(s, KEY, 179.0, W)  # late, its window [120, 180) is open
    assert (r.accepted, r.lateness, r.window_start, r.updates[0].count) == (True, "late", 120.0, 1)
    assert s.counts[(KEY, 120.0)] == 1 and s.counts[(KEY, 180.0)] == 1


def test_too_late_is_reported_and_changes_nothing():
    s = WindowState()
    s, _ = add_event(s, KEY, 100.0, W)
    s, _ = add_event(s, KEY, 215.0, W)
    s2, r = add_event(s, KEY, 110.0, W)
    assert (r.accepted, r.lateness, r.window_start, r.window_end, r.updates) == (False, "too_late", 60.0, 120.0, [])
    assert s2 is s


def test_windows_close_once_in_order_with_their_final_counts():
    s = WindowState()
    finals = []
    for t in (10, 20, 70, 75, 130):
        s, r = add_event(s, KEY, float(t), W)
        finals += [(u.window_start, u.count) for u in r.updates if u.final]
    assert finals == [(0.0, 2)]  # closed by the event at 130 (watermark 100)
    s, r = add_event(s, ("door", "out"), 250.0, W)  # watermark 220: [60, 120) and [120, 180) close
    assert [(u.key, u.window_start, u.count) for u in r.updates if u.final] == [(KEY, 60.0, 2), (KEY, 120.0, 1)]
    assert r.updates[0] == (("door", "out"), 240.0, 300.0, 1, False)
    s, more = advance(s, 260.0, W)
    assert more == []  # each window is final once
    s, more = advance(s, 340.0, W)  # no event, time moves on (watermark 310)
    assert [(u.key, u.window_start, u.count, u.final) for u in more] == [(("door", "out"), 240.0, 1, True)]


def test_advance_closes_quiet_windows():
    s, _ = add_event(WindowState(), KEY, 30.0, W)
    s, closed = advance(s, 95.0, W)
    assert [(u.window_start, u.count, u.final) for u in closed] == [(0.0, 1, True)]
    assert advance(s, 90.0, W) == (s, [])  # time does not go back


def test_rolling_15_minute_sums():
    s = WindowState()
    for minute in range(30):
        for _ in range(minute % 3 + 1):
            s, _ = add_event(s, KEY, minute * 60.0 + 1, W)
    end = 30 * 60.0
    assert rolling_sum(s, KEY, end) == sum(m % 3 + 1 for m in range(15, 30))
    assert rolling_sum(s, KEY, end, span_s=300) == sum(m % 3 + 1 for m in range(25, 30))
    assert rolling_sums(s, [KEY, ("door", "out")], end) == {KEY: 30, ("door", "out"): 0}


def test_old_windows_are_forgotten_after_the_rolling_span():
    s = WindowState()
    for minute in range(40):
        s, _ = add_event(s, KEY, minute * 60.0 + 1, W)
    assert min(start for _, start in s.counts) >= 40 * 60 - 60 - W.retain_s - 60


def test_state_round_trips_through_json():
    s = WindowState()
    for t in (10.0, 70.0, 200.0):
        s, _ = add_event(s, KEY, t, W)
    back = WindowState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s


def test_bad_windowing_is_rejected():
    with pytest.raises(ValueError):
        Windowing(size_s=0)
    with pytest.raises(ValueError):
        Windowing(size_s=60, rolling_s=30)
