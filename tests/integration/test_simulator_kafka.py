"""``python -m streams simulate`` through the real broker: configs first, then valid detections in
capture order per camera, the same records the library generates for the seed, and a truth file
that covers exactly what was published (also when stopped with Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from models.base import parse
from models.records import CameraConfig, FrameDetections
from models.topics import topic_name
from streams.simulator import Simulation

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def simulate(bootstrap: str, prefix: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "FOOTFALL_KAFKA__TOPIC_PREFIX": prefix}
    return subprocess.Popen(
        # no stream-stats heartbeats: these tests count every message delivered
        [sys.executable, "-m", "streams", "simulate", "--bootstrap", bootstrap, "--ensure-topics"]
        + ["--stats-every", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def consume_all(kafka, topics: list[str], expected: int, timeout_s: float = 60.0) -> list:
    consumer = kafka.consumer(*topics)
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        out.append(msg)
    # nothing beyond what was expected
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            out.append(msg)
    return out


@pytest.fixture
def prefix(kafka):
    """A unique topic prefix; the simulator creates its two topics, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    topics = [topic_name(name, "camera-config"), topic_name(name, "detections")]
    existing = kafka.admin.list_topics(timeout=10).topics
    doomed = [t for t in topics if t in existing]
    if doomed:
        for fut in kafka.admin.delete_topics(doomed, operation_timeout=30).values():
            fut.result(timeout=30)


def test_fast_run_publishes_configs_then_valid_detections_and_writes_truth(kafka, prefix, tmp_path):
    truth_path = tmp_path / "truth.json"
    cams = f"sim-{uuid.uuid4().hex[:8]}"
    start = 1_790_000_000.0
    proc = simulate(
        kafka.bootstrap,
        prefix,
        *("--cameras", "3", "--fps", "10", "--duration", "10", "--fast", "--seed", "7"),
        *("--start", str(start), "--camera-prefix", cams, "--truth", str(truth_path)),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "300 frames" in out and "crossings" in out

    config_topic, det_topic = topic_name(prefix, "camera-config"), topic_name(prefix, "detections")
    messages = consume_all(kafka, [config_topic, det_topic], expected=3 + 300)
    configs = [m for m in messages if m.topic() == config_topic]
    detections = [m for m in messages if m.topic() == det_topic]
    assert len(configs) == 3 and len(detections) == 300

    parsed_configs = {m.key().decode(): parse(CameraConfig, m.value()) for m in configs}
    assert sorted(parsed_configs) == [f"{cams}-000{i}" for i in (1, 2, 3)]
    assert all(c.camera_id == k and c.lines and c.zones for k, c in parsed_configs.items())

    by_cam = defaultdict(list)
    for m in detections:
        frame = parse(FrameDetections, m.value())
        assert frame.camera_id == m.key().decode()
        by_cam[frame.camera_id].append(frame)
    assert sorted(by_cam) == sorted(parsed_configs)
    for frames in by_cam.values():
        seqs = [f.frame_seq for f in frames]
        assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False)), "frame_seq must increase per camera"
        assert len(frames) == 100

    # the broker carries exactly what the library generates for this seed and start
    sim = Simulation(cameras=3, fps=10, seed=7, start=start, camera_prefix=cams)
    expected = defaultdict(list)
    for f in sim.frames(10):
        expected[f.camera_id].append(json.loads(f.to_json()))
    assert {k: [json.loads(f.to_json()) for f in v] for k, v in by_cam.items()} == expected
    assert all(c.to_json() == parsed_configs[c.camera_id].to_json() for c in sim.configs())

    truth = json.loads(truth_path.read_text())
    assert truth["frames"] == 300 and truth["cameras"] == 3
    assert truth["lines"] == sim.truth() and truth["zones"] == sim.zone_truth()
    assert truth["publisher"]["delivered"] == 303 and truth["publisher"]["failed"] == 0
    assert truth["last_frame_seq"] == {k: v[-1].frame_seq for k, v in by_cam.items()}


def test_ctrl_c_stops_cleanly_with_truth_for_what_was_published(kafka, prefix, tmp_path):
    truth_path = tmp_path / "truth.json"
    cams = f"sim-{uuid.uuid4().hex[:8]}"
    proc = simulate(
        kafka.bootstrap,
        prefix,
        *("--cameras", "2", "--fps", "10", "--realtime", "--camera-prefix", cams, "--truth", str(truth_path)),
        *("--truth-every", "1"),
    )
    try:
        deadline = time.monotonic() + 60
        while not truth_path.exists() and time.monotonic() < deadline:  # written after ~1 s of frames
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    truth = json.loads(truth_path.read_text())
    published = truth["frames"]
    assert published >= 40  # ~2.5 s x 2 cameras x 10 fps
    assert f"{published} frames" in out

    messages = consume_all(kafka, [topic_name(prefix, "detections")], expected=published)
    assert len(messages) == published == truth["publisher"]["delivered"] - 2  # minus the two configs
    last = {}
    for m in messages:
        frame = parse(FrameDetections, m.value())
        last[frame.camera_id] = frame.frame_seq
    assert last == truth["last_frame_seq"]
    # real time: capture times are close to when they were published
    frame = parse(FrameDetections, messages[-1].value())
    assert abs(frame.captured_at - messages[-1].timestamp()[1] / 1000) < 2.0
