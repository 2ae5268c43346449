"""Live views (Faust web, JSON) over the counting agent's in-memory state. See agents/README.md.

Every view names an API key like the HTTP API (``Authorization: Bearer ...``, checked by the same
``api.auth.Authenticator``) and shows only the caller's tenant's cameras; a camera of another
tenant reads as unknown (404).

Per-camera views answer from any worker: a worker that does not own the camera forwards the
request to the owner of the camera's partition (the ``camera-state`` table's active partition in
the assignor's metadata) and returns its answer. Faust's own ``table_route`` hashes keys with the
Java/murmur2 partitioner, but our producers (confluent-kafka) use librdkafka's default
``consistent_random`` (CRC32), so the partition is taken from where the camera's frames actually
arrived when known (the stored state records it) and from CRC32 otherwise.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from fastapi import HTTPException
from faust.web import Request, Response, View

from agents import state as st
from agents.app import PARTITIONS, app, settings
from agents.counting import WINDOWING, camera_configs, camera_states, counter
from core.principals import Principal
from core.trend import trend
from core.windows import rolling_sum, window_start
from models.base import SchemaError, parse
from models.records import CameraConfig

ROUTED_HEADER = "X-Footfall-Routed"
_authenticator: Any = None


async def caller(view: View, request: Request) -> Principal | Any:
    """The authenticated caller, or the refusal to return."""
    global _authenticator
    from api.auth import Authenticator, bearer_credential

    if _authenticator is None:
        from agents.sinks import get_pool

        _authenticator = Authenticator(settings, await get_pool())
    peer = request.transport.get_extra_info("peername") if request.transport else None
    try:
        return await _authenticator.principal(
            bearer_credential(request.headers.get("Authorization", "")), peer[0] if peer else "unknown", request.path
        )
    except HTTPException as exc:
        return view.json({"error": exc.detail}, status=exc.status_code, headers=exc.headers or {})


def tenant_of(camera_id: str) -> str | None:
    """The tenant of a camera this worker holds a configuration for."""
    raw = camera_configs.data.get(camera_id.encode()) or camera_configs.data.get(camera_id)
    if raw is None:
        return None
    try:
        return parse(CameraConfig, raw).tenant
    except SchemaError:
        return None


def sees(principal: Principal, camera_id: str) -> bool:
    return principal.role == "superadmin" or tenant_of(camera_id) == principal.tenant


def crc32_partition(key: str, partitions: int = PARTITIONS) -> int:
    """Partition librdkafka's default partitioner (``consistent_random``) picks for a key.

    >>> crc32_partition("cam-1", 12)
    4
    """
    return zlib.crc32(key.encode()) % partitions


def camera_partition(camera_id: str) -> int:
    rt = counter.cameras.get(camera_id)
    if rt is not None:
        return rt.partition
    raw = camera_states.data.get(camera_id.encode())  # present here as standby or former owner
    if raw is not None:
        try:
            return st.decode(raw).partition
        except ValueError:
            pass
    return crc32_partition(camera_id)


def owner_url(partition: int) -> str | None:
    topic = camera_states.changelog_topic.get_topic_name()
    for url, tps in app.router.table_metadata(camera_states.name).items():
        if partition in tps.get(topic, ()):
            return str(url)
    return None


async def routed(view: View, request: Request, camera_id: str, local: Any) -> Response:
    """Answer locally if this worker owns ``camera_id`` (or the request was already forwarded),
    else forward to the owner (with the caller's credentials: the owner checks them again)."""
    principal = await caller(view, request)
    if not isinstance(principal, Principal):  # the refusal
        return principal
    unknown = view.json({"error": f"camera {camera_id!r} has no state on its owner yet"}, status=404)
    rt = counter.cameras.get(camera_id)
    if rt is None and not request.headers.get(ROUTED_HEADER):
        url = owner_url(camera_partition(camera_id))
        if url is not None and url.rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
            from yarl import URL

            dest = URL(url)
            target = request.url.with_host(dest.host).with_port(dest.port)
            headers = {ROUTED_HEADER: "1", "Authorization": request.headers.get("Authorization", "")}
            async with app.http_client.get(str(target), headers=headers) as resp:
                body = await resp.read()
                return view.bytes(body, content_type="application/json", status=resp.status)
    if rt is None:  # owned, but no frame since the partition was assigned: read the stored state
        raw = camera_states.data.get(camera_id.encode())
        try:
            rt = None if raw is None else st.decode(raw)
        except ValueError:
            rt = None
    if rt is None or not sees(principal, camera_id):
        return unknown
    return view.json({**local(rt), "served_by": str(app.conf.canonical_url)})


def _window_counts(rt: st.CameraRuntime, start: float) -> dict[str, dict[str, int]]:
    lines = counter.scene_for(rt.camera_id).scene.line_ids
    out: dict[str, dict[str, int]] = {lid: {"in": 0, "out": 0} for lid in lines}
    for ((line_id, direction), s), c in rt.windows.counts.items():
        if s == start:
            out.setdefault(line_id, {"in": 0, "out": 0})[direction] = c
    return out


def _rolling(rt: st.CameraRuntime, end: float) -> dict[str, dict[str, int]]:
    lines = set(counter.scene_for(rt.camera_id).scene.line_ids) | {k[0][0] for k in rt.windows.counts}
    return {
        lid: {d: rolling_sum(rt.windows, (lid, d), end, windowing=WINDOWING) for d in ("in", "out")}
        for lid in sorted(lines)
    }


def camera_summary(rt: st.CameraRuntime, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    last = rt.state.last_frame_time
    entry = counter.scene_for(rt.camera_id)
    return {
        "camera_id": rt.camera_id,
        "partition": rt.partition,
        "last_frame_seq": rt.state.last_frame_seq,
        "last_frame_time": last,
        "lag_s": lag_s(rt, now),
        "processing_lag_s": (
            None if last is None or rt.last_processed_at is None else round(rt.last_processed_at - last, 3)
        ),
        "configured": entry.config is not None,
        "lines": list(entry.scene.line_ids),
        "zones": list(entry.scene.zone_ids),
        "tracks": len(rt.state.tracker),
        "outbox": len(rt.outbox),
    }


def lag_s(rt: st.CameraRuntime, now: float | None = None) -> float | None:
    """How far behind the camera is: now - capture time of its newest frame counted. Minutes after
    a broker outage while its grabber's spool is being delivered; the counts are complete up to
    the capture time of that frame."""
    last = rt.state.last_frame_time
    return None if last is None else round((time.time() if now is None else now) - last, 3)


def counts_view(rt: st.CameraRuntime, at: float | None = None) -> dict[str, Any]:
    size = WINDOWING.size_s
    ref = rt.windows.max_event_time if at is None else at
    if ref is None:
        ref = rt.state.last_frame_time or time.time()
    start = window_start(ref, size)
    roll_end = start + size
    return {
        "camera_id": rt.camera_id,
        "window": {
            "start": start,
            "end": start + size,
            "final": start + size <= rt.windows.closed_until,
            "counts": _window_counts(rt, start),
        },
        "rolling": {"start": roll_end - WINDOWING.rolling_s, "end": roll_end, "counts": _rolling(rt, roll_end)},
        "watermark": None if rt.windows.max_event_time is None else rt.windows.max_event_time - WINDOWING.grace_s,
        "as_of": rt.state.last_frame_time,  # counts are complete up to this capture time (lag: now - as_of)
    }


def occupancy_view(rt: st.CameraRuntime) -> dict[str, Any]:
    entry = counter.scene_for(rt.camera_id)
    zones = []
    for zid in entry.scene.zone_ids:
        book = rt.zones.get(zid, st.ZoneBook())
        zone = entry.zones.get(zid)
        cap = zone.capacity if zone else None
        zones.append(
            {
                "zone_id": zid,
                "count": book.count,
                "capacity": cap,
                "capacity_pct": None if not cap else round(100.0 * book.count / cap, 2),
                "trend": trend(book.count, book.previous).direction,
                "at": rt.state.last_frame_time,
            }
        )
    return {"camera_id": rt.camera_id, "zones": zones, "lag_s": lag_s(rt)}


@app.page("/footfall/cameras/")
class OwnedCameras(View):
    """The cameras this worker owns, with last frame time and lag."""

    async def get(self, request: Request) -> Response:
        principal = await caller(self, request)
        if not isinstance(principal, Principal):  # the refusal
            return principal
        now = time.time()
        mine = [rt for cam, rt in sorted(counter.cameras.items()) if sees(principal, cam)]
        return self.json(
            {
                "worker": str(app.conf.canonical_url),
                "cameras": [camera_summary(rt, now) for rt in mine],
                "stats": counter.stats() if principal.role == "superadmin" else None,
            }
        )


@app.page("/footfall/cameras/{camera_id}/")
class CameraView(View):
    async def get(self, request: Request, camera_id: str) -> Response:
        return await routed(self, request, camera_id, camera_summary)


@app.page("/footfall/cameras/{camera_id}/counts/")
class CountsView(View):
    async def get(self, request: Request, camera_id: str) -> Response:
        at_text = request.query.get("at")
        try:
            at = None if at_text is None else float(at_text)
        except ValueError:
            return self.json({"error": f"at: expected epoch seconds, got {at_text!r}"}, status=400)
        return await routed(self, request, camera_id, lambda rt: counts_view(rt, at))


@app.page("/footfall/cameras/{camera_id}/occupancy/")
class OccupancyView(View):
    async def get(self, request: Request, camera_id: str) -> Response:
        return await routed(self, request, camera_id, occupancy_view)


@app.page("/footfall/configs/")
class Configs(View):
    """The camera configurations this worker holds (its own partitions and standbys)."""

    async def get(self, request: Request) -> Response:
        principal = await caller(self, request)
        if not isinstance(principal, Principal):  # the refusal
            return principal
        out = {}
        for key, raw in list(camera_configs.data.items()):
            try:
                cfg = parse(CameraConfig, raw)
            except SchemaError as exc:
                if principal.role == "superadmin":
                    out[key.decode(errors="replace")] = {"error": str(exc)}
                continue
            if not principal.may_act_in(cfg.tenant):
                continue
            out[cfg.camera_id] = {
                "lines": [line.line_id for line in cfg.lines],
                "zones": [z.zone_id for z in cfg.zones],
                "updated_at": cfg.updated_at,
            }
        return self.json({"worker": str(app.conf.canonical_url), "configs": out})
