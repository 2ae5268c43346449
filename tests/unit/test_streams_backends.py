"""The export cache and backend choice of streams/backends.py, with a fake exporter (no torch run):
reuse, invalidation by the weights' bytes, where the cache lives, fallback to PyTorch once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from models.records import DETECTOR_BACKENDS, DETECTOR_PRECISIONS, DetectionSettings, SchemaError, parse
from streams import backends, calibration
from streams.backends import Engines, ExportCache, ExportSpec, default_cache_root, pick_backend


class FakeExporter:
    def __init__(self) -> None:
        self.calls: list[tuple[Path, ExportSpec, Path | None, int]] = []  # weights, spec, calibration, its frames

    def __call__(self, weights: Path, spec: ExportSpec, out_dir: Path, calibration: Path | None) -> Path:
        frames = len(list(calibration.glob("*.jpg"))) if calibration is not None and calibration.is_dir() else 0
        self.calls.append((weights, spec, calibration, frames))
        if spec.format == "openvino":
            folder = out_dir / f"{weights.stem}_openvino_model"
            folder.mkdir()
            (folder / f"{weights.stem}.xml").write_text("<xml/>")
            return folder
        path = out_dir / f"{weights.stem}.onnx"
        path.write_bytes(weights.read_bytes())
        return path


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "best.pt"
    path.parent.mkdir()
    path.write_bytes(b"weights v1")
    return path


def test_second_get_reuses_the_export_and_changed_weights_export_again(tmp_path: Path, weights: Path) -> None:
    exporter = FakeExporter()
    cache = ExportCache(tmp_path / "cache", exporter)
    first = cache.get(weights, ExportSpec("onnx", "fp32"))
    assert first.is_file() and first.suffix == ".onnx" and len(exporter.calls) == 1
    again = ExportCache(tmp_path / "cache", exporter).get(weights, ExportSpec("onnx", "fp32"))  # a new process
    assert again == first and len(exporter.calls) == 1
    ov = cache.get(weights, ExportSpec("openvino", "fp32"))  # another format: its own entry
    assert ov.is_dir() and ov != first and len(exporter.calls) == 2
    weights.write_bytes(b"weights v2")  # same name, new bytes
    changed = cache.get(weights, ExportSpec("onnx", "fp32"))
    assert changed != first and len(exporter.calls) == 3 and changed.read_bytes() == b"weights v2"
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no work folders left


def test_the_key_covers_the_export_settings(tmp_path: Path, weights: Path, monkeypatch) -> None:
    cache = ExportCache(tmp_path / "cache", FakeExporter())
    keys = {
        cache.key(weights, ExportSpec("onnx", "fp32")),
        cache.key(weights, ExportSpec("onnx", "fp32", imgsz=320)),
        cache.key(weights, ExportSpec("onnx", "fp32", dynamic=False)),
        cache.key(weights, ExportSpec("openvino", "fp32")),
        cache.key(weights, ExportSpec("openvino", "int8")),
    }
    monkeypatch.setattr(backends, "ultralytics_version", lambda: "0.0.0-other")
    keys.add(cache.key(weights, ExportSpec("onnx", "fp32")))
    assert len(keys) == 6


def test_cache_beside_the_weights_else_the_cache_dir(tmp_path: Path, weights: Path, monkeypatch) -> None:
    assert default_cache_root(weights) == weights.parent / ".footfall-exports"
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: a read-only folder cannot be made")
    weights.parent.chmod(0o555)
    try:
        monkeypatch.setenv("FOOTFALL_MODEL_CACHE", str(tmp_path / "elsewhere"))
        assert default_cache_root(weights) == tmp_path / "elsewhere"
        monkeypatch.delenv("FOOTFALL_MODEL_CACHE")
        assert default_cache_root(weights) == Path.home() / ".cache" / "footfall" / "models"
    finally:
        weights.parent.chmod(0o755)


def test_a_failed_export_falls_back_to_torch_once_with_one_log_line(
    tmp_path: Path, weights: Path, monkeypatch, caplog
) -> None:
    calls = []

    def broken(weights: Path, spec: ExportSpec, out_dir: Path, calibration: Path | None) -> Path:
        calls.append(spec)
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(backends, "installed", lambda backend: True)
    engines = Engines(ExportCache(tmp_path / "cache", broken))
    torch_model = object()
    with caplog.at_level(logging.WARNING, logger="streams.backends"):
        for _ in range(3):  # every frame asks again: the failure is remembered
            engine = engines.get(str(weights), "onnx", "fp32", torch_model)
            assert engine.model is torch_model and (engine.backend, engine.precision) == ("torch", "fp32")
    assert len(calls) == 1
    lines = [r for r in caplog.records if r.name == "streams.backends" and r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "exporter exploded" in lines[0].getMessage() and "PyTorch" in lines[0].getMessage()


@pytest.fixture
def no_clip(monkeypatch) -> None:
    """No calibration clip anywhere (a user's machine), exports that load instantly, no gap between
    calibration frames."""
    monkeypatch.setattr(backends, "calibration_clip", lambda: None)
    monkeypatch.setattr(backends, "installed", lambda backend: True)
    monkeypatch.setattr(backends, "load_exported", lambda path, backend, threads: ("loaded", path))
    monkeypatch.setattr(calibration, "EVERY_S", 0.0)


def person_frames(n: int, people: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(n)
    images = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(n)]
    boxes = [np.array([[10, 10, 50, 120, 0.8]]) if people else np.zeros((0, 5)) for _ in range(n)]
    return images, boxes


def test_int8_without_a_clip_calibrates_on_the_grabbers_frames_then_switches(
    tmp_path: Path, weights: Path, no_clip, caplog
) -> None:
    exporter = FakeExporter()
    engines = Engines(ExportCache(tmp_path / "cache", exporter), calibration_frames=3)
    model = object()
    with caplog.at_level(logging.INFO, logger="streams.backends"):
        first = engines.get(str(weights), "openvino", "int8", model)
    assert (first.backend, first.precision) == ("openvino", "fp32")  # meanwhile
    assert "calibrating on this grabber's frames" in caplog.text
    empty = person_frames(5, people=False)
    engines.offer(str(weights), "openvino", "int8", *empty)  # nobody in view: nothing kept
    job = engines._calibrating[(str(weights), "openvino")]
    assert job.sampler.count == 0 and job.thread is None
    for _ in range(3):
        engines.offer(str(weights), "openvino", "int8", *person_frames(2))
    assert job.thread is not None
    job.thread.join(10)
    engine = engines.get(str(weights), "openvino", "int8", model)
    assert (engine.backend, engine.precision) == ("openvino", "int8") and engine.model[0] == "loaded"
    (int8_call,) = [c for c in exporter.calls if c[1].precision == "int8"]
    assert int8_call[2] == job.sampler.folder and int8_call[3] == 3  # the three frames, shrunk
    assert not list(job.sampler.folder.glob("*.jpg"))  # pictures of people are not kept once exported
    assert (job.sampler.folder / calibration.DIGEST_FILE).is_file()
    # a later start: the same calibration's export comes from the cache at once, no frames needed
    again = Engines(ExportCache(tmp_path / "cache", exporter), calibration_frames=3)
    restarted = again.get(str(weights), "openvino", "int8", model)
    assert (restarted.backend, restarted.precision) == ("openvino", "int8") and restarted.path == engine.path
    assert len([c for c in exporter.calls if c[1].precision == "int8"]) == 1


def test_a_failed_self_calibrated_export_stays_at_fp32_with_one_line(
    tmp_path: Path, weights: Path, no_clip, caplog
) -> None:
    exporter = FakeExporter()

    def int8_fails(weights: Path, spec: ExportSpec, out_dir: Path, calibration: Path | None) -> Path:
        if spec.precision == "int8":
            raise RuntimeError("nncf exploded")
        return exporter(weights, spec, out_dir, calibration)

    engines = Engines(ExportCache(tmp_path / "cache", int8_fails), calibration_frames=2)
    engines.get(str(weights), "openvino", "int8", object())
    with caplog.at_level(logging.WARNING, logger="streams.backends"):
        for _ in range(2):
            engines.offer(str(weights), "openvino", "int8", *person_frames(1))
        engines._calibrating[(str(weights), "openvino")].thread.join(10)
    for _ in range(3):
        engine = engines.get(str(weights), "openvino", "int8", object())
        assert (engine.backend, engine.precision) == ("openvino", "fp32")
    assert caplog.text.count("nncf exploded") == 1


def test_frame_sampler_keeps_shrunk_frames_with_people_one_per_interval(tmp_path: Path) -> None:
    now = [0.0]
    sampler = calibration.FrameSampler(tmp_path / "frames", wanted=3, every_s=1.0, clock=lambda: now[0])
    images, boxes = person_frames(2)
    assert not sampler.offer(images, boxes) and sampler.count == 1
    assert not sampler.offer(images, boxes) and sampler.count == 1  # too soon
    now[0] = 1.5
    sampler.offer(*person_frames(1, people=False))  # nobody: not kept, and the clock does not restart
    assert sampler.count == 1
    sampler.offer([images[0]], [np.array([[0, 0, 5, 5, 0.1]])])  # too unsure
    assert sampler.count == 1
    sampler.offer(images, boxes)
    assert sampler.count == 2
    import cv2

    kept = cv2.imread(str(calibration.frame_files(tmp_path / "frames")[0]))
    assert kept.shape == (360, 640, 3)  # shrunk to the export's size
    resumed = calibration.FrameSampler(tmp_path / "frames", wanted=3, every_s=1.0, clock=lambda: now[0])
    assert resumed.count == 2  # a restarted grabber continues
    now[0] = 3.0
    assert resumed.offer(images, boxes) and resumed.ready
    digest = calibration.folder_digest(tmp_path / "frames")
    resumed.seal()
    assert resumed.done and calibration.folder_digest(tmp_path / "frames") == digest
    assert not calibration.frame_files(tmp_path / "frames")


def test_pick_backend() -> None:
    assert pick_backend("torch") == "torch" and pick_backend("onnx") == "onnx"
    assert pick_backend("auto", "cuda:0") == "torch"
    expected = "openvino" if backends.installed("openvino") else "onnx" if backends.installed("onnx") else "torch"
    assert pick_backend("auto", "cpu") == expected
    with pytest.raises(ValueError, match="backend must be one of"):
        pick_backend("tensorrt")


def test_detection_settings_validate_backend_and_precision() -> None:
    ok = parse(DetectionSettings, {"backend": "openvino", "precision": "int8"})
    assert (ok.backend, ok.precision) == ("openvino", "int8")
    assert parse(DetectionSettings, {}).backend is None
    assert (DETECTOR_BACKENDS, DETECTOR_PRECISIONS) == (backends.BACKENDS, backends.PRECISIONS)  # kept in step
    with pytest.raises(SchemaError, match="backend"):
        parse(DetectionSettings, {"backend": "tensorrt"})
    with pytest.raises(SchemaError, match="precision"):
        parse(DetectionSettings, {"precision": "fp16"})
