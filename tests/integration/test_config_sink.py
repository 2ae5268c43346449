"""The config sink's database side: a config from the topic lands in the reference tables, an older
one does not undo a newer one, a tombstone deletes the camera. (The agent around it runs in the
end-to-end main-job test.)"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from agents.config_sink import apply
from models.records import CameraConfig, CountingLine, Zone

pytestmark = pytest.mark.integration


def config(camera_id: str, updated_at: float, line_x: float = 100.0) -> CameraConfig:
    return CameraConfig(
        camera_id=camera_id,
        name="config sink test",
        groups=["test-config-sink"],
        lines=[CountingLine(line_id="door", start=[line_x, 0.0], end=[line_x, 480.0])],
        zones=[Zone(zone_id="hall", polygon=[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]], capacity=5)],
        updated_at=updated_at,
    )


def test_config_from_topic_is_stored_idempotently_and_deleted_by_tombstone(pg):
    cam = f"test-cfg-{uuid.uuid4().hex[:10]}"
    now = time.time()
    try:
        assert asyncio.run(apply(config(cam, now))) == "saved"
        assert asyncio.run(apply(config(cam, now))) == "saved"  # a replay rewrites the same rows
        assert pg.execute("SELECT count(*) FROM cameras WHERE camera_id = %s", (cam,)).fetchone()[0] == 1
        row = pg.execute("SELECT start_x FROM counting_lines WHERE camera_id = %s", (cam,)).fetchone()
        assert row[0] == 100.0
        assert pg.execute("SELECT capacity FROM zones WHERE camera_id = %s", (cam,)).fetchone()[0] == 5

        assert asyncio.run(apply(config(cam, now + 10, line_x=200.0))) == "saved"
        assert asyncio.run(apply(config(cam, now + 5, line_x=300.0))) == "older"
        row = pg.execute("SELECT start_x FROM counting_lines WHERE camera_id = %s", (cam,)).fetchone()
        assert row[0] == 200.0

        assert asyncio.run(apply(cam)) == "deleted"
        assert pg.execute("SELECT count(*) FROM cameras WHERE camera_id = %s", (cam,)).fetchone()[0] == 0
        assert asyncio.run(apply(cam)) == "absent"
    finally:
        pg.execute("DELETE FROM cameras WHERE camera_id = %s", (cam,))
