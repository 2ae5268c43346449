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

INT8 (the default on a CPU) is post-training quantisation of the FP32 OpenVINO export with NNCF
(:func:`quantise_openvino`), calibrated on 300 frames of a clip (:func:`calibration_frames`:
``FOOTFALL_CALIBRATION_CLIP``, else the development clip
``../shared/assets/crosswalk-640x360.mp4`` where it exists), else on the grabber's own frames
(``streams.calibration``: FP32 until a few hundred frames with people are kept, then the export runs in
a background thread and the detector switches). A failed INT8 export runs FP32 with one log line.
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

from streams.calibration import FrameSampler, folder_digest, frame_files

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "openvino")
PRECISIONS = ("fp32", "int8")
# The grabber's defaults (``--backend`` / ``--precision``); see streams/README.md for the figures.
# INT8 is the default because its counting accuracy holds: pooled 0.905 against FP32's 0.905 on the
# development footage, 0.664 against 0.642 on its grid of lines (bench/accuracy.py --backend openvino
# --precision int8|fp32 [--lines grid], 2026-12-01). It applies to OpenVINO only; elsewhere FP32.
DEFAULT_BACKEND = "auto"
DEFAULT_PRECISION = "int8"
# Which backends can run INT8 here (Ultralytics' exporter: NNCF for OpenVINO).
INT8_BACKENDS = frozenset({"openvino"})
EXPORT_IMGSZ = 640  # the shape traced for a dynamic export, and the INT8 calibration size
CALIBRATION_FRAMES = 300
CACHE_ENV = "FOOTFALL_MODEL_CACHE"
CALIBRATION_ENV = "FOOTFALL_CALIBRATION_CLIP"
DEFAULT_CALIBRATION_CLIP = Path(__file__).resolve().parents[2] / "shared" / "assets" / "crosswalk-640x360.mp4"
EXPORT_DIRNAME = ".footfall-exports"
FORMAT_VERSION = "3"  # bump when the export recipe below changes (3: INT8 by quantise_openvino)


class BackendError(RuntimeError):
    pass


def installed(backend: str) -> bool:
    """Whether the runtime a backend needs is importable (without importing it)."""
    module = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}[backend]
    return importlib.util.find_spec(module) is not None


def pick_backend(requested: str, device: str = "cpu") -> str:
    """The backend ``requested`` means on ``device``: ``auto`` is PyTorch on a GPU; on a CPU OpenVINO
    (FP32 about as fast as ONNX Runtime, 1.3x PyTorch; the only one with INT8, 4x: ``bench/detector_cost.py``),
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


def calibration_digest(calibration: Path) -> str:
    """What an INT8 export's key records of its calibration: a clip's bytes, or a folder of frames'
    (``streams.calibration``, which keeps the digest once the frames are deleted)."""
    return folder_digest(calibration) if calibration.is_dir() else sha256_file(calibration)


def calibration_frames(clip: Path, n: int = CALIBRATION_FRAMES) -> list:
    """``n`` BGR frames spread over ``clip``: a video, or a folder of JPEGs (``streams.calibration``)."""
    import cv2

    if clip.is_dir():
        files = frame_files(clip)
        out = [cv2.imread(str(path)) for path in files[:: max(1, len(files) // n)][:n]]
        out = [image for image in out if image is not None]
    else:
        out = []
        cap = cv2.VideoCapture(str(clip))
        try:
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or n
            step, i = max(1, total // n), 0
            while len(out) < n:
                ok, image = cap.read()
                if not ok:
                    break
                if i % step == 0:
                    out.append(image)
                i += 1
        finally:
            cap.release()
    if not out:
        raise BackendError(f"no frame could be read from the calibration clip {clip}")
    return out


def model_input(image, imgsz: int = EXPORT_IMGSZ):
    """A BGR frame as the exported model sees it at ``imgsz``: Ultralytics' letterbox to the minimal
    rectangle (as for a dynamic model at inference), RGB, NCHW, 0..1."""
    import numpy as np
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox(new_shape=(imgsz, imgsz), auto=True, stride=32)(image=image)
    return np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0


def head_scope(model) -> list[str]:
    """The detection head's operations (box decoding, DFL, the class sigmoid), which stay in floating
    point: quantising them moves the boxes themselves (as Ultralytics' own INT8 export does)."""
    ops = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    head = sigmoids[-1].split("/", 1)[0]
    return [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))
    ]


