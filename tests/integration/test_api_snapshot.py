"""GET /api/v1/cameras/{id}/snapshot.jpg against the real API (database, Redis, Kafka): the picture
a grabber stored, its frame size in headers, the overlay with the camera's line at its coordinates
(a pixel test through the whole route), 404 without a picture, and the tenant wall: another
tenant's key gets 404 for a camera it cannot see, a viewer is enough to read."""

from __future__ import annotations

import io

import numpy as np
import pytest
from api_helpers import api_env, bearer, cleanup_tenant, make_key
from PIL import Image

from api.overlay import LINE_COLOUR
from streams.snapshots import SnapshotPublisher, encode_jpeg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(stack, db, rds):
    with api_env(stack, db, rds) as e:
        yield e


def test_snapshot_plain_overlay_missing_and_tenant_checked(env, db, rds):
    camera = env.camera_id()
    line = {"line_id": "door", "start": [200, 500], "end": [1000, 500], "name": "Door"}
    body = {"tenant": env.tenant, "lines": [line], "zones": []}
    assert env.client.put(f"/api/v1/cameras/{camera}", json=body).status_code == 201
    viewer = make_key(db, env.tenant, "viewer")
    other_tenant = f"{env.tenant}-b"
    stranger = make_key(db, other_tenant, "admin")
    try:
        url = f"/api/v1/cameras/{camera}/snapshot.jpg"
        r = env.client.get(url, headers=bearer(viewer))
        assert r.status_code == 404 and "no snapshot" in r.json()["detail"]

        frame = np.full((720, 1280, 3), 90, np.uint8)  # what a grabber would store for a 1280x720 camera
        pub = SnapshotPublisher(rds, env.prefix, interval_s=1, max_width=640, ttl_s=60)
        assert pub.offer(camera, lambda: frame, taken_at=1_700_000_000.0)
        assert 0 < rds.ttl(f"{env.prefix}:snapshot:{camera}") <= 60

        r = env.client.get(url, headers=bearer(viewer))
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert (r.headers["x-frame-width"], r.headers["x-frame-height"]) == ("1280", "720")
        assert r.headers["x-taken-at"] == "1700000000.0"
        assert r.content == encode_jpeg(frame, 640, 75)
        assert "no-store" in r.headers["cache-control"]

        r = env.client.get(url, params={"overlay": "true"}, headers=bearer(viewer))
        assert r.status_code == 200
        px = Image.open(io.BytesIO(r.content)).convert("RGB").load()
        # frame (200..1000, 500) is picture (100..500, 250)
        for x in (120, 250, 400, 480):
            assert all(abs(a - b) <= 60 for a, b in zip(px[x, 250], LINE_COLOUR, strict=True)), (x, px[x, 250])
        assert all(abs(a - 90) <= 25 for a in px[300, 330])  # elsewhere the picture is untouched

        # another tenant cannot see the camera, nor tell it from a missing one
        r = env.client.get(url, headers=bearer(stranger))
        assert r.status_code == 404 and "unknown camera" in r.json()["detail"]
    finally:
        cleanup_tenant(db, other_tenant)


def test_a_picture_on_request_is_taken_at_the_next_frame(env, db, rds):
    import time

    camera = env.camera_id()
    assert env.client.put(f"/api/v1/cameras/{camera}", json={"tenant": env.tenant, "lines": []}).status_code == 201
    viewer = bearer(make_key(db, env.tenant, "viewer"))
    pub = SnapshotPublisher(rds, env.prefix, interval_s=3600, max_width=64, ttl_s=60)  # not due again for an hour
    frame = np.zeros((36, 64, 3), np.uint8)
    assert pub.offer(camera, lambda: frame, taken_at=1_700_000_000.0)
    assert not pub.offer(camera, lambda: frame, taken_at=1_700_000_001.0)
    r = env.client.post(f"/api/v1/cameras/{camera}/snapshot", headers=viewer)
    assert r.status_code == 202 and r.json()["requested"] is True
    time.sleep(1.05)  # the publisher looks for requests once a second
    assert pub.offer(camera, lambda: frame, taken_at=1_700_000_002.0)  # taken, whatever the interval
    time.sleep(1.05)
    assert not pub.offer(camera, lambda: frame, taken_at=1_700_000_003.0)  # the request was consumed
    r = env.client.get(f"/api/v1/cameras/{camera}/snapshot.jpg", headers=viewer)
    assert r.status_code == 200 and float(r.headers["X-Taken-At"]) == 1_700_000_002.0
    assert env.client.post(f"/api/v1/cameras/{env.tenant}-nope/snapshot", headers=viewer).status_code == 404
