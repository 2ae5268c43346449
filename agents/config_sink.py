"""Config sink: the compacted camera-config topic -> the reference tables (cameras, lines, zones, groups).

The topic is the integration surface for camera configuration: the API writes the database and
then publishes, but the simulator, scripts and other tools publish to the topic only. This agent
keeps the database in step with the topic, so the API and Grafana know every camera the workers
count. Writes go through ``api.store.save_camera`` (one transaction, tenant/location rows first)
and are idempotent: replaying the topic rewrites the same rows. A stored stream password is never
touched (configs on the topic carry none). A tombstone (empty value) deletes the camera's row; its
history stays in the hypertables. A config older than the stored one (``updated_at``/``config_updated_at``) is skipped,
so a replay of the compacted topic cannot undo a newer edit made through the API.

Registered only when ``settings.worker.sinks``; acks are Faust's default (after the loop body), and
the body retries database outages forever (``agents.sinks`` policy), so nothing is skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime

import faust
import psycopg
from psycopg.rows import dict_row
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential_jitter

from agents.app import app, camera_config_topic, settings
from agents.sinks import dead_letter, is_transient
from api.store import KEEP, delete_camera, save_camera
from models.base import SchemaError, parse
from models.records import CameraConfig
from sql.roles import set_role

log = logging.getLogger(__name__)


async def apply(cfg_or_id: CameraConfig | str) -> str:
    """Write one config (or delete a camera for a tombstone); returns what was done."""
    # Its own short connection (configs are rare): api.store reads rows as dicts.
    url = settings.database.url.get_secret_value()
    async with await psycopg.AsyncConnection.connect(
        url, prepare_threshold=None, autocommit=True, row_factory=dict_row
    ) as conn:
        return await _apply(conn, cfg_or_id)


async def _apply(conn: psycopg.AsyncConnection, cfg_or_id: CameraConfig | str) -> str:
    async with conn.transaction():
        await conn.execute(set_role(settings.database.writer_role))
        if isinstance(cfg_or_id, str):
            return "deleted" if await delete_camera(conn, cfg_or_id) else "absent"
        cfg = cfg_or_id
        cur = await conn.execute("SELECT config_updated_at FROM cameras WHERE camera_id = %s", (cfg.camera_id,))
        row = await cur.fetchone()
        stored = _epoch(row["config_updated_at"]) if row else None
        if stored is not None and cfg.updated_at and stored > cfg.updated_at + 1e-3:  # timestamptz keeps µs
            return "older"
        await save_camera(conn, cfg, KEEP, None)
        return "saved"


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


async def config_sink(stream: faust.StreamT) -> None:
    async for event in stream.events():
        key = event.key.decode() if isinstance(event.key, bytes) else event.key
        try:
            target: CameraConfig | str = parse(CameraConfig, event.value) if event.value else key
        except SchemaError as exc:
            await dead_letter(camera_config_topic.get_topic_name(), event, str(exc))
            continue
        if not target:
            continue
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(initial=0.5, max=10.0),
            stop=stop_never,
            reraise=True,
            before_sleep=lambda state: log.warning("config sink: database not answering, retrying: %s", state.outcome),
        ):
            with attempt:
                done = await apply(target)
        log.info("camera config %s: %s", key, done)


if settings.worker.sinks:
    app.agent(camera_config_topic, name="footfall.sinks.camera-config")(config_sink)
