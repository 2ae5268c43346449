"""Camera sources: RTSP, HTTP (MJPEG, MPEG-TS, files over HTTP), local files and devices, all read
through OpenCV behind one :class:`Source` interface.

A ``Source`` is one connection: :meth:`Source.open` connects (bounded by ``timeout_s``),
:meth:`Source.grab` reads and decodes the next frame (bounded by ``timeout_s`` too, so a stalled
stream returns False instead of blocking), :meth:`Source.retrieve` converts the grabbed frame to a
BGR image only for the frames that are wanted. Reconnecting is the caller's business
(:mod:`streams.capture`).

Credentials: the authenticated URL is built inside :meth:`OpenCVSource.open` from the username in
the settings and the password in the environment, handed to OpenCV and dropped; it is never stored
on the object, logged or put into an exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from models.records import StreamSettings
from streams.redact import MissingCredentials, authenticated_url, password_from_env, redact_url

log = logging.getLogger(__name__)

# RTSP over TCP: UDP through NATs and firewalls loses packets and whole streams. The variable is read
# by OpenCV at every open; options that do not apply to a protocol are ignored by FFmpeg.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
# OpenCV's own warnings go to stderr unfiltered; keep them to errors.
with contextlib.suppress(AttributeError):  # older OpenCV builds lack it
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class SourceError(Exception):
    """A source could not be opened or read. Messages are credential-free."""


class Source(ABC):
    """One connection to a camera stream."""

    camera_id: str
    live: bool  # False for files: the end of a file is not a failure

    @abstractmethod
    def open(self) -> None:
        """Connect; raises :class:`SourceError` on failure."""

    @abstractmethod
    def grab(self) -> bool:
        """Read and decode the next frame; False when the stream ended, failed or stalled."""

    @abstractmethod
    def retrieve(self) -> np.ndarray | None:
        """The last grabbed frame as a BGR image, or None if it cannot be decoded."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def nominal_fps(self) -> float | None:
        """The fps the stream announces, when sane (1..240)."""
        return None

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return None


def file_path(url: str) -> str:
    """A local path from ``file://...`` or a plain path."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return parts.path
    return url


def device_index(url: str) -> int | str:
    """``"0"`` -> 0; ``/dev/video2`` stays a path (OpenCV's V4L2 backend opens it)."""
    text = url.removeprefix("device://")
    return int(text) if text.isdigit() else text


class OpenCVSource(Source):
    """Any stream OpenCV's FFmpeg (or V4L2, for devices) backend can read."""

    def __init__(self, camera_id: str, stream: StreamSettings) -> None:
        self.camera_id = camera_id
        self.protocol = stream.protocol
        self.url = stream.url  # never holds a password (StreamSettings refuses one)
        self.username = stream.username
        self.credentials_ref = stream.credentials_ref
        self.timeout_s = stream.timeout_s
        self.live = stream.protocol != "file"
        self._cap: cv2.VideoCapture | None = None

    def __repr__(self) -> str:
        return f"OpenCVSource(camera_id={self.camera_id!r}, protocol={self.protocol!r}, url={self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL as it may be shown: user name included, password never."""
        if self.protocol in ("rtsp", "http") and (self.username or self.credentials_ref):
            return redact_url(authenticated_url(self.url, self.username, "***" if self.credentials_ref else None))
        return redact_url(self.url)

    def open(self) -> None:
        self.close()
        timeout_ms = int(self.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        if self.protocol == "device":
            cap = cv2.VideoCapture(device_index(self.url), cv2.CAP_ANY)
        elif self.protocol == "file":
            path = file_path(self.url)
            if not Path(path).is_file():
                raise SourceError(f"{self.camera_id}: file not found: {path}")
            cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
        else:
            try:
                password = password_from_env(self.credentials_ref)
            except MissingCredentials as exc:
                raise SourceError(f"{self.camera_id}: {exc}") from None
            # Explicit FFmpeg backend: no fallback to the image-sequence backend, which echoes the URL.
            cap = cv2.VideoCapture(authenticated_url(self.url, self.username, password), cv2.CAP_FFMPEG, params)
            del password
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.camera_id}: could not open {self.display_url} within {self.timeout_s:g} s")
        self._cap = cap

    def grab(self) -> bool:
        return self._cap is not None and bool(self._cap.grab())

    def retrieve(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, image = self._cap.retrieve()
        if not ok or image is None or image.size == 0:
            return None
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def nominal_fps(self) -> float | None:
        if self._cap is None:
            return None
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        return fps if 1.0 <= fps <= 240.0 else None

    @property
    def frame_size(self) -> tuple[int, int] | None:
        if self._cap is None:
            return None
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (w, h) if w > 0 and h > 0 else None


def make_source(camera_id: str, stream: StreamSettings) -> Source:
    """The source for a camera's stream settings."""
    return OpenCVSource(camera_id, stream)
