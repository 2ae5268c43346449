"""Live push: crossings and occupancy -> Redis pub/sub (and the latest occupancy per camera).

Registered only when ``settings.worker.push`` is true. Four short agents:

- ``push_camera_groups``: the compacted camera-config topic -> table ``push-camera-groups``
  (camera_id -> its groups), so events can also go to their groups' channels; a tombstone
  removes the camera. The table is changelogged, so it survives a restart without re-reading the
  whole config topic, and it is co-partitioned with the event topics (all keyed by camera_id).
- ``push_crossings``: every crossing -> ``<prefix>:live:camera:<id>`` and each group's channel.
- ``push_occupancy``: every occupancy sample -> the camera's snapshot hash (with TTL); a change of
  count is also published.
- ``push_alerts``: every alert change -> the alerts channel and the camera's and groups' channels.

The Redis work is done by the plain functions in ``api.live`` (tested without Faust). Malformed
messages are logged and skipped: the sinks own the dead-letter topic for these topics, and a
live view must never stall on a bad record. A Redis outage is logged once per burst and the event
is dropped: live push is best effort, the database remains the record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agents.app import (
    PARTITIONS,
    PREFIX,
    alerts_topic,
    app,
    camera_config_topic,
    crossings_topic,
    occupancy_topic,
    settings,
)
from api.live import publish_alert, publish_crossing, publish_occupancy
from models.base import SchemaError, parse
from models.records import Alert, CameraConfig, CrossingEvent, OccupancySample

log = logging.getLogger(__name__)

_redis: Any = None
_last_redis_error = 0.0


def redis_client() -> Any:
    """One asyncio Redis client per worker process, created on first use (inside the event loop)."""
    global _redis
    if _redis is None:
        import redis.asyncio as aioredis

        _redis = aioredis.Redis.from_url(settings.redis.url.get_secret_value(), socket_timeout=5)
    return _redis


def _redis_failed(exc: Exception) -> None:
    global _last_redis_error
    now = time.monotonic()
    if now - _last_redis_error > 30:
        log.warning("live push: Redis unavailable, dropping live events (%s)", type(exc).__name__)
    _last_redis_error = now


def _parse(cls: type, raw: bytes | None, what: str) -> Any:
    try:
        return parse(cls, raw or b"")
    except SchemaError as exc:
        log.warning("live push: skipping malformed %s: %s", what, exc)
        return None


def groups_of(raw_config: bytes | None) -> list[str] | None:
    """Groups of a camera-config message; None for a tombstone or a malformed record."""
    if raw_config is None:
        return None
    cfg = _parse(CameraConfig, raw_config, "camera config")
    return None if cfg is None else sorted(set(cfg.groups))


if settings.worker.push:
    camera_groups = app.Table("push-camera-groups", default=None, partitions=PARTITIONS)

    @app.agent(camera_config_topic)
    async def push_camera_groups(stream):
        async for event in stream.events():
            camera_id = event.key.decode("utf-8", "replace") if event.key else None
            if not camera_id:
                continue
            groups = groups_of(event.value)
            if groups is None and event.value is not None:
                continue  # malformed: keep what we had
            if groups is None:
                camera_groups.pop(camera_id, None)
            else:
                camera_groups[camera_id] = groups

    @app.agent(crossings_topic)
    async def push_crossings(stream):
        async for raw in stream:
            event = _parse(CrossingEvent, raw, "crossing")
            if event is None:
                continue
            try:
                await publish_crossing(redis_client(), PREFIX, event, camera_groups.get(event.camera_id) or ())
            except Exception as exc:  # redis.exceptions.RedisError, OSError: best effort
                _redis_failed(exc)

    @app.agent(occupancy_topic)
    async def push_occupancy(stream):
        async for raw in stream:
            sample = _parse(OccupancySample, raw, "occupancy sample")
            if sample is None:
                continue
            try:
                await publish_occupancy(redis_client(), PREFIX, sample, camera_groups.get(sample.camera_id) or ())
            except Exception as exc:
                _redis_failed(exc)

    @app.agent(alerts_topic)
    async def push_alerts(stream):
        async for raw in stream:
            if raw is None:
                continue
            alert = _parse(Alert, raw, "alert")
            if alert is None:
                continue
            # alerts are keyed by alert id, not camera: the camera's groups are not on this worker
            try:
                await publish_alert(redis_client(), PREFIX, alert)
            except Exception as exc:
                _redis_failed(exc)
