"""Counts, peak hours and occupancy, read from the continuous aggregates (migration 003)."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from api import queries
from api.deps import CameraId, Conn, LineId, ZoneId, known_camera, utcnow
from api.live import occupancy_snapshot
from api.schemas import ID_PATTERN

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["analytics"])

IntervalName = Literal["minute", "hour", "day"]
FROM = Query(None, alias="from", description="start (ISO 8601; naive = UTC); default: `to` minus 1h/1d/30d by interval")
TO = Query(None, alias="to", description="end, exclusive (ISO 8601); default: now")
INTERVAL = Query("hour", description="bucket width; served by crossings_1m / _1h / _1d (occupancy_* likewise)")


def _range(start: datetime | None, end: datetime | None, iv: queries.Interval) -> tuple[datetime, datetime]:
    try:
        return queries.time_range(start, end, iv.default_span, iv.step, utcnow())
    except OverflowError:
        raise queries.ParamError("from", "out of the supported date range") from None


def _count_row(r: dict[str, Any], key: str) -> dict[str, Any]:
    return {"bucket": r["bucket"], key: r[key], "in": int(r["entries"]), "out": int(r["exits"]),
            "total": int(r["entries"]) + int(r["exits"])}  # fmt: skip


async def _camera_counts(
    conn: Conn, camera_id: str, start: datetime | None, end: datetime | None, interval: str, line_id: str | None
) -> dict[str, Any]:
    await known_camera(conn, camera_id)
    iv = queries.INTERVALS[interval]
    t0, t1 = _range(start, end, iv)
    params = {"camera_id": camera_id, "start": t0, "end": t1, "line_id": line_id}
    rows = await (await conn.execute(queries.counts_sql(iv, "line", line_id is not None), params)).fetchall()
    tot = queries.totals(rows, "line_id")
    return {
        "camera_id": camera_id,
        "line_id": line_id,
        "interval": interval,
        "from": t0,
        "to": t1,
        "source": iv.crossings,
        "totals": tot.pop("*"),
        "lines": tot,
        "buckets": [_count_row(r, "line_id") for r in rows],
    }


@router.get("/cameras/{camera_id}/counts", summary="Crossings of a camera per bucket and line")
async def camera_counts(
    conn: Conn,
    camera_id: CameraId,
    from_: datetime | None = FROM,
    to: datetime | None = TO,
    interval: IntervalName = INTERVAL,
    line_id: str | None = Query(None, pattern=ID_PATTERN, description="only this line"),
) -> dict[str, Any]:
    """Entries (`in`) and exits (`out`) per bucket and line, totals per line and overall."""
    return await _camera_counts(conn, camera_id, from_, to, interval, line_id)


@router.get("/cameras/{camera_id}/lines/{line_id}/counts", summary="Crossings of one line per bucket")
async def line_counts(
    conn: Conn,
    camera_id: CameraId,
    line_id: LineId,
    from_: datetime | None = FROM,
    to: datetime | None = TO,
    interval: IntervalName = INTERVAL,
) -> dict[str, Any]:
    return await _camera_counts(conn, camera_id, from_, to, interval, line_id)


@router.get("/counts", summary="Crossings per bucket and camera, for cameras or a group")
async def counts(
    conn: Conn,
    camera_id: list[str] | None = Query(None, description="repeat for several cameras", max_length=500),
    group: str | None = Query(None, pattern=ID_PATTERN, description="every camera of this group"),
    from_: datetime | None = FROM,
    to: datetime | None = TO,
    interval: IntervalName = INTERVAL,
) -> dict[str, Any]:
    ids = sorted(set(camera_id or []))
    for cid in ids:
        if not re.match(ID_PATTERN, cid):
            raise queries.ParamError("camera_id", f"{cid!r} is not a valid id")
    if group is not None:
        cur = await conn.execute("SELECT camera_id FROM camera_group_members WHERE group_id = %s", (group,))
        members = [r["camera_id"] for r in await cur.fetchall()]
        if (
            not members
            and not await (await conn.execute("SELECT 1 FROM camera_groups WHERE group_id = %s", (group,))).fetchone()
        ):
            raise HTTPException(404, f"unknown group {group!r}")
        ids = sorted(set(ids) | set(members))
    if not ids:
        raise queries.ParamError("camera_id", "name at least one camera (camera_id=...) or a group (group=...)")
    for cid in ids if group is None else []:  # a group's members are the caller's by construction
        await known_camera(conn, cid)
    iv = queries.INTERVALS[interval]
    t0, t1 = _range(from_, to, iv)
    rows = await (
        await conn.execute(queries.counts_sql(iv, "camera", False), {"camera_ids": ids, "start": t0, "end": t1})
    ).fetchall()
    tot = queries.totals(rows, "camera_id")
    return {
        "cameras": ids,
        "group": group,
        "interval": interval,
        "from": t0,
        "to": t1,
        "source": iv.crossings,
        "totals": tot.pop("*"),
        "by_camera": tot,
        "buckets": [_count_row(r, "camera_id") for r in rows],
    }


@router.get("/cameras/{camera_id}/peak-hours", summary="The busiest hour of each day (peak_hours view)")
async def peak_hours(
    conn: Conn,
    camera_id: CameraId,
    from_: datetime | None = Query(None, alias="from", description="first day (default: 7 days ago)"),
    to: datetime | None = Query(None, alias="to", description="end, exclusive (default: now)"),
) -> dict[str, Any]:
    """Per UTC day: the hour with most crossings (both directions, all lines), ties to the earlier."""
    await known_camera(conn, camera_id)
    iv = queries.Interval("day", timedelta(days=1), "", "", timedelta(days=7))
    t0, t1 = _range(from_, to, iv)
    rows = await (await conn.execute(queries.PEAK_HOURS, {"camera_id": camera_id, "start": t0, "end": t1})).fetchall()
    return {
        "camera_id": camera_id,
        "from": t0,
        "to": t1,
        "days": [
            {
                "day": r["day"],
                "peak_hour": r["peak_hour"],
                "crossings": int(r["crossings"]),
                "in": int(r["entries"]),
                "out": int(r["exits"]),
            }  # fmt: skip
            for r in rows
        ],
    }


@router.get("/cameras/{camera_id}/occupancy", summary="Occupancy now, per zone")
async def occupancy_now(request: Request, conn: Conn, camera_id: CameraId) -> dict[str, Any]:
    """The latest sample per zone from the Redis snapshot the push agent keeps (``source: redis``);
    when Redis has none or is down, the latest rows of the last day from the database."""
    await known_camera(conn, camera_id)
    prefix = request.app.state.settings.kafka.topic_prefix
    try:
        cached = await occupancy_snapshot(request.app.state.redis, prefix, camera_id)
    except Exception as exc:  # Redis down: the database still answers
        log.warning("occupancy snapshot unavailable: %s", type(exc).__name__)
        cached = {}
    if cached:
        zones = [{k: v for k, v in s.items() if k != "camera_id"} for _, s in sorted(cached.items())]
        return {"camera_id": camera_id, "source": "redis", "zones": zones}
    since = utcnow() - timedelta(days=1)
    rows = await (await conn.execute(queries.OCCUPANCY_LATEST, {"camera_id": camera_id, "since": since})).fetchall()
    zones = [{**r, "at": r["at"].timestamp()} for r in rows]
    return {"camera_id": camera_id, "source": "database", "zones": zones}


async def _occupancy_history(
    conn: Conn, camera_id: str, start: datetime | None, end: datetime | None, interval: str, zone_id: str | None
) -> dict[str, Any]:
    await known_camera(conn, camera_id)
    iv = queries.INTERVALS[interval]
    t0, t1 = _range(start, end, iv)
    params = {"camera_id": camera_id, "start": t0, "end": t1, "zone_id": zone_id}
    rows = await (await conn.execute(queries.occupancy_sql(iv, zone_id is not None), params)).fetchall()
    return {
        "camera_id": camera_id,
        "zone_id": zone_id,
        "interval": interval,
        "from": t0,
        "to": t1,
        "source": iv.occupancy,
        "buckets": [
            {
                "bucket": r["bucket"],
                "zone_id": r["zone_id"],
                "samples": int(r["samples"]),
                "avg": r["count_avg"],
                "max": r["count_max"],
                "min": r["count_min"],
                "capacity_pct_max": r["capacity_pct_max"],
                "avg_dwell_s": r["avg_dwell_s"],
            }
            for r in rows
        ],
    }


@router.get("/cameras/{camera_id}/occupancy/history", summary="Occupancy over time, per bucket and zone")
async def occupancy_history(
    conn: Conn,
    camera_id: CameraId,
    from_: datetime | None = FROM,
    to: datetime | None = TO,
    interval: IntervalName = INTERVAL,
    zone_id: str | None = Query(None, pattern=ID_PATTERN, description="only this zone"),
) -> dict[str, Any]:
    """Average (sum of counts / samples, never an average of averages), max and min people inside."""
    return await _occupancy_history(conn, camera_id, from_, to, interval, zone_id)


@router.get("/cameras/{camera_id}/zones/{zone_id}/occupancy", summary="Occupancy of one zone over time")
async def zone_occupancy(
    conn: Conn,
    camera_id: CameraId,
    zone_id: ZoneId,
    from_: datetime | None = FROM,
    to: datetime | None = TO,
    interval: IntervalName = INTERVAL,
) -> dict[str, Any]:
    return await _occupancy_history(conn, camera_id, from_, to, interval, zone_id)
