"""Inference backends for the detector: PyTorch, ONNX Runtime, OpenVINO (FP32 or INT8).

The configured checkpoint (a ``.pt``) is exported once with Ultralytics' own exporter and the
export is cached (:class:`ExportCache`), keyed by the weights' SHA-256 and the export settings
(format, precision, input shape rule, Ultralytics version, and for INT8 the calibration frames).
A later start reuses it; changed weights give a new key, so a new export. The exported model is
loaded through Ultralytics (``YOLO(path, task="detect")``), so pre-processing, NMS and the boxes
are the same code as with PyTorch.

Exports are **dynamic** (batch, height and width): one export serves every ``imgsz`` and any
batch size, and Ultralytics letterboxes a dynamic model to the minimal rectangle as it does for
PyTorch (640x384 for a 16:9 frame at 640, not 640x640), which is worth more than a static shape
(``bench/detector_cost.py``).

Where the cache lives: beside the weights (``<weights folder>/.footfall-exports/``) when that folder
is writable, else ``$FOOTFALL_MODEL_CACHE``, else ``~/.cache/footfall/models`` (the offline model
lives in site-packages, which may be read-only).

``backend="auto"`` is :func:`pick_backend`: PyTorch on a CUDA device, else OpenVINO when installed,
else ONNX Runtime, else PyTorch. A failed export or load falls back to PyTorch with one log line and
is remembered for the process (:class:`Engines`).

INT8 is post-training quantisation with NNCF (``export(format="openvino", quantize=8, data=...)``),
calibrated on frames of a clip (:func:`calibration_yaml`: ``FOOTFALL_CALIBRATION_CLIP``, else the
development clip ``../shared/assets/crosswalk-640x360.mp4``); without a calibration clip INT8 falls
back to FP32 with one log line.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "openvino")
PRECISIONS = ("fp32", "int8")
# The grabber's defaults (``--backend`` / ``--precision``); see streams/README.md for the figures.
# INT8 would be the default if its pooled counting accuracy were within 0.01 of FP32's: it is 0.892
# against 0.905 (bench/accuracy.py --backend openvino --precision int8|fp32, 2026-12-01).
DEFAULT_BACKEND = "auto"
DEFAULT_PRECISION = "fp32"
# Which backends can run INT8 here (Ultralytics' exporter: NNCF for OpenVINO).
INT8_BACKENDS = frozenset({"openvino"})
EXPORT_IMGSZ = 640  # the shape traced for a dynamic export, and the INT8 calibration size
CALIBRATION_FRAMES = 300
CACHE_ENV = "FOOTFALL_MODEL_CACHE"
CALIBRATION_ENV = "FOOTFALL_CALIBRATION_CLIP"
DEFAULT_CALIBRATION_CLIP = Path(__file__).resolve().parents[2] / "shared" / "assets" / "crosswalk-640x360.mp4"
EXPORT_DIRNAME = ".footfall-exports"
FORMAT_VERSION = "1"  # bump when the export recipe below changes


class BackendError(RuntimeError):
    pass


def installed(backend: str) -> bool:
    """Whether the runtime a backend needs is importable (without importing it)."""
    module = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}[backend]
    return importlib.util.find_spec(module) is not None


def pick_backend(requested: str, device: str = "cpu") -> str:
    """The backend ``requested`` means on ``device``: ``auto`` is PyTorch on a GPU; on a CPU OpenVINO
    (FP32 as fast as ONNX Runtime, 1.2x PyTorch; the only one with INT8, 3.8x: ``bench/detector_cost.py``),
    else ONNX Runtime, else PyTorch.

    >>> pick_backend("torch"), pick_backend("auto", "cuda:0")
    ('torch', 'torch')
    """
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested != "auto":
        return requested
    if not str(device).startswith("cpu"):
        return "torch"
    for backend in ("openvino", "onnx"):
        if installed(backend):
            return backend
    return "torch"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def default_cache_root(weights: Path) -> Path:
    """``<weights folder>/.footfall-exports`` when writable, else ``$FOOTFALL_MODEL_CACHE``, else
    ``~/.cache/footfall/models``."""
    beside = weights.resolve().parent / EXPORT_DIRNAME
    if (beside.is_dir() or os.access(beside.parent, os.W_OK)) and _writable(beside):
        return beside
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "footfall" / "models"


@dataclass(frozen=True)
class ExportSpec:
    backend: str  # "onnx" | "openvino"
    precision: str  # "fp32" | "int8"
    imgsz: int = EXPORT_IMGSZ
    dynamic: bool = True

    @property
    def format(self) -> str:
        return self.backend  # Ultralytics' format names happen to be ours


def ultralytics_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ultralytics")
    except PackageNotFoundError:
        return "none"


def calibration_clip() -> Path | None:
    env = os.environ.get(CALIBRATION_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_CALIBRATION_CLIP if DEFAULT_CALIBRATION_CLIP.is_file() else None


def calibration_yaml(clip: Path, folder: Path, names: dict[int, str], n: int = CALIBRATION_FRAMES) -> Path:
    """A detection dataset of ``n`` frames spread over ``clip`` (JPEGs, empty label files) and its
    YAML, for Ultralytics' INT8 calibration. No network, nothing but the clip."""
    import cv2

    images, labels = folder / "images" / "val", folder / "labels" / "val"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(clip))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or n
        step = max(1, total // n)
        i = kept = 0
        while kept < n:
            ok, image = cap.read()
            if not ok:
                break
            if i % step == 0:
                cv2.imwrite(str(images / f"{kept:05d}.jpg"), image)
                (labels / f"{kept:05d}.txt").write_text("")
                kept += 1
            i += 1
    finally:
        cap.release()
    if kept == 0:
        raise BackendError(f"no frame could be read from the calibration clip {clip}")
    data = folder / "calibration.yaml"
    lines = [f"path: {folder}", "train: images/val", "val: images/val", "names:"]
    lines += [f"  {k}: {v}" for k, v in sorted(names.items())]
    data.write_text("\n".join(lines) + "\n")
    return data


def ultralytics_export(weights: Path, spec: ExportSpec, out_dir: Path, calibration: Path | None) -> Path:
    """Export ``weights`` (a copy inside ``out_dir``) with Ultralytics; returns the exported path."""
    from ultralytics import YOLO

    local = out_dir / weights.name
    shutil.copyfile(weights, local)
    model = YOLO(str(local))
    kwargs: dict = {"format": spec.format, "imgsz": spec.imgsz, "dynamic": spec.dynamic, "device": "cpu"}
    if spec.format == "onnx":
        kwargs["simplify"] = True
    if spec.precision == "int8":
        if calibration is None:
            raise BackendError("INT8 needs a calibration clip (FOOTFALL_CALIBRATION_CLIP)")
        kwargs["quantize"] = 8
        kwargs["data"] = str(calibration_yaml(calibration, out_dir / "calibration", dict(model.names)))
    exported = Path(model.export(**kwargs))
    local.unlink(missing_ok=True)
    shutil.rmtree(out_dir / "calibration", ignore_errors=True)
    return exported


class ExportCache:
    """Exported models, keyed by the weights' bytes and the export settings.

    ``exporter(weights, spec, out_dir, calibration) -> path`` does the export (tests replace it)."""

    def __init__(
        self,
        root: Path | None = None,
        exporter: Callable[[Path, ExportSpec, Path, Path | None], Path] = ultralytics_export,
    ) -> None:
        self.root = root
        self.exporter = exporter
        self.exports = 0  # exports done by this instance
        self._lock = threading.Lock()

    def key(self, weights: Path, spec: ExportSpec, calibration: Path | None = None) -> str:
        parts = [
            FORMAT_VERSION,
            sha256_file(weights),
            spec.format,
            spec.precision,
            f"imgsz={spec.imgsz}",
            "dynamic" if spec.dynamic else "static",
            ultralytics_version(),
        ]
        if spec.precision == "int8" and calibration is not None:
            parts.append(sha256_file(calibration))
        return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]

    def folder(self, weights: Path, spec: ExportSpec, calibration: Path | None = None) -> Path:
        root = self.root or default_cache_root(weights)
        return root / f"{weights.stem}-{spec.format}-{spec.precision}-{self.key(weights, spec, calibration)}"

    def get(self, weights: str | Path, spec: ExportSpec, calibration: Path | None = None) -> Path:
        """The exported model for ``weights`` and ``spec``: from the cache, else exported now."""
        weights = Path(weights)
        if spec.precision == "int8" and calibration is None:
            calibration = calibration_clip()
            if calibration is None:
                raise BackendError(
                    f"INT8 needs a calibration clip: set {CALIBRATION_ENV} (none at {DEFAULT_CALIBRATION_CLIP})"
                )
        with self._lock:
            final = self.folder(weights, spec, calibration)
            found = _exported_in(final)
            if found is not None:
                log.debug("using cached export %s", found)
                return found
            final.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
            try:
                log.info("exporting %s to %s %s (once; cached in %s)", weights.name, spec.format, spec.precision, final)
                exported = self.exporter(weights, spec, work, calibration)
                self.exports += 1
                staged = work / "model"
                staged.mkdir()
                shutil.move(str(exported), str(staged / Path(exported).name))
                with contextlib.suppress(OSError):  # another process finished the same export first
                    os.replace(staged, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            found = _exported_in(final)
            if found is None:
                raise BackendError(f"export of {weights} to {spec.format} left nothing usable in {final}")
            return found


def _exported_in(folder: Path) -> Path | None:
    """The model inside a cache entry: a ``.onnx`` file or an OpenVINO ``*_openvino_model`` folder."""
    if not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir()):
        if entry.suffix == ".onnx" and entry.is_file():
            return entry
        if entry.is_dir() and entry.name.endswith("_openvino_model") and any(entry.glob("*.xml")):
            return entry
    return None


