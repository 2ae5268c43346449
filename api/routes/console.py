"""What a person looks at: camera snapshots (plain or with the lines, zones and counts drawn on
them), the cameras' stream status, and the web console (static files under ``api/console/``,
served at ``/``; no build step)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import overlay, queries, store
from api.deps import CameraId, Conn, known_camera, utcnow
from api.live import occupancy_snapshot
from streams.snapshots import request_key, snapshot_key

log = logging.getLogger(__name__)
router = APIRouter(tags=["console"])
CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"

JPEG = {"content": {"image/jpeg": {}}, "description": "the camera's latest snapshot (JPEG)"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _snapshot_fields(request: Request, camera_id: str) -> dict[str, Any]:
    state = request.app.state
    raw = await state.redis.hgetall(snapshot_key(state.settings.kafka.topic_prefix, camera_id))
    return {_text(k): v for k, v in raw.items()}


async def snapshot_bytes(request: Request, camera_id: str) -> tuple[bytes, tuple[int, int]] | None:
    """The camera's latest snapshot (JPEG) and the size of the frame it was taken from; None when
    there is none or Redis does not answer (callers then draw without it)."""
    try:
        fields = await _snapshot_fields(request, camera_id)
    except Exception as exc:
        log.warning("snapshot unavailable: %s", type(exc).__name__)
        return None
    if "jpeg" not in fields:
        return None
    return fields["jpeg"], (int(_text(fields["frame_width"])), int(_text(fields["frame_height"])))


@router.get(
    "/api/v1/cameras/{camera_id}/snapshot.jpg",
    summary="The camera's latest picture, optionally with its lines, zones and counts drawn on it",
    response_class=Response,
    responses={200: JPEG, 404: {"description": "unknown camera, or no snapshot in the last minutes"}},
    tags=["cameras"],
)
async def snapshot(
    request: Request,
    conn: Conn,
    camera_id: CameraId,
    overlay_: bool = Query(False, alias="overlay", description="draw lines (with direction), zones and counts"),
) -> Response:
    """A downscaled JPEG the camera's grabber (or the simulator) stored in Redis within the last
    ``snapshots.ttl_s`` seconds. Headers: ``X-Frame-Width``/``X-Frame-Height`` (the frame it was
    taken from: the pixel space of the camera's lines and zones) and ``X-Taken-At`` (epoch s).
    With ``overlay=true`` the counts are those of the last 24 hours and the occupancy now."""
    loaded = await store.load_camera(conn, camera_id)
    if loaded is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    state = request.app.state
    prefix = state.settings.kafka.topic_prefix
    try:
        fields = await _snapshot_fields(request, camera_id)
    except Exception as exc:  # Redis down
        log.warning("snapshot unavailable: %s", type(exc).__name__)
        raise HTTPException(503, "snapshots are unavailable (Redis does not answer), retry shortly") from None
    if "jpeg" not in fields:
        raise HTTPException(404, f"no snapshot of camera {camera_id!r} yet: is its grabber (or simulator) running?")
    jpeg: bytes = fields["jpeg"]
    frame_size = (int(_text(fields["frame_width"])), int(_text(fields["frame_height"])))
    headers = {
        "X-Frame-Width": str(frame_size[0]),
        "X-Frame-Height": str(frame_size[1]),
        "X-Taken-At": _text(fields.get("taken_at", "")),
    }
    if overlay_:
        view = queries.camera_view(*loaded)
        iv = queries.INTERVALS["hour"]
        end = utcnow()
        params = {"camera_id": camera_id, "start": end - iv.default_span, "end": end, "line_id": None}
        rows = await (await conn.execute(queries.counts_sql(iv, "line", False), params)).fetchall()
        counts = queries.totals(rows, "line_id")
        try:
            occupancy = await occupancy_snapshot(state.redis, prefix, camera_id)
        except Exception:  # Redis went away between the two calls: draw without occupancy
            occupancy = {}
        jpeg = await asyncio.to_thread(overlay.draw_overlay, jpeg, frame_size, view, counts, occupancy)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


STATUS_SQL = """
SELECT DISTINCT ON (camera_id) camera_id, at, status, input_fps, processed_fps, latency_ms_p50, latency_ms_p95,
       dropped_frames, decode_errors, reconnects, frame_width, frame_height, last_error
FROM stream_stats WHERE at >= %(since)s
ORDER BY camera_id, at DESC
"""


@router.post(
    "/api/v1/cameras/{camera_id}/snapshot",
    status_code=202,
    summary="Ask the camera's grabber for a picture now (then GET snapshot.jpg)",
    tags=["cameras"],
)
async def request_snapshot(request: Request, conn: Conn, camera_id: CameraId) -> dict[str, Any]:
    """Sets a flag in Redis (expiring after ``REQUEST_TTL_S``) that the camera's grabber or the
    simulator looks at about once a second: its next frame is stored whatever the interval."""
    await known_camera(conn, camera_id)
    state = request.app.state
    try:
        await state.redis.set(request_key(state.settings.kafka.topic_prefix, camera_id), 1, ex=REQUEST_TTL_S)
    except Exception as exc:  # Redis down
        log.warning("snapshot request not stored: %s", type(exc).__name__)
        raise HTTPException(503, "snapshots are unavailable (Redis does not answer), retry shortly") from None
    return {"camera_id": camera_id, "requested": True, "within_s": REQUEST_TTL_S}


REQUEST_TTL_S = 30


@router.get("/api/v1/stream-status", summary="Each camera's latest stream report (caller's tenant)", tags=["cameras"])
async def stream_status(conn: Conn, max_age_s: int = Query(600, ge=10, le=86_400)) -> dict[str, Any]:
    """The newest ``StreamStats`` of every camera reporting within ``max_age_s`` seconds: status
    (online, degraded, offline), fps, latency (lag), dropped frames and decode errors (quality).
    A camera that has not reported within ``max_age_s`` is absent (the console shows it as offline)."""
    from datetime import timedelta

    rows = await (await conn.execute(STATUS_SQL, {"since": utcnow() - timedelta(seconds=max_age_s)})).fetchall()
    return {"max_age_s": max_age_s, "cameras": [{**r, "at": r["at"].timestamp()} for r in rows]}


def install(app: FastAPI) -> None:
    """The routes, and the console: ``/`` is its page, ``/console/...`` its scripts and styles."""
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html")

    app.mount("/console", StaticFiles(directory=CONSOLE_DIR), name="console")
