"""The grabber following the compacted camera-config topic: a camera appears when its config is
published, takes new detection settings without reconnecting or restarting the process, and
stops when a tombstone removes it."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path

import grabber_helpers as helpers
import pytest
from grabber_helpers import GrabberProcess, TopicReader

from models.base import parse
from models.records import CameraConfig

kafka_bootstrap, topics, reader, clip = helpers.kafka_bootstrap, helpers.topics, helpers.reader, helpers.clip

pytestmark = [pytest.mark.integration, pytest.mark.footage, pytest.mark.detector]


@pytest.fixture
def config_topic(kafka_bootstrap: str):
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"test.grabber.{uuid.uuid4().hex[:8]}.camera-config"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})])[name].result()
    yield name
    with contextlib.suppress(Exception):
        admin.delete_topics([name])[name].result()


def test_cameras_follow_the_config_topic(
    kafka_bootstrap: str, config_topic: str, clip: Path, topics: tuple[str, str], reader: TopicReader, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    det_topic, _ = topics
    cid = f"topic-cam-{uuid.uuid4().hex[:6]}"
    cfg = parse(
        CameraConfig,
        {
            "camera_id": cid,
            "stream": {"protocol": "file", "url": str(clip), "target_fps": 3},
            "detection": {"imgsz": 320},
        },
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(config_topic, key=cid, value=cfg.to_json())
    producer.flush(10)
    grabber = GrabberProcess(None, topics, tmp_path / "g.log", "--config-topic", config_topic, "--no-lease")
    try:
        reader.wait_for(lambda: len(reader.snapshot(det_topic, cid)) >= 3, 60, "detections for the published camera")

        # New detection settings: applied on the running camera, same reader, same process.
        data = json.loads(cfg.to_json())
        data["detection"].update(confidence=0.8, nms_iou=0.5)
        producer.produce(config_topic, key=cid, value=parse(CameraConfig, data).to_json())
        producer.flush(10)
        reader.wait_for(lambda: "applied without reconnecting" in grabber.output(), 30, "the new settings applied")
        applied_at = time.time()
        reader.wait_for(
            lambda: len([m for m in reader.snapshot(det_topic, cid) if m.value["captured_at"] > applied_at]) >= 3,
            60,
            "detections after the change",
        )
        after = [m for m in reader.snapshot(det_topic, cid) if m.value["captured_at"] > applied_at]
        assert all(box[4] >= 0.8 for m in after for box in m.value["boxes"])
        assert "restarted" not in grabber.output()

        producer.produce(config_topic, key=cid, value=None)  # tombstone: the camera is removed
        producer.flush(10)
        removed_at = time.time()
        time.sleep(3)
        late = [m for m in reader.snapshot(det_topic, cid) if m.value["captured_at"] > removed_at + 1.5]
        assert late == []
    finally:
        code = grabber.stop()
    assert code == 0, grabber.output()[-2000:]
    assert "removed from the configuration" in grabber.output()
