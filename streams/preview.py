"""The grabber's annotated preview: an opt-in MJPEG stream per camera, to watch a crossing being counted.

Off by default. ``FOOTFALL_PREVIEW__ENABLED=true`` (or ``python -m streams run --preview``) starts
an HTTP server on ``preview.host:preview.port`` (127.0.0.1:9110) with

    GET /preview                    the camera ids this grabber runs (JSON)
    GET /preview?camera_id=<id>     multipart/x-mixed-replace MJPEG of that camera

Each frame shows the detections (boxes), the tracks (ids, trails of their feet), the camera's lines
(with the ``in`` arrow) and zones, and the counts this preview made itself since it started (it runs
the same counting core as the workers, on the frames this grabber sees; the workers' counts are
the ones that are stored). Frames are rendered at most ``max_fps`` per camera (bounded to
0.2..15, however many viewers), only while someone watches, and scaled to at most ``max_width``.

What it never shows: the stream URL, the user name, the password or the name of its environment
variable. The pictures carry drawn pixels only; the JSON and the error messages name camera ids.
A server built with ``enabled=False`` refuses every request (403).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from numpy.typing import NDArray

from core.camera import CameraState, process_frame
from core.counting import Scene
from models.records import CameraConfig, FrameDetections

log = logging.getLogger(__name__)
BOUNDARY = "footfall-preview-frame"
TRAIL = 30  # points of a track's trail


class _Camera:
    def __init__(self, cfg: CameraConfig) -> None:
        self.cfg = cfg
        self.scene = Scene.from_config(lines=cfg.lines, zones=cfg.zones)
        self.state = CameraState()
        self.trails: dict[int, deque[tuple[float, float]]] = {}
        self.counts: dict[str, dict[str, int]] = {line.line_id: {"in": 0, "out": 0} for line in cfg.lines}
        self.occupancy: dict[str, int] = {}
        self.jpeg: bytes | None = None
        self.version = 0
        self.rendered_at = 0.0


class Preview:
    """Keeps a small tracker per camera and the newest annotated JPEG. Thread-safe: the grabber's
    loop calls :meth:`observe`, the server's threads :meth:`next_frame`."""

    def __init__(self, max_fps: float = 5.0, max_width: int = 960, quality: int = 70) -> None:
        self.max_fps = min(max(float(max_fps), 0.2), 15.0)
        self.max_width = max_width
        self.quality = quality
        self._cameras: dict[str, _Camera] = {}
        self._watchers: dict[str, int] = {}
        self._cond = threading.Condition()

    def camera_ids(self) -> list[str]:
        with self._cond:
            return sorted(self._cameras)

    def observe(self, cfg: CameraConfig, bgr: NDArray[np.uint8], record: FrameDetections) -> None:
        """Track and count the frame (always: the tracks must not skip frames); render it when
        someone watches the camera and the last picture is older than 1 / max_fps."""
        cid = cfg.camera_id
        with self._cond:
            cam = self._cameras.get(cid)
            if cam is None or cam.cfg is not cfg:
                if cam is None or _geometry(cam.cfg) != _geometry(cfg):
                    cam = _Camera(cfg)
                else:
                    cam.cfg = cfg
                self._cameras[cid] = cam
            watched = self._watchers.get(cid, 0) > 0
        result = process_frame(cam.state, record, cam.scene)
        cam.state = result.state
        for c in result.crossings:
            cam.counts.setdefault(c.line_id, {"in": 0, "out": 0})[c.direction] += 1
        for o in result.occupancy:
            cam.occupancy[o.zone_id] = int(o.count)
        live = set()
        for t in cam.state.tracker.view():
            live.add(t.track_id)
            if t.status != "tentative":
                cam.trails.setdefault(t.track_id, deque(maxlen=TRAIL)).append(t.anchor)
        for tid in [t for t in cam.trails if t not in live]:
            del cam.trails[tid]
        now = time.monotonic()
        if not watched or now - cam.rendered_at < 1.0 / self.max_fps:
            return
        jpeg = render(cam, bgr[:, :, ::-1], record.boxes, self.max_width, self.quality)
        with self._cond:
            cam.jpeg, cam.rendered_at = jpeg, now
            cam.version += 1
            self._cond.notify_all()

    def forget(self, camera_id: str) -> None:
        with self._cond:
            self._cameras.pop(camera_id, None)
            self._cond.notify_all()

    def watch(self, camera_id: str, delta: int) -> None:
        with self._cond:
            self._watchers[camera_id] = max(0, self._watchers.get(camera_id, 0) + delta)

    def next_frame(self, camera_id: str, after: int, timeout_s: float) -> tuple[bytes, int] | None:
        """The camera's newest picture newer than version ``after`` (None: none within the timeout,
        or the camera went away)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                cam = self._cameras.get(camera_id)
                if cam is None:
                    return None
                if cam.jpeg is not None and cam.version > after:
                    return cam.jpeg, cam.version
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


def _geometry(cfg: CameraConfig) -> list[bytes]:
    return [item.to_json() for item in (*cfg.lines, *cfg.zones)]


def _in_normal(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Unit normal of a -> b towards the ``in`` side (its right-hand side on screen)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = float(np.hypot(dx, dy)) or 1.0
    return (-dy / n, dx / n)


def render(cam: _Camera, rgb: NDArray[np.uint8], boxes: Any, max_width: int, quality: int) -> bytes:
    """The frame with boxes, track ids, trails, lines (``in`` arrow, counts) and zones (occupancy)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    scale = 1.0
    if image.width > max_width:
        scale = max_width / image.width
        image = image.resize((max_width, max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image, "RGBA")
    font = ImageFont.load_default(size=max(11, round(image.width / 55)))
    w = max(2, round(image.width / 320))

    def p(x: float, y: float) -> tuple[float, float]:
        return (x * scale, y * scale)

    for zone in cam.cfg.zones:
        pts = [p(*pt) for pt in zone.polygon]
        n = cam.occupancy.get(zone.zone_id)
        full = zone.capacity is not None and n is not None and n >= zone.capacity
        colour = (255, 60, 60) if full else (0, 200, 255)
        draw.polygon(pts, fill=(*colour, 40), outline=colour)
        cap = f"/{zone.capacity}" if zone.capacity else ""
        draw.text(pts[0], f"{zone.name or zone.zone_id} {'?' if n is None else n}{cap}", fill=colour, font=font)
    for line in cam.cfg.lines:
        a, b = p(*line.start), p(*line.end)
        draw.line([a, b], fill=(255, 214, 0), width=w + 1)
        m = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        nx, ny = _in_normal(a, b)
        size = 12 * w
        draw.line([m, (m[0] + nx * size, m[1] + ny * size)], fill=(255, 120, 0), width=w + 1)
        c = cam.counts.get(line.line_id, {"in": 0, "out": 0})
        label = f"{line.name or line.line_id} in {c['in']} out {c['out']}"
        draw.text((m[0] - nx * size, m[1] - ny * size), label, fill=(255, 214, 0), font=font)
    for row in np.asarray(boxes, dtype=float).reshape(-1, 5):
        draw.rectangle([*p(row[0], row[1]), *p(row[2], row[3])], outline=(120, 255, 120), width=w)
    for t in cam.state.tracker.view():
        trail = [p(*pt) for pt in cam.trails.get(t.track_id, ())]
        if len(trail) > 1:
            draw.line(trail, fill=(255, 0, 200), width=w)
        if t.status != "tentative":
            x1, y1 = p(t.box[0], t.box[1])
            draw.text((x1 + 2, y1 - 14 * w / 2), f"#{t.track_id}", fill=(255, 0, 200), font=font)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


class PreviewServer(ThreadingHTTPServer):
    """``serve_forever`` in a daemon thread (:meth:`start`); ``enabled=False`` refuses everything."""

    daemon_threads = True

    def __init__(self, preview: Preview, host: str, port: int, enabled: bool = True) -> None:
        self.preview = preview
        self.enabled = enabled
        self.stopping = threading.Event()
        super().__init__((host, port), _Handler)

    def start(self) -> PreviewServer:
        threading.Thread(target=self.serve_forever, name="preview", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "footfall-preview"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("preview: " + format, *args)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if not self.server.enabled:
            self._answer(403, {"detail": "the preview is disabled (FOOTFALL_PREVIEW__ENABLED=true enables it)"})
            return
        url = urlsplit(self.path)
        if url.path != "/preview":
            self._answer(404, {"detail": "not found: GET /preview[?camera_id=<id>]"})
            return
        preview = self.server.preview
        camera_id = (parse_qs(url.query).get("camera_id") or [None])[0]
        if camera_id is None:
            self._answer(200, {"cameras": preview.camera_ids(), "max_fps": preview.max_fps})
            return
        if camera_id not in preview.camera_ids():
            self._answer(404, {"detail": "camera_id: this grabber runs no such camera (GET /preview lists them)"})
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        preview.watch(camera_id, +1)
        version = 0
        try:
            while not self.server.stopping.is_set():
                got = preview.next_frame(camera_id, version, timeout_s=5.0)
                if got is None:
                    if camera_id not in preview.camera_ids():
                        return
                    continue
                jpeg, version = got
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            preview.watch(camera_id, -1)
