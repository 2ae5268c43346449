"""The export cache and backend choice of streams/backends.py, with a fake exporter (no torch run):
reuse, invalidation by the weights' bytes, where the cache lives, fallback to PyTorch once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from models.records import DETECTOR_BACKENDS, DETECTOR_PRECISIONS, DetectionSettings, SchemaError, parse
from streams import backends
from streams.backends import Engines, ExportCache, ExportSpec, default_cache_root, pick_backend


class FakeExporter:
    def __init__(self) -> None:
        self.calls: list[tuple[Path, ExportSpec]] = []

    def __call__(self, weights: Path, spec: ExportSpec, out_dir: Path, calibration: Path | None) -> Path:
        self.calls.append((weights, spec))
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


def test_int8_without_calibration_clip_runs_fp32(tmp_path: Path, weights: Path, monkeypatch, caplog) -> None:
    exporter = FakeExporter()
    monkeypatch.setattr(backends, "calibration_clip", lambda: None)
    monkeypatch.setattr(backends, "installed", lambda backend: True)
    monkeypatch.setattr(backends, "load_exported", lambda path, backend, threads: ("loaded", path))
    engines = Engines(ExportCache(tmp_path / "cache", exporter))
    with caplog.at_level(logging.WARNING, logger="streams.backends"):
        engine = engines.get(str(weights), "openvino", "int8", object())
    assert (engine.backend, engine.precision) == ("openvino", "fp32")
    assert [spec.precision for _, spec in exporter.calls] == ["fp32"]
    assert "calibration" in caplog.text


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
