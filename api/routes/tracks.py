"""Stored tracks (migration 014): retroactive recounts, what-if lines, heatmaps, flows, versions."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api import queries, store
from api import tracks as tr
from api.auth import Operator
from api.deps import CameraId, Conn, LineId, ZoneId, audit, known_camera, utcnow
from api.routes.console import snapshot_bytes
from api.schemas import RecountIn
from core.flows import od_matrix, visit_grid

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["tracks"])

FROM = Query(None, alias="from", description="start (ISO 8601; naive = UTC); default: `to` minus 1 day")
TO = Query(None, alias="to", description="end, exclusive (ISO 8601); default: now")
MAX_RANGE_DAYS = 92


def _range(start: datetime | None, end: datetime | None, span_days: float = 1.0) -> tuple[datetime, datetime]:
    from datetime import timedelta

    t1 = queries.as_utc(end) if end is not None else utcnow()
    t0 = queries.as_utc(start) if start is not None else t1 - timedelta(days=span_days)
    if t0 >= t1:
        raise queries.ParamError("from", "must be before to")
    if t1 - t0 > timedelta(days=MAX_RANGE_DAYS):
        raise queries.ParamError("from", f"a range is at most {MAX_RANGE_DAYS} days")
    return t0, t1


async def _config(conn: Conn, camera_id: str) -> Any:
    loaded = await store.load_camera(conn, camera_id)
    if loaded is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    return loaded[0]


@router.post(
    "/cameras/{camera_id}/recount",
    summary="Count a line or zone over a past range as if it had been configured then",
)
async def recount(request: Request, conn: Conn, camera_id: CameraId, body: RecountIn) -> dict[str, Any]:
    """Counts per direction and interval for a line (``in``/``out``) or a zone (``enter``/``exit``)
    that need not exist: from the stored tracks (``method=tracks``, any range they cover) or by
    replaying the detections Kafka still holds (``method=replay``, exact). ``save_as`` stores the
    result as a what-if line (operator role)."""
    if (body.line is None) == (body.zone is None):
        raise queries.ParamError("line", "give exactly one of line or zone")
    principal = request.state.principal
    if body.save_as and not principal.can("operator"):
        raise HTTPException(403, f"save_as needs the operator role; {principal.actor} is {principal.role}")
    cfg = await _config(conn, camera_id)
    t0, t1 = _range(body.from_, body.to)
    iv = queries.INTERVALS[body.interval]
    if (t1 - t0) / iv.step > queries.MAX_POINTS:
        raise queries.ParamError("interval", f"more than {queries.MAX_POINTS} buckets; use a wider interval")
    if body.line is not None:
        if body.line.start == body.line.end:
            raise queries.ParamError("line", "start and end must differ")
        geometry = tr.Geometry(start=tuple(body.line.start), end=tuple(body.line.end), count=body.line.count)
    else:
        assert body.zone is not None
        geometry = tr.Geometry(polygon=tuple(tuple(p) for p in body.zone.polygon))
    try:
        result = await tr.recount(conn, request.app.state.settings, cfg, geometry, t0, t1, body.interval, body.method)
    except tr.ReplayError as exc:
        raise HTTPException(503, f"replay failed: {exc}") from None
    rows, keys = result["buckets"], tuple(result["totals"])
    if body.save_as:
        await _save_whatif(request, conn, camera_id, body, geometry, t0, t1, iv.step.total_seconds(), rows, keys)
        result["saved_as"] = body.save_as
    return result


async def _save_whatif(
    request: Request,
    conn: Conn,
    camera_id: str,
    body: RecountIn,
    geometry: tr.Geometry,
    t0: datetime,
    t1: datetime,
    interval_s: float,
    rows: list[dict[str, Any]],
    keys: tuple[str, ...],
) -> None:
    from psycopg.types.json import Jsonb

    principal = request.state.principal
    await conn.execute("DELETE FROM whatif_lines WHERE camera_id = %s AND name = %s", (camera_id, body.save_as))
    await conn.execute(
        "INSERT INTO whatif_lines (camera_id, name, kind, geometry, range_from, range_to, interval_s, method,"
        " created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (camera_id, body.save_as, geometry.kind, Jsonb(geometry.as_json()), t0, t1, int(interval_s), body.method,
         principal.actor),
    )  # fmt: skip
    flat = [(r["bucket"], k, r[k]) for r in rows for k in keys if r[k]]
    if flat:
        await conn.execute(
            "INSERT INTO whatif_counts (camera_id, name, bucket, direction, count)"
            " SELECT %s, %s, b, d, c FROM unnest(%s::timestamptz[], %s::text[], %s::int[]) AS u(b, d, c)",
            (camera_id, body.save_as, [f[0] for f in flat], [f[1] for f in flat], [f[2] for f in flat]),
        )
    await audit(request, conn, "whatif.save", "whatif", f"{camera_id}/{body.save_as}", None,
                {"geometry": geometry.as_json(), "method": body.method})  # fmt: skip


@router.get("/cameras/{camera_id}/whatif", summary="The camera's saved what-if lines and zones")
async def list_whatif(conn: Conn, camera_id: CameraId) -> list[dict[str, Any]]:
    await known_camera(conn, camera_id)
    cur = await conn.execute(
        "SELECT w.name, w.kind, w.geometry, w.range_from AS from, w.range_to AS to, w.interval_s, w.method,"
        " w.created_by, w.created_at, coalesce((SELECT jsonb_object_agg(direction, n) FROM"
        " (SELECT direction, sum(count)::int AS n FROM whatif_counts c WHERE c.camera_id = w.camera_id"
        " AND c.name = w.name GROUP BY direction) t), '{}') AS totals"
        " FROM whatif_lines w WHERE w.camera_id = %s ORDER BY w.name",
        (camera_id,),
    )
    return list(await cur.fetchall())


@router.get("/cameras/{camera_id}/whatif/{name}", summary="A saved what-if line's counts per interval")
async def get_whatif(conn: Conn, camera_id: CameraId, name: LineId) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM whatif_lines WHERE camera_id = %s AND name = %s", (camera_id, name))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no what-if {name!r} on camera {camera_id!r}")
    cur = await conn.execute(
        "SELECT bucket, direction, count FROM whatif_counts WHERE camera_id = %s AND name = %s ORDER BY bucket",
        (camera_id, name),
    )
    return {**row, "counts": list(await cur.fetchall())}


@router.delete("/cameras/{camera_id}/whatif/{name}", status_code=204, summary="Remove a what-if line (operator)")
async def delete_whatif(request: Request, conn: Conn, camera_id: CameraId, name: LineId, _: Operator) -> Response:
    cur = await conn.execute(
        "DELETE FROM whatif_lines WHERE camera_id = %s AND name = %s RETURNING name", (camera_id, name)
    )
    if await cur.fetchone() is None:
        raise HTTPException(404, f"no what-if {name!r} on camera {camera_id!r}")
    await audit(request, conn, "whatif.delete", "whatif", f"{camera_id}/{name}")
    return Response(status_code=204)


@router.get("/cameras/{camera_id}/tracks", summary="Stored track summaries (paths) of a camera")
async def list_tracks(
    conn: Conn,
    camera_id: CameraId,
    start: datetime | None = FROM,
    end: datetime | None = TO,
    limit: int = Query(100, ge=1, le=5000),
) -> dict[str, Any]:
    await known_camera(conn, camera_id)
    t0, t1 = _range(start, end)
    cur = await conn.execute(
        "SELECT event_id, track_id, segment, final, first_seen, last_seen, confirmed_t, mean_speed, max_speed,"
        " tolerance_px, lines, zones, ts, xs, ys, hs FROM track_summaries"
        " WHERE camera_id = %s AND first_seen < %s AND last_seen >= %s ORDER BY first_seen LIMIT %s",
        (camera_id, t1, t0, limit),
    )
    rows = []
    for r in await cur.fetchall():
        ts, xs, ys, hs = r.pop("ts"), r.pop("xs"), r.pop("ys"), r.pop("hs")
        rows.append({**r, "path": [list(v) for v in zip(ts, xs, ys, hs, strict=True)]})
    return {"camera_id": camera_id, "from": t0, "to": t1, "tracks": rows}


@router.get(
    "/cameras/{camera_id}/heatmap",
    summary="Where people walked: tracks per grid cell (JSON), or a PNG over the camera's snapshot",
    responses={200: {"content": {"application/json": {}, "image/png": {}}}},
)
async def heatmap(
    request: Request,
    conn: Conn,
    camera_id: CameraId,
    start: datetime | None = FROM,
    end: datetime | None = TO,
    cell: int = Query(32, ge=4, le=512, description="grid cell size in frame pixels"),
    format: Literal["json", "png"] = Query("json"),
    width: int | None = Query(
        None, ge=16, le=16_384, description="frame width (default: the snapshot's, else the paths')"
    ),
    height: int | None = Query(None, ge=16, le=16_384),
) -> Any:
    """Each cell counts the tracks whose path passed through it (once per track)."""
    await known_camera(conn, camera_id)
    t0, t1 = _range(start, end)
    paths = await tr.load_paths(conn, camera_id, t0, t1)
    snap = await snapshot_bytes(request, camera_id)
    if width is None or height is None:
        if snap is not None:
            width, height = snap[1]
        else:
            xs = [float(p.x.max()) for p in paths] or [640.0]
            ys = [float(p.y.max()) for p in paths] or [480.0]
            width, height = int(max(xs)) + 1, int(max(ys)) + 1
    grid = visit_grid(paths, width, height, cell)
    if format == "png":
        png = tr.heatmap_png(grid, (width, height), snap[0] if snap is not None else None)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
    return {
        "camera_id": camera_id,
        "from": t0,
        "to": t1,
        "cell": cell,
        "width": width,
        "height": height,
        "tracks": len(paths),
        "grid": grid.tolist(),
    }


@router.get("/cameras/{camera_id}/flows", summary="Origin-destination matrix between a camera's lines and zones")
async def flows(
    conn: Conn, camera_id: CameraId, start: datetime | None = FROM, end: datetime | None = TO
) -> dict[str, Any]:
    """Per track, its origin is the first line or zone it touched and its destination the last
    (``line:<id>``, ``zone:<id>``); the matrix counts tracks per pair."""
    await known_camera(conn, camera_id)
    t0, t1 = _range(start, end)
    touched = await tr.load_touches(conn, camera_id, t0, t1)
    return {"camera_id": camera_id, "from": t0, "to": t1, "tracks": len(touched), "matrix": od_matrix(touched)}


async def _versions(
    conn: Conn, camera_id: str, kind: str, object_id: str, t0: datetime, t1: datetime
) -> list[dict[str, Any]]:
    await known_camera(conn, camera_id)
    cur = await conn.execute(
        "SELECT version, geometry, valid_from, valid_to FROM geometry_versions"
        " WHERE camera_id = %s AND kind = %s AND object_id = %s ORDER BY version",
        (camera_id, kind, object_id),
    )
    versions = list(await cur.fetchall())
    if not versions:
        raise HTTPException(404, f"no {kind} {object_id!r} on camera {camera_id!r}, now or before")
    for v in versions:
        lo = max(v["valid_from"], t0)
        hi = min(v["valid_to"] or t1, t1)
        v["counts"] = {}
        if lo >= hi:
            continue
        if kind == "line":
            cur = await conn.execute(
                "SELECT direction, count(*)::int AS n FROM crossing_events WHERE camera_id = %s AND line_id = %s"
                " AND occurred_at >= %s AND occurred_at < %s GROUP BY direction",
                (camera_id, object_id, lo, hi),
            )
        else:
            cur = await conn.execute(
                "SELECT kind AS direction, count(*)::int AS n FROM zone_events WHERE camera_id = %s AND zone_id = %s"
                " AND occurred_at >= %s AND occurred_at < %s GROUP BY kind",
                (camera_id, object_id, lo, hi),
            )
        v["counts"] = {r["direction"]: r["n"] for r in await cur.fetchall()}
    return versions


@router.get("/cameras/{camera_id}/lines/{line_id}/versions", summary="Every geometry a line has had, with its counts")
async def line_versions(
    conn: Conn, camera_id: CameraId, line_id: LineId, start: datetime | None = FROM, end: datetime | None = TO
) -> dict[str, Any]:
    """Each version's geometry, when it was in force, and the crossings counted while it was
    (within ``from``..``to``, default the last 30 days): counts belong to the version in force."""
    t0, t1 = _range(start, end, span_days=30)
    return {"camera_id": camera_id, "line_id": line_id, "from": t0, "to": t1,
            "versions": await _versions(conn, camera_id, "line", line_id, t0, t1)}  # fmt: skip


@router.get("/cameras/{camera_id}/zones/{zone_id}/versions", summary="Every polygon a zone has had, with its counts")
async def zone_versions(
    conn: Conn, camera_id: CameraId, zone_id: ZoneId, start: datetime | None = FROM, end: datetime | None = TO
) -> dict[str, Any]:
    t0, t1 = _range(start, end, span_days=30)
    return {"camera_id": camera_id, "zone_id": zone_id, "from": t0, "to": t1,
            "versions": await _versions(conn, camera_id, "zone", zone_id, t0, t1)}  # fmt: skip
