"""Sampling to the target fps, and frame_seq from the capture clock."""

from __future__ import annotations

import random

import pytest

from streams.sampling import FpsSampler
from streams.seq import SeqClock, next_frame_seq


def taken(sampler: FpsSampler, times: list[float]) -> int:
    return sum(sampler.want(t) for t in times)


@pytest.mark.parametrize(
    ("source_fps", "target", "expected"), [(24, 10, 100), (30, 5, 50), (25, 25, 250), (24, 12, 120)]
)
def test_faster_source_is_sampled_to_the_target(source_fps: float, target: float, expected: int) -> None:
    times = [1.7e9 + i / source_fps for i in range(int(10 * source_fps))]
    assert abs(taken(FpsSampler(target), times) - expected) <= 1


def test_slower_source_keeps_every_frame() -> None:
    times = [i / 4 for i in range(40)]
    assert taken(FpsSampler(10), times) == 40


def test_source_at_the_target_with_jitter_loses_nothing() -> None:
    rng = random.Random(7)
    times = [i / 10 + rng.uniform(-0.02, 0.02) for i in range(100)]
    assert taken(FpsSampler(10), times) == 100


def test_after_a_gap_there_is_no_burst() -> None:
    s = FpsSampler(10)
    assert taken(s, [i / 30 for i in range(30)]) in (10, 11)
    # 5 s stall, then 1 s of 30 fps: about 10 frames, not 60 to "catch up"
    assert taken(s, [6 + i / 30 for i in range(30)]) <= 11


def test_target_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FpsSampler(0)


def test_seq_is_capture_microseconds() -> None:
    assert next_frame_seq(None, 1_700_000_000.25) == 1_700_000_000_250_000


def test_seq_strictly_increases_even_when_the_clock_does_not() -> None:
    clock = SeqClock()
    seqs = [clock.next(t) for t in (10.0, 10.0, 9.0, 10.000001, 11.0)]
    assert seqs == [10_000_000, 10_000_001, 10_000_002, 10_000_003, 11_000_000]
    assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False))


def test_seq_after_restart_continues_above_the_previous_grabber() -> None:
    old = SeqClock()
    last = [old.next(100.0 + i / 10) for i in range(10)][-1]
    new = SeqClock()  # a new grabber knows nothing; its clock is later
    assert new.next(101.5) > last
