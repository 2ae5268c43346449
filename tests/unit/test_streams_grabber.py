"""The grabber loop with a scripted source, a fake detector and an in-memory publisher:
batching across cameras by (imgsz, NMS IoU), filtering, frame_seq, the lease gate, the stats record
and config changes applied without a restart."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from models.base import parse
from models.records import CameraConfig, FrameDetections, StreamStats
from streams import grabber as grabber_mod
from streams.grabber import Grabber, GrabberOptions, box_rows
from streams.health import GrabberMetrics
from streams.lease import LocalLeases
from streams.publisher import PublisherStats
from streams.sources import Source
from streams.spool import KeyStats, SpoolTotals

IMAGE = np.zeros((360, 640, 3), dtype=np.uint8)


class EndlessSource(Source):
    live = True

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id

    def open(self) -> None:
        pass

    def grab(self) -> bool:
        time.sleep(0.01)
        return True

    def retrieve(self):
        return IMAGE

    def close(self) -> None:
        pass


class FakeDetector:
    nms_iou = 0.7  # the detector's default (--nms-iou)

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, float]] = []
        self.nms: list[float | None] = []  # nms_iou of each call, aligned with calls
        self.backends: list[tuple[str | None, str | None]] = []  # (backend, precision) of each call

    def model(self, spec: str = ""):
        return SimpleNamespace(resolved=SimpleNamespace(name=f"fake-{spec or 'default'}"), version="v1")

    def engine(self, spec: str = "", backend=None, precision=None):
        return SimpleNamespace(backend=backend or "torch", precision=precision or "fp32")

    def detect(self, spec, images, imgsz, confidence, nms_iou=None, backend=None, precision=None):
        self.calls.append((spec, imgsz, len(images), confidence))
        self.nms.append(nms_iou)
        self.backends.append((backend, precision))
        boxes = np.array(
            [
                [100, 100, 140, 200, 0.9],  # anchor (120, 200): inside the region below
                [500, 10, 540, 50, 0.8],  # anchor (520, 50): outside it
                [300, 100, 340, 200, 0.35],  # low confidence
            ]
        )
        return [boxes.copy() for _ in images], 12.5


class MemoryPublisher:
    def __init__(self) -> None:
        self.records: list = []
        self.stats = PublisherStats()

    def publish(self, record) -> bool:
        self.records.append(parse(type(record), record.to_json()))  # what a consumer would read
        return True

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def close(self, timeout: float = 0) -> int:
        return 0

    def failing(self) -> bool:
        return False

    def spool_stats(self, key: str) -> KeyStats:
        return KeyStats(0, None, 0)

    def spool_totals(self) -> SpoolTotals:
        return SpoolTotals(0, 0, 0, None, 0, 0)


def camera(
    cid: str, imgsz: int | None, confidence: float = 0.5, region=None, nms_iou: float | None = None, fps: float = 20
) -> CameraConfig:
    return parse(
        CameraConfig,
        {
            "camera_id": cid,
            "stream": {"url": f"rtsp://h/{cid}", "target_fps": fps},
            "detection": {"imgsz": imgsz, "confidence": confidence, "region": region, "nms_iou": nms_iou},
        },
    )


@pytest.fixture
def grabber(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(grabber_mod, "make_source", lambda cid, stream: EndlessSource(cid))
    g = Grabber(
        # the source repeats one still image: the motion gate would skip the detector after the first
        # frame; these tests are about detection and batching (gating: test_streams_motion.py)
        GrabberOptions(grabber_id="g-test", stats_interval_s=3600, motion_gating=False),
        MemoryPublisher(),
        FakeDetector(),
        LocalLeases(),
        GrabberMetrics(),
    )
    yield g
    g.shutdown(flush_s=0)


def run_until(g: Grabber, pred, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        g.step(idle_wait_s=0.01)
    assert pred()


def test_frames_of_several_cameras_share_one_call_per_imgsz(grabber: Grabber) -> None:
    grabber.set_configs([camera("a", 320), camera("b", 320), camera("c", 640)])
    run_until(grabber, lambda: len(grabber.cameras) == 3)
    time.sleep(0.1)  # every reader has a frame waiting
    grabber.detector.calls.clear()
    assert grabber.step() == 3
    assert sorted((imgsz, n) for _, imgsz, n, _ in grabber.detector.calls) == [(320, 2), (640, 1)]


def test_groups_split_by_nms_iou_and_imgsz_none_follows_the_frame(grabber: Grabber, monkeypatch) -> None:
    sizes = []

    def fake_auto(width: int, height: int) -> int:
        sizes.append((width, height))
        return 480

    monkeypatch.setattr(grabber_mod, "auto_imgsz", fake_auto)
    grabber.set_configs(
        [camera("a", None), camera("b", None, nms_iou=0.7), camera("c", None, nms_iou=0.5), camera("d", 320)]
    )
    run_until(grabber, lambda: len(grabber.cameras) == 4)
    time.sleep(0.1)
    grabber.detector.calls.clear()
    grabber.detector.nms.clear()
    assert grabber.step() == 4
    got = sorted(
        (imgsz, nms, n) for (_, imgsz, n, _), nms in zip(grabber.detector.calls, grabber.detector.nms, strict=True)
    )
    # a: the detector's default 0.7, the same as b's explicit 0.7: one call for both
    assert got == [(320, 0.7, 1), (480, 0.5, 1), (480, 0.7, 2)]
    assert set(sizes) == {(640, 360)}  # the frames' own size


def test_groups_split_by_backend_and_stats_report_it(grabber: Grabber) -> None:
    def with_backend(cid: str, backend: str | None, precision: str | None = None) -> CameraConfig:
        cfg = json.loads(camera(cid, 320).to_json())
        cfg["detection"].update(backend=backend, precision=precision)
        return parse(CameraConfig, cfg)

    grabber.set_configs(
        [
            with_backend("a", None),
            with_backend("b", None),
            with_backend("c", "openvino", "int8"),
            with_backend("d", "onnx"),
        ]
    )
    run_until(grabber, lambda: len(grabber.cameras) == 4)
    time.sleep(0.1)
    grabber.detector.calls.clear()
    grabber.detector.backends.clear()
    assert grabber.step() == 4
    got = sorted(
        ((b or "", p or ""), n)
        for (_, _, n, _), (b, p) in zip(grabber.detector.calls, grabber.detector.backends, strict=True)
    )
    assert got == [(("", ""), 2), (("onnx", ""), 1), (("openvino", "int8"), 1)]
    stats = parse(StreamStats, grabber.stats_for(grabber.cameras["c"], time.monotonic()).to_json())
    assert (stats.inference_backend, stats.inference_precision) == ("openvino", "int8")
    value = grabber.metrics.registry.get_sample_value(
        "footfall_grabber_inference_backend", {"camera_id": "c", "backend": "openvino", "precision": "int8"}
    )
    assert value == 1.0
    grabber.metrics.forget("c")
    assert (
        grabber.metrics.registry.get_sample_value(
            "footfall_grabber_inference_backend", {"camera_id": "c", "backend": "openvino", "precision": "int8"}
        )
        is None
    )


def test_the_imgsz_option_overrides_every_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grabber_mod, "make_source", lambda cid, stream: EndlessSource(cid))
    g = Grabber(
        GrabberOptions(grabber_id="g", imgsz=256, motion_gating=False), MemoryPublisher(), FakeDetector(), LocalLeases()
    )
    try:
        assert g.imgsz(camera("a", None)) == 256 and g.imgsz(camera("b", 320)) == 256
        g.options.imgsz = None
        assert g.imgsz(camera("b", 320)) == 320
        assert g.imgsz(camera("a", None), (1920, 1080)) == grabber_mod.auto_imgsz(1920, 1080)
    finally:
        g.shutdown(flush_s=0)


def test_published_detections_are_filtered_valid_and_increasing(grabber: Grabber) -> None:
    region = [[0, 150], [640, 150], [640, 360], [0, 360]]
    grabber.set_configs([camera("a", 320, confidence=0.5, region=region), camera("b", 320, confidence=0.3)])
    run_until(grabber, lambda: sum(r.camera_id == "a" for r in grabber.publisher.records) >= 5)
    by_cam: dict[str, list[FrameDetections]] = {}
    for r in grabber.publisher.records:
        by_cam.setdefault(r.camera_id, []).append(r)
    a = by_cam["a"]
    assert all(r.boxes == [[100.0, 100.0, 140.0, 200.0, 0.9]] for r in a)  # region + confidence
    assert all(len(r.boxes) == 3 for r in by_cam["b"])  # b: no region, lower threshold
    assert all(y.frame_seq > x.frame_seq for x, y in zip(a, a[1:], strict=False))
    r = a[0]
    assert (r.frame_width, r.frame_height, r.model_name, r.model_version, r.inference_ms) == (
        640,
        360,
        "fake-default",
        "v1",
        12.5,
    )
    assert r.published_at >= r.captured_at
    # a batch holding both cameras runs once, at the lower threshold; each camera then applies its own
    time.sleep(0.1)
    grabber.step()
    assert any(n == 2 and conf == 0.3 for _, _, n, conf in grabber.detector.calls)


def test_a_revoked_camera_publishes_nothing_more(grabber: Grabber) -> None:
    grabber.set_configs([camera("a", 320)])
    run_until(grabber, lambda: len(grabber.publisher.records) >= 2)
    grabber.revoke("a")
    n = len(grabber.publisher.records)
    for _ in range(20):
        grabber.step(idle_wait_s=0.01)
    assert len(grabber.publisher.records) == n


def test_removed_camera_stops(grabber: Grabber) -> None:
    grabber.set_configs([camera("a", 320), camera("b", 320)])
    run_until(grabber, lambda: len(grabber.cameras) == 2)
    grabber.set_configs([camera("b", 320)])
    assert list(grabber.cameras) == ["b"]


def test_changed_config_restarts_the_camera_keeping_seq_and_totals(grabber: Grabber) -> None:
    grabber.set_configs([camera("a", 320)])
    run_until(grabber, lambda: len(grabber.publisher.records) >= 3)
    rt = grabber.cameras["a"]
    before = rt.totals().input_frames
    last_seq = rt.seq.last
    grabber.set_configs([camera("a", 640)])
    assert grabber.cameras["a"] is rt and rt.config.detection.imgsz == 640
    assert rt.totals().input_frames >= before
    run_until(grabber, lambda: grabber.cameras["a"].seq.last > last_seq)


def test_detection_changes_apply_without_reconnecting(grabber: Grabber) -> None:
    """A new confidence / NMS IoU (as from the config topic) changes the next inference call and
    what is published, on the same reader: no reconnect, no process restart."""
    changes = []
    grabber.config_source = lambda: (changes.pop(), True) if changes else ([], False)
    grabber.set_configs([camera("a", 320, confidence=0.3)])
    run_until(grabber, lambda: sum(r.camera_id == "a" for r in grabber.publisher.records) >= 2)
    rt, reader = grabber.cameras["a"], grabber.cameras["a"].reader
    assert grabber.detector.nms[-1] == 0.7 and grabber.detector.calls[-1][3] == 0.3
    assert all(len(r.boxes) == 3 for r in grabber.publisher.records)

    changes.append([camera("a", 320, confidence=0.85, nms_iou=0.45)])
    grabber.step()  # housekeeping applies it before this step's inference
    n = len(grabber.publisher.records)
    run_until(grabber, lambda: len(grabber.publisher.records) >= n + 2)
    assert grabber.cameras["a"] is rt and rt.reader is reader and not reader.stopped
    assert grabber.detector.nms[-1] == 0.45 and grabber.detector.calls[-1][3] == 0.85
    assert all(r.boxes == [[100.0, 100.0, 140.0, 200.0, 0.9]] for r in grabber.publisher.records[n:])


def test_a_changed_stream_restarts_the_reader(grabber: Grabber) -> None:
    grabber.set_configs([camera("a", 320)])
    run_until(grabber, lambda: len(grabber.publisher.records) >= 2)
    rt, reader = grabber.cameras["a"], grabber.cameras["a"].reader
    grabber.set_configs([camera("a", 320, fps=5)])
    assert grabber.cameras["a"] is rt and rt.reader is not reader and rt.config.stream.target_fps == 5
    n = len(grabber.publisher.records)
    run_until(grabber, lambda: len(grabber.publisher.records) > n)


def test_a_config_naming_an_unusable_model_is_refused(grabber: Grabber, caplog) -> None:
    from streams.detector import ModelError

    grabber.set_configs([camera("a", 320, confidence=0.3)])
    run_until(grabber, lambda: "a" in grabber.cameras)
    rt = grabber.cameras["a"]
    real_model = grabber.detector.model

    def model(spec: str = ""):
        if spec == "cars.pt":
            raise ModelError("model has no person class")
        return real_model(spec)

    grabber.detector.model = model
    bad = parse(CameraConfig, {**json.loads(camera("a", 320).to_json()), "detection": {"model": "cars.pt"}})
    grabber.set_configs([bad])
    assert grabber.cameras["a"] is rt and rt.config.detection.confidence == 0.3  # the previous config runs on
    assert "keeping the previous one" in caplog.text


def test_stats_record(grabber: Grabber) -> None:
    grabber.set_configs([camera("a", 320)])
    run_until(grabber, lambda: len(grabber.publisher.records) >= 10)
    stats = grabber.stats_for(grabber.cameras["a"], time.monotonic())
    stats = parse(StreamStats, stats.to_json())
    assert stats.camera_id == "a" and stats.grabber_id == "g-test"
    assert stats.processed_fps > 0 and stats.input_fps >= stats.processed_fps
    assert stats.inference_ms_p50 == 12.5 and stats.latency_ms_p95 is not None
    assert (stats.frame_width, stats.frame_height) == (640, 360)
    assert stats.status in ("online", "degraded")


def test_box_rows_round_and_drop_degenerate() -> None:
    assert box_rows(np.zeros((0, 5))) == []
    assert box_rows(np.array([[0.01, 0, 0.04, 10, 1.2]])) == []
    assert box_rows(np.array([[0, 0, 10, 10, 1.2]])) == [[0.0, 0.0, 10.0, 10.0, 1.0]]


def test_unreachable_kafka_degrades_but_the_grabber_keeps_going(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.publisher import KafkaPublisher

    monkeypatch.setattr(grabber_mod, "make_source", lambda cid, stream: EndlessSource(cid))
    publisher = KafkaPublisher(
        "127.0.0.1:1", {FrameDetections: "t.det", StreamStats: "t.stats"}, max_messages=5, stall_s=0.3
    )
    g = Grabber(
        GrabberOptions(grabber_id="g", stats_interval_s=3600, motion_gating=False),
        publisher,
        FakeDetector(),
        LocalLeases(),
    )
    g.set_configs([camera("a", 320)])
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        g.step(idle_wait_s=0.01)
    rt = g.cameras["a"]
    assert rt.window.processed > 20  # detection went on
    # librdkafka holds at most max_messages; the rest waits in the spool, in order, nothing dropped
    assert publisher.stats.in_flight == 5 and publisher.stats.dropped == 0
    assert publisher.spool.waiting == rt.window.processed - 5
    stats = g.stats_for(rt, time.monotonic())
    assert stats.status == "degraded"
    assert "publishing failing" in stats.last_error and "messages spooled" in stats.last_error
    assert stats.spooled_messages == publisher.spool.waiting and stats.spool_oldest_age_s >= 1.0
    assert stats.spool_dropped == 0
    g.shutdown(flush_s=0)


def test_a_failing_inference_is_reported_and_the_loop_goes_on(grabber: Grabber, caplog) -> None:
    real_detect = grabber.detector.detect
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("CUDA out of memory")
        return real_detect(*args)

    grabber.detector.detect = flaky
    grabber.set_configs([camera("a", 320)])
    run_until(grabber, lambda: calls["n"] >= 3)
    stats = grabber.stats_for(grabber.cameras["a"], time.monotonic())
    assert "inference failed: RuntimeError: CUDA out of memory" in stats.last_error
    assert "CUDA out of memory" in caplog.text
    run_until(grabber, lambda: len(grabber.publisher.records) >= 2)
    assert grabber.cameras["a"].inference_error is None
