"""RTSP cameras end to end: a relay fed by Debian's ffmpeg plays the camera, a real grabber process
reads it, detects people and publishes to the real broker; the broker's messages are the evidence.

ffmpeg cannot itself be an RTSP server (``-rtsp_flags listen`` only works for its demuxer), so
ffmpeg pushes the clip to :class:`grabber_rtsp_relay.RtspRelay`, which serves it to the grabber.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path

import grabber_helpers as helpers
import pytest
from grabber_helpers import GrabberProcess, TopicReader, free_port, write_config
from grabber_rtsp_relay import RtspRelay

from models.base import parse
from models.records import FrameDetections, StreamStats

# fixtures
kafka_bootstrap, topics, reader = helpers.kafka_bootstrap, helpers.topics, helpers.reader
clip, short_gop_clip = helpers.clip, helpers.short_gop_clip

pytestmark = [pytest.mark.integration, pytest.mark.footage, pytest.mark.detector]

PASSWORD = "Tr0ub4dor&3/s3cret"  # needs percent-encoding in a URL
SECRET_MARK = "Tr0ub4dor"


def rtsp_camera(cid: str, url: str, **stream) -> dict:
    return {
        "camera_id": cid,
        "stream": {
            "protocol": "rtsp",
            "url": url,
            "timeout_s": 3,
            "retry_count": 1,
            "retry_interval_s": 0.5,
            "target_fps": 4,
            **stream,
        },
        "detection": {"imgsz": 320, "confidence": 0.3},
    }


def stats_of(reader: TopicReader, topic: str, cid: str) -> list[StreamStats]:
    return [parse(StreamStats, m.value) for m in reader.snapshot(topic, cid)]


def detections_of(reader: TopicReader, topic: str, cid: str) -> list[FrameDetections]:
    return [parse(FrameDetections, m.value) for m in reader.snapshot(topic, cid)]


def test_rtsp_with_credentials_to_detections_and_a_dead_camera_beside_it(
    short_gop_clip: Path, topics: tuple[str, str], reader: TopicReader, tmp_path: Path
) -> None:
    det_topic, stats_topic = topics
    run = uuid.uuid4().hex[:6]
    ok_id, dead_id = f"rtsp-ok-{run}", f"rtsp-dead-{run}"
    metrics_port = free_port()
    with RtspRelay(short_gop_clip, username="viewer", password=PASSWORD) as relay:
        config = write_config(
            tmp_path / "cameras.json",
            [
                rtsp_camera(ok_id, relay.url, username="viewer", credentials_ref="TEST_RTSP_PASSWORD"),
                # nothing listens here: a clear offline status, not a crash
                rtsp_camera(
                    dead_id,
                    f"rtsp://127.0.0.1:{free_port()}/cam",
                    username="viewer",
                    credentials_ref="TEST_RTSP_PASSWORD",
                ),
            ],
        )
        grabber = GrabberProcess(
            config,
            topics,
            tmp_path / "grabber.log",
            "--no-lease",
            "--metrics-port",
            str(metrics_port),
            env={"TEST_RTSP_PASSWORD": PASSWORD},
        )
        try:
            reader.wait_for(
                lambda: sum(bool(d.boxes) for d in detections_of(reader, det_topic, ok_id)) >= 8,
                60,
                "8 frames with people from the RTSP camera",
            )
            reader.wait_for(
                lambda: any(s.status == "online" for s in stats_of(reader, stats_topic, ok_id)), 10, "online"
            )
            reader.wait_for(
                lambda: any(s.status == "offline" for s in stats_of(reader, stats_topic, dead_id)), 10, "dead: offline"
            )
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        finally:
            code = grabber.stop()
        assert relay.unauthorized >= 1  # the relay demanded credentials, and the grabber had the right ones
    assert code == 0, grabber.output()[-3000:]

    dets = detections_of(reader, det_topic, ok_id)
    assert all(d.frame_width == 640 and d.frame_height == 360 for d in dets)
    assert all(b.frame_seq > a.frame_seq for a, b in zip(dets, dets[1:], strict=False))
    assert max(len(d.boxes) for d in dets) >= 3  # a busy crossing
    assert all(d.published_at >= d.captured_at and (d.inference_ms > 0 or d.gated) for d in dets)  # motion gate
    online = [s for s in stats_of(reader, stats_topic, ok_id) if s.status == "online"][-1]
    assert online.processed_fps > 0 and online.latency_ms_p95 is not None and online.frame_width == 640
    dead = [s for s in stats_of(reader, stats_topic, dead_id) if s.status == "offline"][-1]
    assert "could not open rtsp://viewer:***@127.0.0.1" in dead.last_error
    assert dead.dropped_frames == 0 and dead.processed_fps == 0

    assert f'footfall_grabber_frames_processed_total{{camera_id="{ok_id}"}}' in metrics
    assert f'footfall_grabber_status{{camera_id="{dead_id}",status="offline"}} 1.0' in metrics
    # The password is nowhere: not in messages, metrics, or anything the process printed.
    everything = [m.value for m in reader.snapshot()]
    for text in (str(everything), metrics, grabber.output()):
        assert SECRET_MARK not in text
        assert "Tr0ub4dor%26" not in text
    assert "rtsp://" not in metrics  # labels carry camera ids, never URLs


def test_rtsp_server_restart_and_stall_go_offline_then_back_online(
    short_gop_clip: Path, topics: tuple[str, str], reader: TopicReader, tmp_path: Path
) -> None:
    det_topic, stats_topic = topics
    cid = f"rtsp-flaky-{uuid.uuid4().hex[:6]}"
    relay = RtspRelay(short_gop_clip).start()
    config = write_config(tmp_path / "cameras.json", [rtsp_camera(cid, relay.url, timeout_s=2)])
    grabber = GrabberProcess(config, topics, tmp_path / "grabber.log", "--no-lease", "--backoff-cap", "1")
    try:
        reader.wait_for(
            lambda: any(s.status == "online" for s in stats_of(reader, stats_topic, cid)), 60, "online before"
        )
        relay.stop()
        stopped_at = time.time()
        reader.wait_for(
            lambda: any(s.status == "offline" and s.at > stopped_at for s in stats_of(reader, stats_topic, cid)),
            20,
            "offline after the server stopped",
        )
        relay.start()
        restarted_at = time.time()
        reader.wait_for(
            lambda: any(s.status == "online" and s.at > restarted_at for s in stats_of(reader, stats_topic, cid)),
            30,
            "online after the server came back",
        )
        reader.wait_for(
            lambda: sum(d.captured_at > restarted_at for d in detections_of(reader, det_topic, cid)) >= 5,
            20,
            "detections after the reconnect",
        )
        # A stall: the connection stays up but no frame arrives. The read timeout (timeout_s) turns
        # it into a drop, and the grabber reconnects once media flows again.
        relay.paused = True
        paused_at = time.time()
        reader.wait_for(
            lambda: any(s.status == "offline" and s.at > paused_at for s in stats_of(reader, stats_topic, cid)),
            20,
            "offline after the stream stalled",
        )
        relay.paused = False
        resumed_at = time.time()
        reader.wait_for(
            lambda: any(s.status == "online" and s.at > resumed_at for s in stats_of(reader, stats_topic, cid)),
            30,
            "online after the stall",
        )
        assert any(d.captured_at > resumed_at for d in detections_of(reader, det_topic, cid))
    finally:
        code = grabber.stop()
        relay.stop()
    assert code == 0, grabber.output()[-3000:]
    stats = stats_of(reader, stats_topic, cid)
    offline = [s for s in stats if s.status == "offline"]
    assert offline and offline[0].last_error  # says why
    assert stats[-1].reconnects >= 2
    stalled = [s for s in stats if s.at > paused_at and s.status != "online"]
    assert "no frame within 2 s" in stalled[0].last_error or "could not open" in stalled[0].last_error
    dets = detections_of(reader, det_topic, cid)
    assert all(b.frame_seq > a.frame_seq for a, b in zip(dets, dets[1:], strict=False))
    # while the camera was down nothing was captured, so nothing was published for that time
    gap = [d for d in dets if stopped_at + 0.5 < d.captured_at < offline[0].at]
    assert gap == []
