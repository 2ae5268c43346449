"""Live push of crossings and occupancy changes over WebSocket or Server-Sent Events.

Both subscribe to the Redis channels that ``agents.push`` publishes to, so any API process can
serve any client. Protocol (one JSON object per WebSocket text frame / SSE ``data:`` line):

    {"type": "hello", "cameras": [...], "groups": [...]}            first, once
    {"type": "snapshot", "camera_id": ..., "zones": {zone: sample}}  per camera, the cached occupancy
    {"type": "crossing", "camera_id": ..., "at": ..., "data": {...CrossingEvent}}
    {"type": "occupancy", "camera_id": ..., "zone_id": ..., "at": ..., "data": {...OccupancySample}}
    {"type": "alert", "camera_id": ..., "at": ..., "data": {...Alert}}     the camera's alerts; with
                                                                          alerts=true, every alert

Clients send nothing (a text frame ``ping`` is answered with ``{"type": "pong"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from api.auth import Viewer, authenticate_ws
from api.deps import caller_transaction
from api.live import alerts_channel, camera_channel, group_channel, occupancy_snapshot
from api.queries import ParamError
from api.schemas import ID_PATTERN
from core.principals import Principal

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/live", tags=["live"])
MAX_SUBSCRIPTIONS = 100


def subscription(
    prefix: str, cameras: list[str], groups: list[str], alerts: bool = False, tenant: str | None = None
) -> list[str]:
    """Channels for the requested cameras and groups (and every alert of ``tenant``, None: of every
    tenant); refuses none, too many or bad ids."""
    if not cameras and not groups and not alerts:
        raise ParamError("camera_id", "name at least one camera_id=... or group=... (or alerts=true)")
    if len(cameras) + len(groups) > MAX_SUBSCRIPTIONS:
        raise ParamError("camera_id", f"at most {MAX_SUBSCRIPTIONS} cameras and groups per connection")
    for name, values in (("camera_id", cameras), ("group", groups)):
        for v in values:
            if not re.match(ID_PATTERN, v):
                raise ParamError(name, f"{v!r} is not a valid id")
    return (
        [camera_channel(prefix, c) for c in sorted(set(cameras))]
        + [group_channel(prefix, g) for g in sorted(set(groups))]
        + ([alerts_channel(prefix, tenant)] if alerts else [])
    )


async def check_visible(state: Any, principal: Principal, cameras: list[str], groups: list[str]) -> None:
    """Refuse (ParamError, 422 / close 1008) a camera or group the caller's tenant does not have:
    the push carries nothing of another tenant. Unknown and foreign ids read the same."""
    if not cameras and not groups:
        return
    async with caller_transaction(state, principal) as conn:
        cur = await conn.execute("SELECT camera_id FROM cameras WHERE camera_id = ANY(%s)", (cameras,))
        seen_cams = {r["camera_id"] for r in await cur.fetchall()}
        cur = await conn.execute("SELECT group_id FROM camera_groups WHERE group_id = ANY(%s)", (groups,))
        seen_groups = {r["group_id"] for r in await cur.fetchall()}
    for name, wanted, seen in (("camera_id", cameras, seen_cams), ("group", groups, seen_groups)):
        missing = sorted(set(wanted) - seen)
        if missing:
            raise ParamError(name, f"unknown {name} {missing[0]!r}")


def _alerts_tenant(principal: Principal) -> str | None:
    return None if principal.role == "superadmin" else principal.tenant


async def _frames(
    redis: Any, prefix: str, cameras: list[str], groups: list[str], alerts: bool = False, tenant: str | None = None
) -> AsyncIterator[str]:
    """hello, snapshots, then every message of the subscribed channels (JSON text)."""
    channels = subscription(prefix, cameras, groups, alerts, tenant)
    pubsub = redis.pubsub()
    await pubsub.subscribe(*channels)
    try:
        yield json.dumps({"type": "hello", "cameras": sorted(set(cameras)), "groups": sorted(set(groups))})
        for cam in sorted(set(cameras)):
            with contextlib.suppress(Exception):
                zones = await occupancy_snapshot(redis, prefix, cam)
                yield json.dumps({"type": "snapshot", "camera_id": cam, "zones": zones})
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None:
                yield ""  # a tick: lets the caller notice a gone client
                continue
            data = msg["data"]
            yield data.decode() if isinstance(data, bytes) else str(data)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
            await pubsub.aclose()


@router.websocket("/ws")
async def live_ws(
    websocket: WebSocket,
    camera_id: list[str] = Query([]),
    group: list[str] = Query([]),
    alerts: bool = Query(False),
) -> None:
    """``ws://host:8080/api/v1/live/ws?camera_id=cam-1&group=lobby`` (repeat either; ``alerts=true``
    adds every alert of the caller's tenant). Authenticated like every request (header, or
    ``access_token=`` for browsers); a refused caller or subscription is closed with 1008."""
    state = websocket.app.state
    prefix = state.settings.kafka.topic_prefix
    try:
        principal = await authenticate_ws(websocket)
        tenant = _alerts_tenant(principal)
        subscription(prefix, camera_id, group, alerts, tenant)
        await check_visible(state, principal, camera_id, group)
    except HTTPException as exc:
        await websocket.close(code=1008, reason=str(exc.detail)[:120])
        return
    except ParamError as exc:
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    await websocket.accept()

    async def client_reader() -> None:
        while True:
            text = await websocket.receive_text()
            if text.strip().lower() == "ping":
                await websocket.send_text('{"type":"pong"}')

    reader = asyncio.create_task(client_reader())
    try:
        async for frame in _frames(state.redis, prefix, camera_id, group, alerts, tenant):
            if reader.done():
                break
            if frame:
                await websocket.send_text(frame)
    except (WebSocketDisconnect, RuntimeError):
        pass
    except Exception as exc:  # Redis lost: tell the client to reconnect
        log.warning("live push ended: %s", type(exc).__name__)
        with contextlib.suppress(Exception):
            await websocket.close(code=1011, reason="live feed unavailable, reconnect")
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


@router.get(
    "/events",
    summary="Server-Sent Events: crossings, occupancy changes and alerts",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def live_sse(
    request: Request,
    principal: Viewer,
    camera_id: list[str] = Query([], description="repeat for several cameras"),
    group: list[str] = Query([], description="repeat for several groups"),
    alerts: bool = Query(False, description="also every alert change of the caller's tenant, whatever its camera"),
) -> StreamingResponse:
    """The same frames as the WebSocket, as ``data: <json>`` events; a comment every second keeps
    proxies from closing an idle stream."""
    state = request.app.state
    prefix = state.settings.kafka.topic_prefix
    tenant = _alerts_tenant(principal)
    subscription(prefix, camera_id, group, alerts, tenant)  # 422 before the stream starts
    await check_visible(state, principal, camera_id, group)

    async def events() -> AsyncIterator[str]:
        async for frame in _frames(state.redis, prefix, camera_id, group, alerts, tenant):
            if await request.is_disconnected():
                break
            yield f"data: {frame}\n\n" if frame else ": tick\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
