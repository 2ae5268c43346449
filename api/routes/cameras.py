"""Cameras and what they count. Every write: validate (Pydantic shape, then the wire record's own
checks), store in one transaction, publish the stored ``CameraConfig`` to the compacted
camera-config topic (key camera_id) and commit only once the broker acknowledged it, so the
database and the topic never disagree for long: a failed publish stores nothing (503)."""

from __future__ import annotations

import asyncio
import json
import time
import zoneinfo
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api import erasure, queries, store
from api.auth import Operator
from api.deps import CameraId, Conn, LineId, ZoneId, audit, caller_transaction
from api.schemas import ID_PATTERN, CameraBody, CameraIn, LineBody, ZoneBody
from core.principals import Principal
from models.base import parse
from models.records import CameraConfig

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


def _config_from_body(camera_id: str, body: CameraBody, principal: Principal) -> tuple[CameraConfig, Any]:
    """(validated CameraConfig, password or store.KEEP) from a request body. The tenant is the
    caller's unless a superadmin names one."""
    data = body.model_dump(exclude={"camera_id"})
    if "tenant" not in body.model_fields_set and principal.role != "superadmin":
        data["tenant"] = principal.tenant
    if not principal.may_act_in(data["tenant"]):
        raise HTTPException(403, f"tenant: {principal.actor} cannot write cameras of tenant {data['tenant']!r}")
    password: Any = store.KEEP
    if data.get("stream") is not None:
        if "password" in body.stream.model_fields_set:
            password = data["stream"]["password"] or ""
        data["stream"].pop("password", None)
    try:
        zoneinfo.ZoneInfo(data["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise HTTPException(422, f"timezone: unknown IANA time zone {data['timezone']!r}") from None
    data["camera_id"] = camera_id
    data["updated_at"] = time.time()
    for key in ("stream", "detection", "tracking", "thresholds"):
        if data.get(key) is None:
            data.pop(key)
    return parse(CameraConfig, data), password


def _edit(cfg: CameraConfig, **changes: Any) -> CameraConfig:
    data = json.loads(cfg.to_json())
    data.update(changes, updated_at=time.time())
    return parse(CameraConfig, data)


async def _write(
    request: Request,
    conn: Conn,
    camera_id: str,
    build: Callable[[tuple[CameraConfig, bool] | None], tuple[CameraConfig, Any]],
    action: tuple[str, str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Lock the camera row, build the new config from the stored one, store, audit, publish,
    commit. ``action``: (verb, object type, object id) for the audit log; default the camera."""
    settings = request.app.state.settings
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM cameras WHERE camera_id = %s FOR UPDATE", (camera_id,))
        current = await store.load_camera(conn, camera_id)
        cfg, password = build(current)
        created = await store.save_camera(conn, queries.normalise(cfg), password, key)
        stored, has_password = await store.load_camera(conn, camera_id)
        view = queries.camera_view(stored, has_password)
        before = queries.camera_view(*current) if current else None
        verb, kind, object_id = action or ("create" if created else "update", "camera", camera_id)
        await audit(request, conn, f"{kind}.{verb}", kind, object_id, _part(before, object_id, kind),
                    _part(view, object_id, kind), tenant=stored.tenant)  # fmt: skip
        await asyncio.to_thread(request.app.state.publisher.publish, camera_id, stored.to_json())
    return view, created


def _part(view: dict[str, Any] | None, object_id: str, kind: str) -> dict[str, Any] | None:
    """What the audit log keeps of a camera view: the whole camera, or the one line/zone changed."""
    if view is None or kind == "camera":
        return view
    key = f"{kind}_id"
    item_id = object_id.split("/", 1)[1]
    return next((i for i in view.get(f"{kind}s", []) if i.get(key) == item_id), None)


def _require(current: tuple[CameraConfig, bool] | None, camera_id: str) -> CameraConfig:
    if current is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    return current[0]


@router.get("", summary="List cameras (the caller's tenant)")
async def list_cameras(
    conn: Conn,
    tenant: str | None = Query(None, pattern=ID_PATTERN),
    location: str | None = Query(None, pattern=ID_PATTERN),
    group: str | None = Query(None, pattern=ID_PATTERN),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> dict[str, Any]:
    rows = await store.list_cameras(conn, tenant, location, group, limit, offset)
    return {"cameras": [queries.camera_view(cfg, pw) for cfg, pw in rows], "limit": limit, "offset": offset}


@router.get("/{camera_id}", summary="One camera's configuration (never its password)")
async def get_camera(conn: Conn, camera_id: CameraId) -> dict[str, Any]:
    loaded = await store.load_camera(conn, camera_id)
    if loaded is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    return queries.camera_view(*loaded)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a camera (operator)")
async def create_camera(request: Request, conn: Conn, body: CameraIn, principal: Operator) -> dict[str, Any]:
    def build(current: tuple[CameraConfig, bool] | None) -> tuple[CameraConfig, Any]:
        if current is not None:
            msg = f"camera {body.camera_id!r} exists: PUT /api/v1/cameras/{body.camera_id} replaces it"
            raise HTTPException(409, msg)
        return _config_from_body(body.camera_id, body, principal)

    view, _ = await _write(request, conn, body.camera_id, build)
    return view


@router.put("/{camera_id}", summary="Create or replace a camera (operator)")
async def put_camera(
    request: Request, response: Response, conn: Conn, camera_id: CameraId, body: CameraBody, principal: Operator
) -> dict[str, Any]:
    view, created = await _write(request, conn, camera_id, lambda _cur: _config_from_body(camera_id, body, principal))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return view


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a camera (operator)")
async def delete_camera(
    request: Request,
    camera_id: CameraId,
    principal: Operator,
    erase: bool = Query(False, description="also erase its history everywhere (admin; GDPR erasure)"),
) -> Response:
    """Removes its configuration (lines, zones, memberships) and publishes a tombstone; the
    counted history stays in the time-series tables unless ``erase=true``, which then removes it
    from every table and aggregate, Redis, the archive and the workers' state (``api.erasure``;
    answered once done). Its own transaction (not ``Conn``): the erasure runs after it commits."""
    if erase and not principal.can("admin"):
        raise HTTPException(403, f"erase=true needs the admin role; {principal.actor} is {principal.role}")
    state = request.app.state
    async with caller_transaction(state, principal) as conn:
        loaded = await store.load_camera(conn, camera_id)
        if loaded is None or not await store.delete_camera(conn, camera_id):
            raise HTTPException(404, f"unknown camera {camera_id!r}")
        await audit(request, conn, "camera.erase" if erase else "camera.delete", "camera", camera_id,
                    queries.camera_view(*loaded), None, tenant=loaded[0].tenant)  # fmt: skip
        await asyncio.to_thread(state.publisher.publish, camera_id, None)
    if erase:
        await erasure.erase_camera(state, camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _set_item(
    request: Request, conn: Conn, camera_id: str, field: str, item_id: str, new: dict[str, Any] | None
) -> dict[str, Any]:
    """Replace (``new`` given) or remove (``new`` None) one line or zone (``field`` "lines"/"zones")."""
    key, noun = ("line_id", "line") if field == "lines" else ("zone_id", "zone")

    def build(current: tuple[CameraConfig, bool] | None) -> tuple[CameraConfig, Any]:
        cfg = _require(current, camera_id)
        items = getattr(cfg, field)
        if new is None and not any(getattr(i, key) == item_id for i in items):
            raise HTTPException(404, f"camera {camera_id!r} has no {noun} {item_id!r}")
        kept = [json.loads(i.to_json()) for i in items if getattr(i, key) != item_id]
        added = [{key: item_id, **new}] if new is not None else []
        return _edit(cfg, **{field: kept + added}), store.KEEP

    action = ("delete" if new is None else "put", noun, f"{camera_id}/{item_id}")
    view, _ = await _write(request, conn, camera_id, build, action)
    return view


@router.put("/{camera_id}/lines/{line_id}", summary="Create or replace a counting line (operator)")
async def put_line(
    request: Request, conn: Conn, camera_id: CameraId, line_id: LineId, _p: Operator, body: LineBody
) -> dict[str, Any]:
    return await _set_item(request, conn, camera_id, "lines", line_id, body.model_dump())


@router.delete("/{camera_id}/lines/{line_id}", summary="Remove a counting line (operator)")
async def delete_line(
    request: Request, conn: Conn, camera_id: CameraId, line_id: LineId, _p: Operator
) -> dict[str, Any]:
    return await _set_item(request, conn, camera_id, "lines", line_id, None)


@router.put("/{camera_id}/zones/{zone_id}", summary="Create or replace a zone (operator)")
async def put_zone(
    request: Request, conn: Conn, camera_id: CameraId, zone_id: ZoneId, _p: Operator, body: ZoneBody
) -> dict[str, Any]:
    return await _set_item(request, conn, camera_id, "zones", zone_id, body.model_dump())


@router.delete("/{camera_id}/zones/{zone_id}", summary="Remove a zone (operator)")
async def delete_zone(
    request: Request, conn: Conn, camera_id: CameraId, zone_id: ZoneId, _p: Operator
) -> dict[str, Any]:
    return await _set_item(request, conn, camera_id, "zones", zone_id, None)
