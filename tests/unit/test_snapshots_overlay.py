"""Camera snapshots: the publisher's pacing and what it stores, the simulator's picture, and the
overlay the API draws (a pixel test: a line at known frame coordinates appears there on a
downscaled snapshot, with its arrow on the ``in`` side)."""

from __future__ import annotations

import doctest
import importlib
import io

import numpy as np
import pytest
from PIL import Image

from api.overlay import ARROW_COLOUR, LINE_COLOUR, ZONE_COLOUR, draw_overlay
from streams.snapshots import FakeRedis, SnapshotPublisher, encode_jpeg, render_scene, snapshot_key


def grey_jpeg(width: int = 640, height: int = 360) -> bytes:
    return encode_jpeg(np.full((height, width, 3), 90, np.uint8), max_width=width, quality=90)


def near(pixel, colour, tol: int = 60) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, colour, strict=True))


def test_the_publisher_stores_a_downscaled_picture_with_its_frame_size_and_an_expiry():
    redis = FakeRedis()
    pub = SnapshotPublisher(redis, "pre", interval_s=2.0, max_width=320, ttl_s=30)
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert pub.offer("cam", lambda: frame, taken_at=10.0)
    assert not pub.offer("cam", lambda: frame, taken_at=11.0)  # not due
    assert pub.offer("cam", lambda: frame, taken_at=12.0)
    stored = redis.data[snapshot_key("pre", "cam")]
    assert (stored["frame_width"], stored["frame_height"], stored["taken_at"]) == (1280, 720, 12.0)
    assert Image.open(io.BytesIO(stored["jpeg"])).size == (320, 180)
    assert redis.ttl[snapshot_key("pre", "cam")] == 30
    assert pub.published == 2


def test_a_publisher_with_no_interval_stores_nothing_and_renders_nothing():
    pub = SnapshotPublisher(FakeRedis(), "pre", interval_s=0)
    assert not pub.offer("cam", lambda: (_ for _ in ()).throw(AssertionError("rendered")), taken_at=1.0)


def test_redis_errors_do_not_stop_the_caller():
    class Down(FakeRedis):
        def execute(self) -> None:
            raise ConnectionError("refused")

    assert not SnapshotPublisher(Down(), "pre", interval_s=1).offer("cam", lambda: np.zeros((4, 4, 3), np.uint8), 1.0)


def test_the_simulated_scene_draws_people_where_their_boxes_are():
    empty = render_scene(1280, 720, 100, [])
    scene = render_scene(1280, 720, 100, [[600, 300, 660, 480, 0.9]])
    assert scene.shape == (720, 1280, 3)
    assert (scene[400, 630] != empty[400, 630]).any()  # the body
    assert (scene[600, 200] == empty[600, 200]).all()  # the floor elsewhere


def test_a_line_at_known_coordinates_is_drawn_there_scaled_to_the_snapshot():
    # frame 1280x720, snapshot 640x360: frame (200, 500) -> (400, 500) is picture (100, 250) -> (200, 250)
    camera = {
        "lines": [{"line_id": "door", "name": "door", "start": [200, 500], "end": [400, 500]}],
        "zones": [{"zone_id": "z", "name": "queue", "capacity": 5, "polygon": [[800, 100], [1200, 100], [1200, 300]]}],
    }
    out = Image.open(io.BytesIO(draw_overlay(grey_jpeg(), (1280, 720), camera, {"door": {"in": 3, "out": 1}})))
    assert out.size == (640, 360)
    px = out.convert("RGB").load()
    for x in (110, 130, 170, 190):
        assert near(px[x, 250], LINE_COLOUR), (x, px[x, 250])
    assert not near(px[150, 300], LINE_COLOUR)  # well off the line
    # the arrow: drawn left to right, "in" is below it on screen
    assert near(px[150, 262], ARROW_COLOUR), px[150, 262]
    assert not near(px[150, 238], ARROW_COLOUR)
    # the zone's top edge, frame y=100 -> picture y=50
    assert near(px[550, 50], ZONE_COLOUR), px[550, 50]


def test_without_lines_or_zones_the_picture_is_unchanged_in_size():
    out = Image.open(io.BytesIO(draw_overlay(grey_jpeg(320, 180), (1280, 720), {"lines": [], "zones": []})))
    assert out.size == (320, 180)


@pytest.mark.parametrize("name", ["streams.snapshots", "api.overlay"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
