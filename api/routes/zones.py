"""Zone analytics (seed 001; migration 015): entries and exits, dwell-time median and p90, and
occupancy peaks against capacity, per zone and bucket, read from the continuous aggregates
(``zone_events_1m/1h/1d``, ``occupancy_1m/1h/1d``), never from raw rows except the time of a
minute's peak. Same rules as the other analytics routes: one transaction per request as the API
role, in the caller's tenant (``Conn``); a camera of another tenant is unknown (404)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query

from api import queries
from api.deps import CameraId, Conn, ZoneId, known_camera
from api.routes.analytics import FROM, INTERVAL, TO, IntervalName, _range
from api.schemas import (
    ID_PATTERN,
    DwellStats,
    OccupancyPeak,
    ZoneAnalyticsOut,
    ZoneBucketOut,
    ZonesOut,
    ZoneSummaryOut,
    ZoneTotalsOut,
)

router = APIRouter(prefix="/api/v1", tags=["zone analytics"])


def _occupancy(row: dict[str, Any] | None, peak: dict[str, Any] | None, capacity: int | None) -> OccupancyPeak:
    row = row or {}
    top = row.get("count_max")
    top = int(top) if top is not None else None
    at = peak["peak_at"] if peak and top is not None and peak["peak"] == top else None
    return OccupancyPeak(
        samples=int(row.get("samples") or 0),
        avg=row.get("count_avg"),
        peak=top,
        peak_at=at,
        capacity=capacity,
        peak_pct=queries.peak_pct(top, capacity, row.get("capacity_pct_max")),
    )


@router.get(
    "/cameras/{camera_id}/zones/{zone_id}/analytics",
    summary="Entries, exits, dwell median/p90 and occupancy peak vs capacity of one zone per bucket",
)
async def zone_analytics(
    conn: Conn,
    camera_id: CameraId,
    zone_id: ZoneId,
    from_: datetime | None = FROM,
    to: datetime | None = TO,
    interval: IntervalName = INTERVAL,
) -> ZoneAnalyticsOut:
    """Per bucket (``interval``): people who entered and left the zone, the dwell times of those
    who left (average, median, p90, max), and the occupancy samples' average and peak, when the
    peak was reached and how full that was against the zone's capacity. ``totals`` covers the
    whole range (histograms add up, so its median and p90 are over every exit of the range)."""
    await known_camera(conn, camera_id)
    iv = queries.INTERVALS[interval]
    t0, t1 = _range(from_, to, iv)
    params = {"camera_id": camera_id, "zone_id": zone_id, "start": t0, "end": t1, "step": iv.step}
    cfg = await (await conn.execute(queries.ZONE_CONFIG, params)).fetchone()
    capacity = cfg["capacity"] if cfg else None
    events = await (await conn.execute(queries.zone_events_sql(iv), params)).fetchall()
    occupancy = await (await conn.execute(queries.occupancy_sql(iv, True), params)).fetchall()
    peaks = await (await conn.execute(queries.zone_peak_at_sql(iv), params)).fetchall()
    by_event = {r["bucket"]: r for r in events}
    by_occ = {r["bucket"]: r for r in occupancy}
    by_peak = {r["bucket"]: r for r in peaks}
    buckets = []
    for b in sorted(set(by_event) | set(by_occ)):
        ev = by_event.get(b) or {}
        entries, exits = int(ev.get("entries") or 0), int(ev.get("exits") or 0)
        buckets.append(
            ZoneBucketOut(
                bucket=b,
                entries=entries,
                exits=exits,
                net=entries - exits,
                dwell=DwellStats(**queries.dwell_stats(ev)),
                occupancy=_occupancy(by_occ.get(b), by_peak.get(b), capacity),
            )
        )
    top = max(occupancy, key=lambda r: (r["count_max"] is not None, r["count_max"] or 0), default=None)
    samples = sum(int(r["samples"] or 0) for r in occupancy)
    total_occ = {
        "samples": samples,
        "count_avg": sum(float(r["count_avg"] or 0) * int(r["samples"] or 0) for r in occupancy) / samples
        if samples
        else None,
        "count_max": top["count_max"] if top else None,
        "capacity_pct_max": max((r["capacity_pct_max"] for r in occupancy if r["capacity_pct_max"] is not None),
                                default=None),
    }  # fmt: skip
    entries = sum(int(r["entries"] or 0) for r in events)
    exits = sum(int(r["exits"] or 0) for r in events)
    return ZoneAnalyticsOut(
        camera_id=camera_id,
        zone_id=zone_id,
        name=cfg["name"] if cfg else None,
        capacity=capacity,
        interval=interval,
        from_=t0,
        to=t1,
        sources=[iv.zones, iv.occupancy],
        totals=ZoneTotalsOut(
            entries=entries,
            exits=exits,
            dwell=DwellStats(**queries.dwell_stats(queries.add_histograms(events))),
            occupancy=_occupancy(total_occ, by_peak.get(top["bucket"]) if top else None, capacity),
        ),
        buckets=buckets,
    )


@router.get("/zones/analytics", summary="Every zone of the caller's cameras: entries, exits, dwell, peak vs capacity")
async def zones_analytics(
    conn: Conn,
    camera_id: list[str] | None = Query(None, description="only these cameras (repeat)", max_length=500),
    from_: datetime | None = Query(None, alias="from", description="start (ISO 8601; naive = UTC); default: to - 1d"),
    to: datetime | None = TO,
) -> ZonesOut:
    """One row per zone (configured, or with history in the range), from the hourly aggregates:
    ``from`` is moved back to the start of its hour. A camera of another tenant lists nothing."""
    ids = sorted(set(camera_id or []))
    for cid in ids:
        if not re.match(ID_PATTERN, cid):
            raise queries.ParamError("camera_id", f"{cid!r} is not a valid id")
    iv = queries.Interval("hour", timedelta(hours=1), "", "occupancy_1h", timedelta(days=1), "zone_events_1h")
    try:
        t0, t1 = _range(from_, to, iv)
    except queries.ParamError as exc:
        if exc.param != "interval":
            raise
        raise queries.ParamError("from", f"at most {queries.MAX_POINTS} hours from to") from None
    rows = await (
        await conn.execute(queries.zones_summary_sql(bool(ids)), {"start": t0, "end": t1, "camera_ids": ids})
    ).fetchall()
    zones = [
        ZoneSummaryOut(
            camera_id=r["camera_id"],
            zone_id=r["zone_id"],
            name=r["name"],
            capacity=r["capacity"],
            entries=int(r["entries"] or 0),
            exits=int(r["exits"] or 0),
            dwell=DwellStats(**queries.dwell_stats(r)),
            occupancy=_occupancy(r, None, r["capacity"]),
        )
        for r in rows
    ]
    return ZonesOut(from_=t0, to=t1, sources=["zone_events_1h", "occupancy_1h"], zones=zones)