def quantise_openvino(fp32: Path, calibration: Path, out_dir: Path, imgsz: int = EXPORT_IMGSZ) -> Path:
    """INT8 from an FP32 OpenVINO export (a ``*_openvino_model`` folder), with NNCF.

    Ultralytics' ``quantize=8`` calibrates on a shuffled dataset (the order random per process) with
    NNCF's fast bias correction on the first 100 frames, and letterboxes to a square: two exports of
    the same frames differed by a crossing in 74, and were a crossing worse than FP32. Here the frames
    are in order, shaped as at inference, and bias correction is the full one: pooled counting accuracy
    equal to FP32's (``bench/accuracy.py``), the same model every time."""
    import nncf
    import openvino as ov

    xml = next(fp32.glob("*.xml"))
    model = ov.Core().read_model(str(xml))
    data = [model_input(image, imgsz) for image in calibration_frames(calibration)]
    quantised = nncf.quantize(
        model,
        nncf.Dataset(data),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(data),
        fast_bias_correction=False,
        ignored_scope=nncf.IgnoredScope(names=head_scope(model)),
    )
    out = out_dir / fp32.name.replace("_openvino_model", "_int8_openvino_model")
    out.mkdir()
    ov.save_model(quantised, str(out / xml.name), compress_to_fp16=False)
    shutil.copyfile(fp32 / "metadata.yaml", out / "metadata.yaml")
    return out


def ultralytics_export(weights: Path, spec: ExportSpec, out_dir: Path, calibration: Path | None) -> Path:
    """Export ``weights`` (a copy inside ``out_dir``) with Ultralytics; INT8 then quantises the FP32
    export (:func:`quantise_openvino`). Returns the exported path."""
    from ultralytics import YOLO

    if spec.precision == "int8" and calibration is None:
        raise BackendError("INT8 needs a calibration clip (FOOTFALL_CALIBRATION_CLIP)")
    local = out_dir / weights.name
    shutil.copyfile(weights, local)
    model = YOLO(str(local))
    kwargs: dict = {"format": spec.format, "imgsz": spec.imgsz, "dynamic": spec.dynamic, "device": "cpu"}
    if spec.format == "onnx":
        kwargs["simplify"] = True
    exported = Path(model.export(**kwargs))
    local.unlink(missing_ok=True)
    if spec.precision == "int8":
        if spec.format != "openvino":
            raise BackendError(f"INT8 is available with {', '.join(INT8_BACKENDS)} only")
        return quantise_openvino(exported, calibration, out_dir, spec.imgsz)
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
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}  # one per entry: a long export blocks only its own

    def root_for(self, weights: Path) -> Path:
        return self.root or default_cache_root(weights)

    def cached(self, weights: str | Path, spec: ExportSpec, calibration: Path | None = None) -> bool:
        return _exported_in(self.folder(Path(weights), spec, calibration)) is not None

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
            parts.append(calibration_digest(calibration))
        return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]

    def folder(self, weights: Path, spec: ExportSpec, calibration: Path | None = None) -> Path:
        return (
            self.root_for(weights)
            / f"{weights.stem}-{spec.format}-{spec.precision}-{self.key(weights, spec, calibration)}"
        )

    def get(self, weights: str | Path, spec: ExportSpec, calibration: Path | None = None) -> Path:
        """The exported model for ``weights`` and ``spec``: from the cache, else exported now."""
        weights = Path(weights)
        if spec.precision == "int8" and calibration is None:
            calibration = calibration_clip()
            if calibration is None:
                raise BackendError(
                    f"INT8 needs a calibration clip: set {CALIBRATION_ENV} (none at {DEFAULT_CALIBRATION_CLIP})"
                )
        final = self.folder(weights, spec, calibration)
        with self._guard:
            lock = self._locks.setdefault(final, threading.Lock())
        with lock:
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


@dataclass
class SelfCalibration:
    """INT8 for one (weights, backend) calibrated on the grabber's own frames: collecting, exporting
    in ``thread``, then ``engine`` (or ``failed``: FP32 for the rest of the process)."""

    sampler: FrameSampler
    thread: threading.Thread | None = None
    engine: Engine | None = None
    failed: bool = False


