"""api/ratelimit.py: failures within a window block a key for a while; bounded memory. Injected clock."""

from __future__ import annotations

import threading

import pytest

from api.ratelimit import FailureLimiter


def fail(limiter: FailureLimiter, key: str, times: int, at: float, every_s: float = 1.0) -> list[float | None]:
    return [limiter.failure(key, at + i * every_s) for i in range(times)]


def test_the_nth_failure_within_the_window_blocks_for_block_s():
    lim = FailureLimiter(max_failures=3, window_s=60, block_s=300)
    assert fail(lim, "ip:a", 2, at=1000.0) == [None, None]
    assert lim.blocked("ip:a", 1001.5) is None
    assert lim.failure("ip:a", 1002.0) == 300
    assert lim.blocked("ip:a", 1002.0) == 300
    assert lim.blocked("ip:a", 1100.0) == pytest.approx(202.0)
    assert lim.blocked("ip:a", 1302.0) is None  # over
    assert lim.blocked("ip:b", 1100.0) is None  # other keys are not affected


def test_failures_older_than_the_window_do_not_count():
    lim = FailureLimiter(max_failures=3, window_s=10, block_s=60)
    assert fail(lim, "k", 10, at=0.0, every_s=5.0) == [None] * 10  # never 3 within 10 s
    assert lim.failure("k", 45.5) == 60  # 40, 45, 45.5


def test_failures_while_blocked_do_not_extend_it_and_the_count_restarts_after():
    lim = FailureLimiter(max_failures=2, window_s=60, block_s=100)
    fail(lim, "k", 2, at=0.0)
    assert lim.failure("k", 50.0) is None
    assert lim.blocked("k", 50.0) == pytest.approx(51.0)
    assert lim.failure("k", 101.0) is None  # first of a new count
    assert lim.blocked("k", 101.0) is None
    assert lim.failure("k", 102.0) == 100


def test_success_forgets_the_count_but_not_a_block_in_force():
    lim = FailureLimiter(max_failures=3, window_s=60, block_s=100)
    fail(lim, "key:abc", 2, at=0.0)
    lim.success("key:abc")
    assert fail(lim, "key:abc", 2, at=2.0) == [None, None]
    assert lim.failure("key:abc", 4.0) == 100
    lim.success("key:abc")
    assert lim.blocked("key:abc", 5.0) == pytest.approx(99.0)
    lim.success("key:never-failed")  # no entry: nothing happens
    assert len(lim) == 1


def test_memory_is_bounded_and_an_active_attacker_stays_remembered():
    lim = FailureLimiter(max_failures=3, window_s=60, block_s=300, max_keys=100)
    fail(lim, "ip:attacker", 3, at=0.0)
    for i in range(10_000):  # a flood of random key ids from the same address
        lim.failure(f"key:{i}", 3.0 + i * 0.001)
        lim.failure("ip:attacker", 3.0 + i * 0.001)
    assert len(lim) <= 100
    assert lim.blocked("ip:attacker", 20.0) is not None
    assert lim.blocked("key:0", 20.0) is None  # pushed out long ago


def test_stale_entries_are_dropped_as_failures_come():
    lim = FailureLimiter(max_failures=5, window_s=10, block_s=30)
    for i in range(50):
        lim.failure(f"ip:{i}", float(i) * 0.01)
    assert len(lim) == 50
    lim.failure("ip:late", 100.0)  # everything before is outside the window and not blocked
    assert len(lim) == 1


def test_blocked_keys_are_kept_past_the_window():
    lim = FailureLimiter(max_failures=1, window_s=10, block_s=30)
    lim.failure("ip:a", 0.0)
    lim.failure("ip:b", 25.0)
    assert lim.blocked("ip:a", 25.0) == pytest.approx(5.0)


def test_threads_can_share_one():
    lim = FailureLimiter(max_failures=1_000_000, window_s=1e9, block_s=1, max_keys=500)

    def hammer(n: int) -> None:
        for i in range(2_000):
            lim.failure(f"k{(i * 7 + n) % 1000}", float(i))
            lim.blocked(f"k{i % 1000}", float(i))
            lim.success(f"k{(i + n) % 1000}")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lim) <= 500


@pytest.mark.parametrize("kw", [{"max_failures": 0}, {"window_s": 0}, {"block_s": -1}, {"max_keys": 0}])
def test_nonsense_limits_are_refused(kw):
    with pytest.raises(ValueError):
        FailureLimiter(**kw)
