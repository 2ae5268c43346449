"""The publisher with no broker: it never blocks, spools in order, counts drops and says it fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from models.records import FrameDetections, StreamStats
from streams.publisher import KafkaPublisher, default_topics
from streams.spool import Spool, SpoolConfig

ROOT = Path(__file__).resolve().parents[2]


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


def test_unreachable_broker_spools_beyond_the_window_without_blocking() -> None:
    pub = KafkaPublisher(
        "127.0.0.1:1",  # nothing listens there
        {FrameDetections: "t.det"},
        max_messages=50,
        stall_s=0.5,
    )
    t0 = time.monotonic()
    results = [pub.publish(detections(i)) for i in range(200)]
    assert time.monotonic() - t0 < 2.0  # never blocks
    assert all(results)
    assert pub.stats.in_flight == 50 and pub.spool.waiting == 150 and len(pub) == 200
    assert pub.stats.dropped == 0 and pub.stats.failed == 0
    assert pub.spool_stats("cam-1").waiting == 150
    time.sleep(0.6)
    pub.poll(0.1)
    assert pub.failing()
    assert pub.close(0.2) == 200
    assert pub.stats.dropped == 200 and pub.stats.lost_by_key["cam-1"] == 200  # no spool directory: lost, counted


def test_close_keeps_everything_on_disk_in_order_for_the_next_start(tmp_path) -> None:
    spool = SpoolConfig(directory=tmp_path / "spool", memory_bytes=2000)
    pub = KafkaPublisher("127.0.0.1:1", {FrameDetections: "t.det"}, max_messages=20, stall_s=0.2, spool=spool)
    for i in range(100):
        pub.publish(detections(i))
        pub.poll(0)
    time.sleep(0.3)
    pub.poll(0.1)
    assert pub.failing() and pub.stats.in_flight <= 20
    t0 = time.monotonic()
    assert pub.close(30) == 100
    assert time.monotonic() - t0 < 10  # does not wait for a broker that is down: the spool keeps it
    assert pub.stats.returned == pub.stats.queued and pub.stats.dropped == 0

    again = Spool(spool)
    assert again.waiting == 100
    seqs = []
    while (item := again.take()) is not None:
        assert item.topic == "t.det" and item.key == "cam-1"
        seqs.append(json.loads(item.value)["frame_seq"])
    assert seqs == list(range(100))  # librdkafka's purged messages first, then disk, then memory
    again.close()


def test_a_bound_drops_the_oldest_and_counts_them() -> None:
    size = len(detections(0).to_json())
    pub = KafkaPublisher(
        "127.0.0.1:1", {FrameDetections: "t.det"}, max_messages=1, spool=SpoolConfig(memory_bytes=10 * (size + 60))
    )
    for i in range(30):
        pub.publish(detections(i))
    pub.poll(0)
    assert pub.stats.dropped == 30 - 1 - pub.spool.waiting > 0
    assert pub.stats.lost_by_key["cam-1"] == pub.stats.dropped
    assert pub.spool_stats("cam-1").dropped == pub.stats.dropped
    pub.close(0)


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


def test_a_publisher_killed_during_an_outage_loses_nothing_it_published(tmp_path) -> None:
    """Broker unreachable: what librdkafka holds is copied to the disk spool's head when the outage
    is noticed and what follows goes to disk at once; a SIGKILL (no close) then loses nothing."""
    spool_dir = tmp_path / "spool"
    child = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from models.records import FrameDetections
        from streams.publisher import KafkaPublisher
        from streams.spool import SpoolConfig
        from tests.unit.test_streams_publisher import detections
        spool = SpoolConfig(directory=Path({str(spool_dir)!r}), memory_age_s=60.0)
        pub = KafkaPublisher("127.0.0.1:1", {{FrameDetections: "t.det"}}, stall_s=0.5, spool=spool)
        for i in range(150):  # straight to librdkafka: nothing waits, the window is wide
            pub.publish(detections(i))
        assert pub.stats.in_flight == 150 and pub.spool.waiting == 0
        deadline = time.monotonic() + 10
        while not pub._spooling and time.monotonic() < deadline:
            pub.poll(0.05)
        assert pub._spooling and pub.stats.in_flight == 150 and pub.stats.returned == 0  # librdkafka keeps them
        for i in range(150, 300):  # while spooling: to disk at once, never straight to librdkafka
            pub.publish(detections(i))
            pub.poll(0)
        assert pub.spool.totals().memory_bytes == 0
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "ok" in proc.stdout, proc.stderr[-3000:]
    again = Spool(SpoolConfig(directory=spool_dir))
    seqs = []
    while (item := again.take()) is not None:
        seqs.append(json.loads(item.value)["frame_seq"])
        again.done(item)
    assert seqs == list(range(300))  # all of it, once, in order
    again.close()
