"""HTTP sources through the same OpenCV path: MJPEG (multipart) and MPEG-TS served by ffmpeg's
one-client HTTP server (``-listen 1``), and a file given as a ``file://`` URL. No services needed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grabber_helpers as helpers
import pytest
from grabber_helpers import free_port

from models.records import StreamSettings

clip = helpers.clip  # fixture

pytestmark = pytest.mark.footage


def serve_http(clip: Path, fmt: list[str], path: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/{path}"
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-an", *fmt, "-listen", "1", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, url


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        (["-c:v", "mjpeg", "-q:v", "6", "-f", "mpjpeg"], "cam.mjpg"),
        (["-c:v", "copy", "-f", "mpegts"], "cam.ts"),
    ],
    ids=["mjpeg", "mpegts"],
)
def test_http_stream_delivers_frames(clip: Path, fmt: list[str], path: str) -> None:
    from streams.sources import OpenCVSource

    proc, url = serve_http(clip, fmt, path)
    try:
        src = OpenCVSource("http-cam", StreamSettings(protocol="http", url=url, timeout_s=5))
        src.open()
        frames = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5 and src.grab():
            frames += 1
        image = src.retrieve()
        src.close()
    finally:
        proc.kill()
        proc.wait(5)
    assert frames >= 15
    assert image is not None and image.shape == (360, 640, 3)


def test_file_url(clip: Path) -> None:
    from streams.sources import OpenCVSource, SourceError

    src = OpenCVSource("f", StreamSettings(protocol="file", url=f"file://{clip}"))
    src.open()
    assert src.grab() and src.retrieve().shape == (360, 640, 3)
    src.close()
    with pytest.raises(SourceError, match="file not found"):
        OpenCVSource("f", StreamSettings(protocol="file", url="/nonexistent/clip.mp4")).open()
