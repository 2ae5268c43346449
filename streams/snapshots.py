"""Camera snapshots: a downscaled JPEG of each camera, every few seconds, in Redis.

One Redis hash per camera, ``<topic prefix>:snapshot:<camera_id>``, with the fields

    jpeg          the JPEG bytes (at most ``max_width`` wide)
    frame_width   the width and height of the frame it was taken from (the pixel space of the
    frame_height  camera's lines and zones: the API scales them onto the picture)
    taken_at      capture time of that frame, epoch seconds

written with one ``HSET`` + ``EXPIRE`` (``ttl_s``): a camera that stops leaves no stale picture, and
Redis holds one picture per camera however long the fleet runs. The grabber offers every frame it
runs through the detector; the simulator offers a picture it renders of its scene (floor, walking
people as boxes: :func:`render_scene`). Pillow does the scaling and the encoding (no OpenCV, no
torch), so the simulator and the API stay light.

>>> pub = SnapshotPublisher(FakeRedis(), "demo", interval_s=5.0)
>>> pub.offer("cam-1", lambda: np.zeros((360, 640, 3), np.uint8), taken_at=100.0)
True
>>> pub.offer("cam-1", lambda: np.zeros((360, 640, 3), np.uint8), taken_at=102.0)  # not due yet
False
>>> sorted(pub.redis.data["demo:snapshot:cam-1"])
['frame_height', 'frame_width', 'jpeg', 'taken_at']

A picture can also be asked for: ``POST /api/v1/cameras/{id}/snapshot`` sets
``<prefix>:snapshot-request:<camera_id>`` (expiring), and the camera's next offered frame is taken
whatever the interval (the flag is looked at most once a second per camera, and consumed):

>>> asked = SnapshotPublisher(FakeRedis(), "demo", interval_s=5.0)
>>> asked.offer("cam-1", lambda: np.zeros((36, 64, 3), np.uint8), taken_at=100.0)
True
>>> asked.redis.set(request_key("demo", "cam-1"), 1, ex=30)
>>> asked.offer("cam-1", lambda: np.zeros((36, 64, 3), np.uint8), taken_at=101.0)  # not due, but asked for
True
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


def snapshot_key(prefix: str, camera_id: str) -> str:
    return f"{prefix}:snapshot:{camera_id}"


def request_key(prefix: str, camera_id: str) -> str:
    """Set (with an expiry) to ask the camera's grabber for a picture now."""
    return f"{prefix}:snapshot-request:{camera_id}"


REQUEST_CHECK_S = 1.0  # how often a publisher looks for a request, per camera