class Engines:
    """Per (weights, backend, precision): the exported, loaded model, made once. A failure falls
    back to PyTorch FP32 with one warning and is remembered, so it is not tried again.

    INT8 without a calibration clip calibrates on the frames the detector is given
    (:meth:`offer`; ``streams.calibration``) and runs FP32 until the INT8 model is loaded."""

    def __init__(
        self,
        cache: ExportCache | None = None,
        threads: int | None = None,
        calibration: Path | None = None,
        calibration_frames: int = CALIBRATION_FRAMES,
    ) -> None:
        self.cache = cache or ExportCache()
        self.threads = threads
        self.calibration = calibration
        self.calibration_frames = calibration_frames
        self._engines: dict[tuple[str, str, str], Engine] = {}
        self._calibrating: dict[tuple[str, str], SelfCalibration] = {}

    def get(self, weights: str, backend: str, precision: str, torch_model) -> Engine:
        """``torch_model`` is the loaded ``.pt`` YOLO (the fallback and the torch backend)."""
        check_precision(precision)
        key = (weights, backend, precision)
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        if backend == "torch":
            if precision != "fp32":
                log.info("INT8 is available with %s only; PyTorch runs fp32", ", ".join(INT8_BACKENDS))
            engine = Engine(torch_model, "torch", "fp32", weights)
        elif not Path(weights).is_file():
            log.warning("%s backend needs a weights file, %s is not one; using PyTorch", backend, weights)
            engine = Engine(torch_model, "torch", "fp32", weights)
        else:
            if precision == "int8" and backend not in INT8_BACKENDS:
                log.info("INT8 is available with %s only; %s runs fp32", ", ".join(INT8_BACKENDS), backend)
                precision = "fp32"
            if precision == "int8" and self.calibration is None and calibration_clip() is None:
                calibrated = self._self_calibrated(weights, backend, torch_model)
                if calibrated is None:  # still collecting or exporting: FP32 meanwhile
                    return self.get(weights, backend, "fp32", torch_model)
                engine = calibrated
            else:
                engine = self._export_and_load(weights, backend, precision, torch_model)
        log.info("detector %s runs on %s %s (%s)", Path(weights).name, engine.backend, engine.precision, engine.path)
        self._engines[key] = engine
        return engine

    def offer(self, weights: str, backend: str, precision: str, images, boxes) -> None:
        """Frames just detected at FP32 and what was found in them, for a self-calibration that is
        collecting (nothing otherwise)."""
        job = self._calibrating.get((weights, backend)) if precision == "int8" else None
        if job is None or job.engine is not None or job.failed or job.thread is not None:
            return
        if job.sampler.offer(images, boxes):
            self._start_export(weights, backend, job)

    def _self_calibrated(self, weights: str, backend: str, torch_model) -> Engine | None:
        job = self._calibrating.get((weights, backend))
        if job is None:
            folder = self.cache.root_for(Path(weights)) / f"calibration-{sha256_file(weights)[:16]}"
            job = self._calibrating[(weights, backend)] = SelfCalibration(FrameSampler(folder, self.calibration_frames))
            spec = ExportSpec(backend, "int8")
            if job.sampler.done and self.cache.cached(weights, spec, folder):  # calibrated by an earlier run
                return self._export_and_load(weights, backend, "int8", torch_model, folder)
            if job.sampler.done:  # its export was removed from the cache: calibrate again
                job.sampler.reset()
            log.info(
                "INT8 for %s: no calibration clip (%s), so calibrating on this grabber's frames (%d of %d kept); "
                "fp32 until then",
                Path(weights).name,
                CALIBRATION_ENV,
                job.sampler.count,
                self.calibration_frames,
            )
            if job.sampler.ready:
                self._start_export(weights, backend, job)
        if job.failed:
            return self.get(weights, backend, "fp32", torch_model)
        return job.engine

    def _start_export(self, weights: str, backend: str, job: SelfCalibration) -> None:
        def run() -> None:
            try:
                path = self.cache.get(weights, ExportSpec(backend, "int8"), job.sampler.folder)
                engine = Engine(load_exported(path, backend, self.threads), backend, "int8", str(path))
                job.sampler.seal()
                job.engine = engine
                log.info("INT8 for %s calibrated on %d frames of this grabber", Path(weights).name, job.sampler.wanted)
            except Exception as exc:  # noqa: BLE001 - any failure: stay at fp32
                log.warning(
                    "%s int8 export/load failed for %s (%s: %s); staying at fp32",
                    backend,
                    weights,
                    type(exc).__name__,
                    str(exc)[:300],
                )
                job.failed = True

        job.thread = threading.Thread(target=run, name=f"int8-export-{Path(weights).stem}", daemon=True)
        job.thread.start()

    def _export_and_load(
        self, weights: str, backend: str, precision: str, torch_model, calibration: Path | None = None
    ) -> Engine:
        try:
            if not installed(backend):
                raise BackendError(f"{backend} runtime is not installed (pip install -e '.[fast]')")
            path = self.cache.get(weights, ExportSpec(backend, precision), calibration or self.calibration)
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
