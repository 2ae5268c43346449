"""The grabber's annotated MJPEG preview: refused when disabled, bounded frame rate, frames only
while watched, and nothing in it (headers, JSON, error messages, pictures) carries the stream URL,
the user name, the password or the name of its environment variable."""

from __future__ import annotations

import http.client
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from models.records import CameraConfig, CountingLine, FrameDetections, StreamSettings, Zone
from streams.preview import BOUNDARY, Preview, PreviewServer

SECRETS = ("rtsp://", "10.9.8.7", "camuser", "s3cret-pass", "CAM_PASSWORD", "stream1")


def camera() -> CameraConfig:
    return CameraConfig(
        camera_id="door-cam",
        name="Door",
        stream=StreamSettings(url="rtsp://10.9.8.7:554/stream1", username="camuser", credentials_ref="CAM_PASSWORD"),
        lines=[CountingLine(line_id="door", start=[320, 0], end=[320, 360], name="door")],
        zones=[Zone(zone_id="hall", polygon=[[10, 10], [200, 10], [200, 150]], capacity=3)],
    )


def frame(seq: int, x: float) -> FrameDetections:
    return FrameDetections(
        camera_id="door-cam", frame_seq=seq, captured_at=1_700_000_000 + seq / 10, frame_width=640, frame_height=360,
        boxes=[[x - 20, 100, x + 20, 220, 0.9]], model_name="m", model_version="1", inference_ms=5.0,
        published_at=1_700_000_000 + seq / 10,
    )  # fmt: skip


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "s3cret-pass")
    preview = Preview(max_fps=4.0, max_width=640)
    srv = PreviewServer(preview, "127.0.0.1", 0).start()
    yield srv
    srv.stop()


def get(srv: PreviewServer, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def test_a_disabled_preview_refuses_everything():
    srv = PreviewServer(Preview(), "127.0.0.1", 0, enabled=False).start()
    try:
        for path in ("/preview", "/preview?camera_id=door-cam", "/"):
            status, _, body = get(srv, path)
            assert status == 403 and b"disabled" in body
    finally:
        srv.stop()


def test_the_grabber_has_no_preview_unless_enabled():
    from core.settings import Settings
    from streams.__main__ import build_parser

    assert Settings().preview.enabled is False
    args = build_parser().parse_args(["run", "--config", "x.yaml"])
    assert args.preview is False


def test_the_stream_is_bounded_annotated_and_free_of_credentials(server):
    preview: Preview = server.preview
    cfg = camera()
    image = np.full((360, 640, 3), 80, np.uint8)
    preview.observe(cfg, image, frame(0, 100))  # unwatched: tracked, not rendered
    status, _, body = get(server, "/preview")
    assert status == 200 and json.loads(body) == {"cameras": ["door-cam"], "max_fps": 4.0}
    status, _, body = get(server, "/preview?camera_id=nope")
    assert status == 404

    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    conn.request("GET", "/preview?camera_id=door-cam")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    headers = "\n".join(f"{k}: {v}" for k, v in r.getheaders())
    deadline = time.monotonic() + 5
    while not preview._watchers.get("door-cam") and time.monotonic() < deadline:
        time.sleep(0.01)
    # 3 s of frames at 20 fps, one person walking right across the line at x=320
    start = time.monotonic()
    for seq in range(1, 61):
        preview.observe(cfg, image, frame(seq, 100 + seq * 7))
        time.sleep(max(0.0, start + seq * 0.05 - time.monotonic()))
    elapsed = time.monotonic() - start
    data = b""
    r.fp.raw._sock.settimeout(1.0)  # noqa: SLF001 - read what arrived, then stop
    try:
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    conn.close()

    parts = [p for p in data.split(f"--{BOUNDARY}".encode()) if p.strip()]
    assert 2 <= len(parts) <= 4.0 * elapsed + 2, f"{len(parts)} frames in {elapsed:.1f} s at max 4 fps"
    jpeg = parts[-1].split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")
    picture = Image.open(io.BytesIO(jpeg)).convert("RGB")
    assert picture.size == (640, 360)
    assert max(picture.getpixel((320, 300))) > 150  # the line is drawn over the grey frame
    assert preview._cameras["door-cam"].counts["door"]["in"] + preview._cameras["door-cam"].counts["door"]["out"] == 1
    everything = (headers.encode() + data).lower()
    for secret in SECRETS:
        assert secret.lower().encode() not in everything, secret