def encode_jpeg(rgb: NDArray[np.uint8], max_width: int = 640, quality: int = 75) -> bytes:
    """``rgb`` (H, W, 3) as a JPEG, scaled down to at most ``max_width`` wide (aspect kept)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=False)
    return out.getvalue()


class SnapshotPublisher:
    """Stores each camera's picture at most every ``interval_s`` (by the frames' capture clock).

    ``offer(camera_id, render, taken_at)`` calls ``render()`` (an RGB array of the full frame) only
    when the camera is due, so a grabber pays for the scaling and encoding once per interval, not per
    frame. Redis errors are logged (once a minute) and otherwise ignored: a picture is a convenience,
    counting goes on without it.
    """

    def __init__(
        self,
        redis: Any,
        prefix: str,
        interval_s: float = 5.0,
        max_width: int = 640,
        quality: int = 75,
        ttl_s: int = 300,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.interval_s = interval_s
        self.max_width = max_width
        self.quality = quality
        self.ttl_s = ttl_s
        self._last: dict[str, float] = {}
        self._checked: dict[str, float] = {}  # camera -> monotonic time of the last request check
        self._last_error_log = 0.0
        self.published = 0

    def due(self, camera_id: str, taken_at: float) -> bool:
        if self.interval_s <= 0:
            return False
        last = self._last.get(camera_id)
        if last is None or taken_at - last >= self.interval_s or taken_at < last:
            return True
        return self._requested(camera_id)

    def _requested(self, camera_id: str) -> bool:
        """Whether someone asked for a picture (consumes the request); at most once a second."""
        now = time.monotonic()
        if now - self._checked.get(camera_id, float("-inf")) < REQUEST_CHECK_S:
            return False
        self._checked[camera_id] = now
        try:
            return self.redis.getdel(request_key(self.prefix, camera_id)) is not None
        except Exception:  # Redis down: the periodic pictures will say so when they fail
            return False

    def offer(self, camera_id: str, render: Callable[[], NDArray[np.uint8]], taken_at: float) -> bool:
        """Store a new picture of the camera if one is due; True when one was stored."""
        if not self.due(camera_id, taken_at):
            return False
        self._last[camera_id] = taken_at
        rgb = render()
        height, width = rgb.shape[:2]
        jpeg = encode_jpeg(rgb, self.max_width, self.quality)
        return self.store(camera_id, jpeg, (int(width), int(height)), taken_at)

    def store(self, camera_id: str, jpeg: bytes, frame_size: tuple[int, int], taken_at: float) -> bool:
        key = snapshot_key(self.prefix, camera_id)
        fields = {"jpeg": jpeg, "frame_width": frame_size[0], "frame_height": frame_size[1], "taken_at": taken_at}
        try:
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl_s)
            pipe.execute()
        except Exception as exc:  # Redis down: no picture this time
            now = time.monotonic()
            if now - self._last_error_log > 60:
                log.warning("snapshot of %s not stored: %s: %s", camera_id, type(exc).__name__, exc)
                self._last_error_log = now
            return False
        self.published += 1
        return True

    def forget(self, camera_id: str) -> None:
        self._last.pop(camera_id, None)


def from_settings(settings: Any, redis_url: str | None = None, prefix: str | None = None) -> SnapshotPublisher | None:
    """A publisher for ``settings.snapshots`` (None when ``interval_s`` is 0)."""
    snap = settings.snapshots
    if snap.interval_s <= 0:
        return None
    import redis

    url = redis_url or settings.redis.url.get_secret_value()
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return SnapshotPublisher(
        client, prefix or settings.kafka.topic_prefix, snap.interval_s, snap.max_width, snap.quality, snap.ttl_s
    )


# --------------------------------------------------------------------------- the simulator's picture

_FLOOR_NEAR = np.array([150, 146, 136], dtype=np.float64)
_FLOOR_FAR = np.array([92, 96, 104], dtype=np.float64)
_WALL = np.array([58, 64, 76], dtype=np.uint8)
_TILE = np.array([120, 118, 110], dtype=np.float64)


def render_scene(
    width: int, height: int, horizon_y: float, boxes: Sequence[Sequence[float]], seed: int = 0
) -> NDArray[np.uint8]:
    """A synthetic picture of a simulated camera's view: a wall above ``horizon_y``, a tiled floor
    in perspective below it, and each detection box (``x1, y1, x2, y2[, conf]``) as a person: a
    body-coloured box with a head. Nearer people (lower feet) are drawn last, over farther ones.

    >>> img = render_scene(640, 360, 50, [[100, 100, 140, 220, 0.9]])
    >>> img.shape, img.dtype.name
    ((360, 640, 3), 'uint8')
    >>> bool((img[200, 120] != img[200, 400]).any())  # a person differs from the floor
    True
    """
    from PIL import Image, ImageDraw

    h0 = int(max(0, min(height - 1, horizon_y)))
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:h0] = _WALL
    rows = np.arange(h0, height, dtype=np.float64)
    frac = ((rows - h0) / max(1, height - h0))[:, None]
    img[h0:] = (_FLOOR_FAR + frac * (_FLOOR_NEAR - _FLOOR_FAR)).astype(np.uint8)[:, None, :]
    pil = Image.fromarray(img, "RGB")
    draw = ImageDraw.Draw(pil)
    # floor tiles: rows closer together towards the horizon, columns converging on a vanishing point
    vx = width / 2
    for i in range(1, 14):
        y = h0 + (height - h0) * (i / 13) ** 1.8
        draw.line([(0, y), (width, y)], fill=tuple(int(c) for c in _TILE), width=1)
    for i in range(-8, 9):
        draw.line([(vx + i * width / 16 * 0.35, h0), (vx + i * width / 8, height)], fill=(112, 110, 104), width=1)
    draw.rectangle([0, h0 - 3, width, h0], fill=(40, 44, 52))  # skirting board
    rng = np.random.default_rng(seed)
    for box in sorted(boxes, key=lambda b: b[3]):
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        if x2 - x1 < 2 or y2 - y1 < 4:
            continue
        shirt = tuple(int(c) for c in rng.integers(60, 220, size=3))
        head_r = (x2 - x1) * 0.28
        body_top = y1 + 2.2 * head_r
        draw.ellipse([x1 + 3, y2 - 4, x2 - 3, y2 + 4], fill=(70, 70, 66))  # shadow
        draw.rectangle([x1 + (x2 - x1) * 0.18, body_top + (y2 - body_top) * 0.55, x2 - (x2 - x1) * 0.18, y2],
                       fill=(44, 52, 70))  # fmt: skip
        draw.rounded_rectangle([x1, body_top, x2, body_top + (y2 - body_top) * 0.58], radius=max(1, head_r * 0.6),
                               fill=shirt)  # fmt: skip
        cx = (x1 + x2) / 2
        draw.ellipse([cx - head_r, y1, cx + head_r, y1 + 2 * head_r], fill=(224, 186, 150))
    return np.asarray(pil)


class FakeRedis:
    """A stand-in for ``redis.Redis`` in doctests and unit tests (hset, expire, pipeline, set, getdel)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.ttl: dict[str, int] = {}
        self.flags: dict[str, Any] = {}

    def pipeline(self) -> FakeRedis:
        return self

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self.data.setdefault(key, {}).update(mapping)

    def expire(self, key: str, seconds: int) -> None:
        self.ttl[key] = seconds

    def set(self, key: str, value: Any, ex: int | None = None) -> None:
        self.flags[key] = value

    def getdel(self, key: str) -> Any:
        return self.flags.pop(key, None)

    def execute(self) -> None:
        return None
