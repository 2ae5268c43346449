"""Live push through Redis: channel names, the publisher used by ``agents.push``, snapshots.

Any API process can serve any WebSocket/SSE client because events travel through Redis pub/sub,
not through the process that consumed them from Kafka:

    crossings / occupancy topics -> agents.push (Faust) -> PUBLISH <prefix>:live:camera:<id>
                                                          PUBLISH <prefix>:live:group:<group>
                                                          HSET    <prefix>:live:occupancy:<id>
    alerts topic                 -> agents.push (Faust) -> PUBLISH <prefix>:live:alerts
                                                          (and the alert's camera and groups)
    API process: SUBSCRIBE to the client's channels -> WebSocket / SSE frames

Every name starts with the Kafka topic prefix, so test runs with their own prefix never see the
main job's events. No FastAPI or Faust import here: the publisher is a plain async function over a
``redis.asyncio.Redis`` client, tested against a real Redis without a worker.

>>> camera_channel("footfall", "cam-1"), group_channel("footfall", "lobby")
('footfall:live:camera:cam-1', 'footfall:live:group:lobby')
>>> message_for_crossing(_demo_crossing())["type"]
'crossing'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from models.records import Alert, CrossingEvent, OccupancySample

__all__ = [
    "SNAPSHOT_TTL_S",
    "alerts_channel",
    "camera_channel",
    "group_channel",
    "message_for_alert",
    "message_for_crossing",
    "message_for_occupancy",
    "occupancy_snapshot",
    "publish_alert",
    "publish_crossing",
    "publish_occupancy",
    "snapshot_key",
]

# A camera whose worker stopped sending occupancy samples drops out of the cache after this long,
# so "occupancy now" never serves a stale figure for ever (the API then falls back to the database).
SNAPSHOT_TTL_S = 600


def camera_channel(prefix: str, camera_id: str) -> str:
    return f"{prefix}:live:camera:{camera_id}"


def group_channel(prefix: str, group_id: str) -> str:
    return f"{prefix}:live:group:{group_id}"


def alerts_channel(prefix: str, tenant: str | None = None) -> str:
    """Every alert change (fired, acknowledged, resolved, closed, escalated) of one tenant, or of
    every tenant (``tenant`` None: the platform's channel, for superadmins)."""
    return f"{prefix}:live:alerts" if tenant is None else f"{prefix}:live:alerts:{tenant}"


def snapshot_key(prefix: str, camera_id: str) -> str:
    """Hash of the latest occupancy sample per zone (field zone_id, value the message JSON)."""
    return f"{prefix}:live:occupancy:{camera_id}"


def _record_dict(record: Any) -> dict[str, Any]:
    data = json.loads(record.to_json())
    data.pop("schema_version", None)
    return data


def message_for_crossing(event: CrossingEvent) -> dict[str, Any]:
    """The push frame for one crossing: ``{"type": "crossing", "camera_id", "at", "data"}``."""
    return {"type": "crossing", "camera_id": event.camera_id, "at": event.occurred_at, "data": _record_dict(event)}


def message_for_occupancy(sample: OccupancySample) -> dict[str, Any]:
    """The push frame for an occupancy change: ``{"type": "occupancy", "camera_id", "zone_id", "at", "data"}``."""
    return {
        "type": "occupancy",
        "camera_id": sample.camera_id,
        "zone_id": sample.zone_id,
        "at": sample.at,
        "data": _record_dict(sample),
    }


def message_for_alert(alert: Alert) -> dict[str, Any]:
    """The push frame for an alert's new state: ``{"type": "alert", "camera_id", "at", "data"}``."""
    return {"type": "alert", "camera_id": alert.camera_id, "at": alert.updated_at, "data": _record_dict(alert)}


async def publish_alert(redis: Any, prefix: str, alert: Alert, groups: Iterable[str] = ()) -> int:
    """Publish an alert's new state to the platform's and its tenant's alerts channels and to its
    camera's and groups' channels."""
    payload = json.dumps(message_for_alert(alert), separators=(",", ":"))
    channels = [alerts_channel(prefix), alerts_channel(prefix, alert.tenant)]
    if alert.camera_id:
        channels += _channels(prefix, alert.camera_id, groups)
    pipe = redis.pipeline(transaction=False)
    for channel in channels:
        pipe.publish(channel, payload)
    return sum(await pipe.execute())


def _channels(prefix: str, camera_id: str, groups: Iterable[str]) -> list[str]:
    return [camera_channel(prefix, camera_id), *(group_channel(prefix, g) for g in sorted(set(groups)))]


async def publish_crossing(redis: Any, prefix: str, event: CrossingEvent, groups: Iterable[str] = ()) -> int:
    """Publish one crossing to its camera's channel and its groups' channels.

    Returns the number of subscribers reached (summed over channels), as PUBLISH reports it.
    """
    payload = json.dumps(message_for_crossing(event), separators=(",", ":"))
    pipe = redis.pipeline(transaction=False)
    for channel in _channels(prefix, event.camera_id, groups):
        pipe.publish(channel, payload)
    return sum(await pipe.execute())


async def publish_occupancy(
    redis: Any,
    prefix: str,
    sample: OccupancySample,
    groups: Iterable[str] = (),
    ttl_s: int = SNAPSHOT_TTL_S,
) -> bool:
    """Cache ``sample`` as its zone's latest snapshot and publish it if the count changed.

    A sample older than the cached one (a replay, a late partition) changes nothing. The snapshot's
    TTL is renewed by every newer sample, changed or not. Returns whether a change was published.
    """
    key = snapshot_key(prefix, sample.camera_id)
    cached_raw = await redis.hget(key, sample.zone_id)
    cached = json.loads(cached_raw) if cached_raw else None
    if cached is not None and cached.get("at", 0) > sample.at:
        return False
    message = message_for_occupancy(sample)
    payload = json.dumps(message, separators=(",", ":"))
    changed = cached is None or cached.get("data", {}).get("count") != sample.count
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, sample.zone_id, payload)
    pipe.expire(key, ttl_s)
    if changed:
        for channel in _channels(prefix, sample.camera_id, groups):
            pipe.publish(channel, payload)
    await pipe.execute()
    return changed


async def occupancy_snapshot(redis: Any, prefix: str, camera_id: str) -> dict[str, dict[str, Any]]:
    """The cached latest sample per zone of one camera (``{}`` when nothing is cached)."""
    raw = await redis.hgetall(snapshot_key(prefix, camera_id))
    out = {}
    for zone, value in raw.items():
        zone_id = zone.decode() if isinstance(zone, bytes) else zone
        out[zone_id] = json.loads(value)["data"]
    return out


def _demo_crossing() -> CrossingEvent:
    return CrossingEvent(
        event_id="e1",
        camera_id="cam-1",
        line_id="door",
        track_id=1,
        direction="in",
        frame_seq=1,
        occurred_at=1.7e9,
        processed_at=1.7e9,
        x=1.0,
        y=2.0,
    )
