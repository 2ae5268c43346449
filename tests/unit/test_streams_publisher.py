"""The publisher with no broker: it never blocks, bounds its queue, counts drops and says it fails."""

from __future__ import annotations

import time

import pytest

from models.records import FrameDetections, StreamStats
from streams.publisher import KafkaPublisher, default_topics


def detections(seq: int) -> FrameDetections:
    return FrameDetections(
        camera_id="cam-1",
        frame_seq=seq,
        captured_at=1.7e9,
        frame_width=640,
        frame_height=360,
        boxes=[[1.0, 2.0, 30.0, 40.0, 0.9]],
        model_name="m",
        model_version="v",
        inference_ms=50.0,
        published_at=1.7e9,
    )


def test_default_topics_are_the_catalogue_names() -> None:
    topics = default_topics("footfall")
    assert topics[FrameDetections] == "footfall.detections.v1"
    assert topics[StreamStats] == "footfall.stream-stats.v1"


def test_unreachable_broker_drops_beyond_the_bound_without_blocking() -> None:
    pub = KafkaPublisher(
        "127.0.0.1:1",  # nothing listens there
        {FrameDetections: "t.det"},
        max_messages=50,
        message_timeout_ms=60_000,
        stall_s=0.5,
    )
    t0 = time.monotonic()
    results = [pub.publish(detections(i)) for i in range(200)]
    assert time.monotonic() - t0 < 2.0  # never blocks on a full queue
    assert results.count(True) == 50
    assert pub.stats.dropped == 150 and pub.stats.lost_by_key["cam-1"] == 150
    assert "local queue full" in pub.stats.last_error
    time.sleep(0.6)
    pub.poll(0.1)
    assert pub.failing()
    assert pub.stats.in_flight == 50


def test_undeliverable_messages_expire_and_are_counted_as_failed() -> None:
    pub = KafkaPublisher("127.0.0.1:1", {FrameDetections: "t.det"}, message_timeout_ms=300)
    pub.publish(detections(1))
    deadline = time.monotonic() + 5
    while pub.stats.failed == 0 and time.monotonic() < deadline:
        pub.poll(0.1)
    assert pub.stats.failed == 1
    assert pub.stats.in_flight == 0
    assert "delivery failed" in pub.stats.last_error
    assert pub.failing()


def test_a_record_without_a_topic_is_a_programming_error() -> None:
    pub = KafkaPublisher("127.0.0.1:1", {})
    with pytest.raises(KeyError, match="FrameDetections"):
        pub.publish(detections(1))
