"""INT8 calibration frames taken from the cameras themselves.

INT8 needs a few hundred frames to calibrate on (``streams.backends``). Where no clip is given
(``FOOTFALL_CALIBRATION_CLIP``, or the development clip on a developer's machine), the grabber
calibrates on what its own cameras see, which is also what the quantised model will be asked about:
while a model's INT8 export is not ready the detector runs it at FP32 and offers each batch to a
:class:`FrameSampler`, which keeps at most one frame per ``every_s`` seconds, and only frames in which
FP32 found a person, shrunk to the export size and stored as JPEGs. With ``wanted`` frames the export
runs in a background thread and the detector switches to INT8 when it is loaded.

The frames are pictures of people: they stay on the grabber's disk, beside the export cache, only
until the export is cached; then they are deleted and a digest of them (:data:`DIGEST_FILE`) is kept,
which is all the export cache key needs for later starts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DIGEST_FILE = "calibrated.sha256"
PERSON_CONF = 0.25  # a frame is kept only if FP32 found someone at least this sure
EVERY_S = 1.0  # at most one frame per second (over all cameras), so that 300 frames span minutes
MAX_SIDE = 640  # the export's calibration size (streams.backends.EXPORT_IMGSZ): nothing larger is kept


def folder_digest(folder: Path) -> str:
    """The digest of a calibration: the recorded one once its frames are gone, else their bytes'."""
    recorded = folder / DIGEST_FILE
    if recorded.is_file():
        return recorded.read_text().strip()
    h = hashlib.sha256()
    for path in frame_files(folder):
        h.update(path.read_bytes())
    return h.hexdigest()


def frame_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg")) if folder.is_dir() else []


class FrameSampler:
    """Keeps calibration frames in ``folder`` until it has ``wanted`` of them.

    It continues an earlier run's collection, and says :attr:`done` once the folder holds a digest
    (the frames have been exported and deleted)."""

    def __init__(
        self,
        folder: Path,
        wanted: int,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.wanted = wanted
        self.every_s = EVERY_S if every_s is None else every_s
        self.clock = clock
        self._last: float | None = None
        self._count = len(frame_files(folder))
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    @property
    def ready(self) -> bool:
        return self._count >= self.wanted

    @property
    def done(self) -> bool:
        return (self.folder / DIGEST_FILE).is_file()

    def offer(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> bool:
        """Keep one of ``images`` (BGR) in which someone was found, if it is time; True once ready."""
        import cv2

        with self._lock:
            if self.ready or self.done:
                return self.ready
            now = self.clock()
            if self._last is not None and now - self._last < self.every_s:
                return False
            for image, found in zip(images, boxes, strict=True):
                if not len(found) or float(np.max(found[:, 4])) < PERSON_CONF:
                    continue
                h, w = image.shape[:2]
                scale = MAX_SIDE / max(h, w)
                if scale < 1.0:
                    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"{time.time_ns()}-{os.getpid()}.jpg"  # unique beside another grabber
                tmp = path.with_suffix(".tmp")
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                if not ok:
                    return False
                tmp.write_bytes(data.tobytes())
                tmp.replace(path)  # a killed grabber leaves whole frames only
                self._count += 1
                self._last = now
                if self._count % 50 == 0 or self.ready:
                    log.info("INT8 calibration: %d of %d frames kept in %s", self._count, self.wanted, self.folder)
                break
            return self.ready

    def seal(self) -> None:
        """After the export is cached: record the frames' digest and delete the frames."""
        digest = folder_digest(self.folder)
        (self.folder / DIGEST_FILE).write_text(digest + "\n")
        for path in frame_files(self.folder):
            path.unlink(missing_ok=True)

    def reset(self) -> None:
        """Start over (the export this calibration made is no longer in the cache)."""
        (self.folder / DIGEST_FILE).unlink(missing_ok=True)
        for path in frame_files(self.folder):
            path.unlink(missing_ok=True)
        self._count = 0
        self._last = None