# --------------------------------------------------------------------------- loading


def load_exported(path: Path, backend: str, threads: int | None):
    """``YOLO(path, task="detect")`` with its runtime set up now, on ``threads`` CPU threads."""
    import numpy as np
    from ultralytics import YOLO

    yolo = YOLO(str(path), task="detect")
    # Build the predictor (and so the runtime session) with one tiny inference, then set it up.
    yolo.predict(np.zeros((64, 64, 3), dtype=np.uint8), imgsz=64, device="cpu", verbose=False)
    configure_runtime(yolo, backend, path, threads)
    return yolo


def configure_runtime(yolo, backend: str, path: Path, threads: int | None) -> None:
    """Rebuild the runtime session of an exported model with ``threads`` intra-op threads
    (Ultralytics' AutoBackend exposes no such option), and OpenVINO at FP32 inference precision:
    its CPU plugin otherwise computes in BF16 on CPUs that have it (AVX-512 BF16, AMX), which cost
    0.04 of pooled counting accuracy here (0.905 -> 0.865)."""
    inner = yolo.predictor.model.backend
    if backend == "onnx" and threads:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        model_file = path if path.is_file() else next(path.glob("*.onnx"))
        inner.session = onnxruntime.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
        inner.output_names = [x.name for x in inner.session.get_outputs()]
    elif backend == "openvino":
        from functools import partial

        import openvino as ov

        core = ov.Core()
        xml = path if path.is_file() else next(path.glob("*.xml"))
        config: dict = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": ov.Type.f32}
        if threads:
            config |= {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
        inner.compile_model = partial(core.compile_model, device_name="CPU", config=config)
        inner.ov_compiled_model = inner.compile_model(core.read_model(model=str(xml), weights=xml.with_suffix(".bin")))
        inner.prefetch = False


@dataclass
class Engine:
    """One way to run one model: what runs it (after any fallback) and the Ultralytics object."""

    model: object  # ultralytics.YOLO
    backend: str  # "torch" | "onnx" | "openvino"
    precision: str  # "fp32" | "int8"
    path: str  # the weights or the exported model


class Engines:
    """Per (weights, backend, precision): the exported, loaded model, made once. A failure falls
    back to PyTorch FP32 with one warning and is remembered, so it is not tried again."""

    def __init__(
        self, cache: ExportCache | None = None, threads: int | None = None, calibration: Path | None = None
    ) -> None:
        self.cache = cache or ExportCache()
        self.threads = threads
        self.calibration = calibration
        self._engines: dict[tuple[str, str, str], Engine] = {}

    def get(self, weights: str, backend: str, precision: str, torch_model) -> Engine:
        """``torch_model`` is the loaded ``.pt`` YOLO (the fallback and the torch backend)."""
        check_precision(precision)
        key = (weights, backend, precision)
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        if backend == "torch":
            if precision != "fp32":
                log.warning("precision %s is not available with PyTorch; using fp32", precision)
            engine = Engine(torch_model, "torch", "fp32", weights)
        elif not Path(weights).is_file():
            log.warning("%s backend needs a weights file, %s is not one; using PyTorch", backend, weights)
            engine = Engine(torch_model, "torch", "fp32", weights)
        else:
            if precision == "int8" and backend not in INT8_BACKENDS:
                log.warning("INT8 is available with %s only; %s runs fp32", ", ".join(INT8_BACKENDS), backend)
                precision = "fp32"
            engine = self._export_and_load(weights, backend, precision, torch_model)
        log.info("detector %s runs on %s %s (%s)", Path(weights).name, engine.backend, engine.precision, engine.path)
        self._engines[key] = engine
        return engine

    def _export_and_load(self, weights: str, backend: str, precision: str, torch_model) -> Engine:
        try:
            if not installed(backend):
                raise BackendError(f"{backend} runtime is not installed (pip install -e '.[fast]')")
            path = self.cache.get(weights, ExportSpec(backend, precision), self.calibration)
            return Engine(load_exported(path, backend, self.threads), backend, precision, str(path))
        except Exception as exc:  # noqa: BLE001 - any export/load failure: run PyTorch instead
            if precision == "int8":  # try the same backend at fp32 before giving up on it
                log.warning(
                    "%s int8 export/load failed for %s (%s: %s); using %s fp32",
                    backend,
                    weights,
                    type(exc).__name__,
                    str(exc)[:300],
                    backend,
                )
                return self._export_and_load(weights, backend, "fp32", torch_model)
            log.warning(
                "%s export/load failed for %s (%s: %s); using PyTorch for this model",
                backend,
                weights,
                type(exc).__name__,
                str(exc)[:300],
            )
            return Engine(torch_model, "torch", "fp32", weights)
