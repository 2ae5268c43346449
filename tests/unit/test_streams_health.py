"""Status rules (seed 000 thresholds) and window statistics."""

from __future__ import annotations

import pytest

from models.records import AlertThresholds
from streams.health import GrabberMetrics, StatusInputs, expected_fps, percentile, stream_status

GOOD = StatusInputs(
    connected=True,
    retries_exhausted=False,
    target_fps=10,
    source_fps=25,
    processed_fps=9.5,
    connected_s=5,
    wanted_frames=50,
    dropped_frames=1,
    publish_failing=False,
)


def status(**changes) -> tuple[str, str | None]:
    return stream_status(StatusInputs(**{**GOOD.__dict__, **changes}))


def test_healthy_stream_is_online() -> None:
    assert status() == ("online", None)


def test_not_connected_within_retries_is_degraded_then_offline() -> None:
    assert status(connected=False)[0] == "degraded"
    assert status(connected=False, retries_exhausted=True) == ("offline", "stream not connected")


def test_processed_fps_below_70_percent_of_target_is_degraded() -> None:
    assert status(processed_fps=7.0)[0] == "online"
    state, reason = status(processed_fps=6.9)
    assert state == "degraded" and "70%" in reason


def test_expected_fps_is_the_source_rate_when_below_the_target() -> None:
    assert expected_fps(10, 6) == 6
    assert expected_fps(10, None) == 10
    assert status(source_fps=6, processed_fps=5.9)[0] == "online"


def test_drop_rate_above_10_percent_is_degraded() -> None:
    assert status(dropped_frames=5)[0] == "online"  # exactly 10 %
    state, reason = status(dropped_frames=6)
    assert state == "degraded" and "dropped 12%" in reason


def test_publish_failing_is_degraded_with_the_error() -> None:
    state, reason = status(publish_failing=True, publish_error="local queue full")
    assert state == "degraded" and "local queue full" in reason


def test_rates_are_not_judged_right_after_connecting() -> None:
    assert status(connected_s=0.5, processed_fps=0.0, dropped_frames=40)[0] == "online"


def test_camera_thresholds_override_the_defaults() -> None:
    lenient = AlertThresholds(min_stream_fps_ratio=0.3, max_frame_drop_pct=50)
    assert (
        stream_status(StatusInputs(**{**GOOD.__dict__, "processed_fps": 4.0, "dropped_frames": 20}), lenient)[0]
        == "online"
    )


def test_several_reasons_are_all_reported() -> None:
    _, reason = status(processed_fps=1.0, dropped_frames=30, publish_failing=True)
    assert reason.count(";") == 2


@pytest.mark.parametrize(("q", "expected"), [(0, 1.0), (50, 2.5), (95, 3.85), (100, 4.0)])
def test_percentile(q: float, expected: float) -> None:
    assert percentile([4, 1, 3, 2], q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


def test_metrics_are_labelled_by_camera_only_and_can_be_forgotten() -> None:
    from prometheus_client import generate_latest

    m = GrabberMetrics()
    m.frames_processed.labels("cam-1").inc(3)
    m.set_status("cam-1", "degraded")
    text = generate_latest(m.registry).decode()
    assert 'footfall_grabber_frames_processed_total{camera_id="cam-1"} 3.0' in text
    assert 'footfall_grabber_status{camera_id="cam-1",status="degraded"} 1.0' in text
    assert 'footfall_grabber_status{camera_id="cam-1",status="online"} 0.0' in text
    m.forget("cam-1")
    assert "cam-1" not in generate_latest(m.registry).decode()


def test_spool_metrics_per_camera_and_in_all() -> None:
    from prometheus_client import generate_latest

    m = GrabberMetrics()
    m.set_spool("cam-1", 120, 12.5, 3)
    m.set_spool("cam-1", 80, 14.0, 2)  # the next tick: 2 more dropped
    m.set_spool_bytes(1024, 4096)
    text = generate_latest(m.registry).decode()
    assert 'footfall_grabber_spool_messages{camera_id="cam-1"} 80.0' in text
    assert 'footfall_grabber_spool_oldest_age_seconds{camera_id="cam-1"} 14.0' in text
    assert 'footfall_grabber_spool_dropped_total{camera_id="cam-1"} 5.0' in text
    assert 'footfall_grabber_spool_bytes{tier="disk"} 4096.0' in text
    m.forget("cam-1")
    assert "cam-1" not in generate_latest(m.registry).decode()
