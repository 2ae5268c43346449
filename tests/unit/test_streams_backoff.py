"""Reconnect schedule: exponential from retry_interval_s, offline after retry_count, then the cap."""

from __future__ import annotations

import pytest

from streams.backoff import Backoff, backoff_delay


def test_schedule_doubles_then_sits_at_the_cap_after_retry_count() -> None:
    delays = [backoff_delay(n, base_s=5, cap_s=60, retry_count=3, jitter=0) for n in range(1, 7)]
    assert delays == [5, 10, 20, 60, 60, 60]


def test_exponential_part_never_exceeds_the_cap() -> None:
    delays = [backoff_delay(n, base_s=5, cap_s=12, retry_count=10, jitter=0) for n in range(1, 6)]
    assert delays == [5, 10, 12, 12, 12]


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_jitter_only_shortens_within_its_fraction(rand: float) -> None:
    d = backoff_delay(2, base_s=5, cap_s=60, retry_count=3, jitter=0.2, rand=rand)
    assert 10 * 0.8 <= d <= 10
    assert d == pytest.approx(10 * (1 - 0.2 * rand))


def test_real_jitter_spreads_delays() -> None:
    delays = {round(backoff_delay(3, base_s=5), 6) for _ in range(50)}
    assert len(delays) > 10
    assert all(16 <= d <= 20 for d in delays)


def test_no_failure_no_wait() -> None:
    assert backoff_delay(0, base_s=5) == 0


def test_backoff_tracks_consecutive_failures_and_offline() -> None:
    b = Backoff(base_s=1, retry_count=2, cap_s=30, jitter=0)
    assert not b.exhausted
    assert b.failed() == 1
    assert not b.exhausted
    assert b.failed() == 2
    assert b.exhausted  # offline after retry_count failures...
    assert b.failed() == 30  # ...and retries continue at the cap
    b.succeeded()
    assert not b.exhausted and b.failures == 0
    assert b.failed() == 1


def test_retry_count_zero_is_offline_at_the_first_failure() -> None:
    b = Backoff(base_s=1, retry_count=0, cap_s=30, jitter=0)
    assert b.failed() == 30
    assert b.exhausted
