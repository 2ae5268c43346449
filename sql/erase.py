"""Erasure (GDPR): remove a camera's or a tenant's rows from every table and aggregate, and what
the platform keeps of them outside the database.

    python -m sql.erase camera <camera_id> --yes     # prints the report as JSON
    python -m sql.erase tenant <tenant_id> --yes
    options: --db-only (no tombstone, Redis or archive), --settle S (wait after the tombstones)

From code (``conn``: a psycopg ``AsyncConnection`` as the database owner, in autocommit)::

    report = await erase_camera(conn, camera_id)      # rows + aggregates, -> ErasureReport
    report = await erase_tenant(conn, tenant_id)

or in two steps, when the rows go in the caller's own transaction (e.g. as the writer role):
:func:`erase_camera_rows` / :func:`erase_tenant_rows` inside it, then :func:`refresh_aggregates`
outside it (as the owner of the aggregates). Outside the database: :func:`publish_tombstones`
(compacted camera-config topic: the workers drop the camera's counting state and live views, the
grabbers stop it, ``agents.push`` forgets its groups), :func:`erase_camera_redis` (its cached
occupancy snapshot) and ``sql.archive.erase_archived`` (its archived Parquet rows). The order the
command line follows: tombstones, a few seconds for the sinks to write what was in flight, rows,
aggregates, Redis, archive.

Which rows: every relation of :mod:`sql.catalog` (by ``camera_id``, or ``tenant_id`` for a
tenant's reference tables and alerts) except the audit log, which is append-only (012) and keeps
the record of the erasure itself. Aggregates: the subject's materialized rows are deleted from
each aggregate's materialization hypertable (that covers history whose raw rows were already
archived), then the materialized part of the time ranges the deleted raw rows spanned is refreshed
bottom-up (``sql.refresh.changed_windows``), so the watermarks do not move. Rows of a camera whose
``cameras`` row was already deleted without erasure cannot be attributed to its tenant any more:
erase such a camera by id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql

from sql import catalog
from sql.refresh import changed_windows, run_plan, watermarks


@dataclass
class ErasureReport:
    """What an erasure removed: rows per relation (aggregates: materialized rows)."""

    subject: str  # "camera:<id>" or "tenant:<id>"
    cameras: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    # raw hypertable -> (first, last) time of the rows deleted: the aggregate ranges to refresh
    changes: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    refreshed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["changes"] = {k: [a.isoformat(), b.isoformat()] for k, (a, b) in self.changes.items()}
        data["total"] = sum(self.rows.values())
        return data


def _condition(rel: catalog.Relation, by: str) -> sql.Composable:
    if by == "camera":
        return sql.SQL("camera_id = ANY(%(cameras)s)")
    if rel.via == "camera":
        return sql.SQL("camera_id = ANY(%(cameras)s)")
    if rel.camera:  # cameras, alerts: their tenant, and anything of its cameras
        return sql.SQL("(tenant_id = %(tenant)s OR camera_id = ANY(%(cameras)s))")
    return sql.SQL("tenant_id = %(tenant)s")


async def _delete(conn: AsyncConnection, report: ErasureReport, by: str, params: dict[str, Any]) -> None:
    rels = [
        r
        for r in reversed(catalog.RELATIONS)
        if r.kind != "aggregate" and not r.append_only and (by == "tenant" or r.camera)
    ]
    here = await catalog.present(conn, [r.name for r in rels])
    async with conn.transaction():
        for rel in rels:
            if rel.name not in here:
                continue
            when = sql.Identifier(rel.time) if rel.time else sql.SQL("NULL::timestamptz")
            cur = await conn.execute(
                sql.SQL(
                    "WITH d AS (DELETE FROM {} WHERE {} RETURNING {} AS t) SELECT count(*), min(t), max(t) FROM d"
                ).format(sql.Identifier(rel.name), _condition(rel, by), when),
                params,
            )
            n, first, last = await cur.fetchone()
            report.rows[rel.name] = n
            if rel.raw and n:
                report.changes[rel.name] = (first, last)


async def erase_camera_rows(conn: AsyncConnection, camera_id: str) -> ErasureReport:
    """Delete the camera's rows from every table (in the caller's transaction, or one of its own)."""
    report = ErasureReport(f"camera:{camera_id}", [camera_id])
    await _delete(conn, report, "camera", {"cameras": [camera_id]})
    return report


async def erase_tenant_rows(conn: AsyncConnection, tenant_id: str) -> ErasureReport:
    """Delete the tenant's rows from every table: its cameras' history, reference rows, the
    tenant row itself (in the caller's transaction, or one of its own)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT camera_id FROM cameras WHERE tenant_id = %s ORDER BY camera_id", (tenant_id,))
        cameras = [row[0] for row in await cur.fetchall()]
        report = ErasureReport(f"tenant:{tenant_id}", cameras)
        await _delete(conn, report, "tenant", {"tenant": tenant_id, "cameras": cameras})
    return report


async def refresh_aggregates(
    conn: AsyncConnection, report: ErasureReport, now: datetime | None = None
) -> ErasureReport:
    """Bring the aggregates in line with ``report``'s deletions: delete its cameras' materialized
    rows, then refresh the materialized part of the ranges its raw rows spanned, bottom-up.
    ``conn`` in autocommit, as the aggregates' owner (the ``CALL`` refuses a transaction block)."""
    views = [r.name for r in catalog.RELATIONS if r.kind == "aggregate"]
    here = await catalog.present(conn, views)
    if report.cameras:
        async with conn.transaction():
            for view in views:
                if view in here:
                    table = await catalog.materialization(conn, view)
                    cur = await conn.execute(
                        sql.SQL("DELETE FROM {} WHERE camera_id = ANY(%s)").format(table), (report.cameras,)
                    )
                    report.rows[view] = max(cur.rowcount, 0)
    plan = changed_windows(report.changes, await watermarks(conn), now or datetime.now(UTC))
    report.refreshed += await run_plan(conn, plan)
    return report


async def erase_camera(conn: AsyncConnection, camera_id: str) -> ErasureReport:
    """Every row of the camera, in tables and aggregates (``conn`` in autocommit, as the owner)."""
    return await refresh_aggregates(conn, await erase_camera_rows(conn, camera_id))


async def erase_tenant(conn: AsyncConnection, tenant_id: str) -> ErasureReport:
    """Every row of the tenant, in tables and aggregates (``conn`` in autocommit, as the owner)."""
    return await refresh_aggregates(conn, await erase_tenant_rows(conn, tenant_id))


# --------------------------------------------------------------------------- outside the database


async def erase_camera_redis(redis: Any, prefix: str, camera_id: str) -> int:
    """Delete what Redis holds of the camera (its cached occupancy snapshot; pub/sub channels
    hold nothing). ``redis``: a ``redis.asyncio.Redis``; returns the keys deleted. A grabber's
    lease key (``streams.lease``) names only the grabber and expires by itself once the tombstone
    has stopped the camera."""
    from api.live import snapshot_key

    return int(await redis.delete(snapshot_key(prefix, camera_id)))


def publish_tombstones(camera_ids: Iterable[str], settings: Any = None) -> int:
    """Publish a tombstone (null value) per camera on the compacted camera-config topic, acknowledged
    by the broker: the workers drop the camera's counting state and live views, the grabbers stop
    it, and compaction eventually removes its configuration from the topic."""
    from api.app import ConfigPublisher
    from core.settings import get_settings

    publisher = ConfigPublisher(settings or get_settings())
    n = 0
    try:
        for camera_id in camera_ids:
            publisher.publish(camera_id, None)
            n += 1
    finally:
        publisher.close()
    return n


# --------------------------------------------------------------------------- command line


async def _tenant_cameras(dsn: str, tenant_id: str) -> list[str]:
    async with await AsyncConnection.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        cur = await conn.execute("SELECT camera_id FROM cameras WHERE tenant_id = %s", (tenant_id,))
        return [row[0] for row in await cur.fetchall()]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from core.settings import get_settings
    from sql.archive import erase_archived

    s = get_settings()
    dsn = args.dsn or s.database.url.get_secret_value()
    out: dict[str, Any] = {}
    if not args.db_only:
        cameras = [args.id] if args.what == "camera" else await _tenant_cameras(dsn, args.id)
        out["tombstones"] = await asyncio.to_thread(publish_tombstones, cameras, s)
        await asyncio.sleep(args.settle)  # the sinks write what the workers had already sent
    async with await AsyncConnection.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        report = await (erase_camera if args.what == "camera" else erase_tenant)(conn, args.id)
    out.update(report.to_json())
    if not args.db_only:
        redis = aioredis.Redis.from_url(s.redis.url.get_secret_value(), socket_timeout=5)
        try:
            out["redis_keys"] = sum([await erase_camera_redis(redis, s.kafka.topic_prefix, c) for c in report.cameras])
        finally:
            await redis.aclose()
        who = {"tenant": args.id} if args.what == "tenant" else {"camera_id": args.id}
        out["archive"] = await asyncio.to_thread(erase_archived, s.lifecycle.archive_url, **who)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sql.erase", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["camera", "tenant"])
    ap.add_argument("id", help="camera_id or tenant_id")
    ap.add_argument("--yes", action="store_true", help="really erase (there is no undo)")
    ap.add_argument("--db-only", action="store_true", help="only the database: no tombstone, Redis or archive")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the tombstones (default 3)")
    ap.add_argument("--dsn", default=None, help="database URL (default: FOOTFALL_DATABASE__URL / settings)")
    args = ap.parse_args(argv)
    if not args.yes:
        print(f"this erases every row of {args.what} {args.id!r} for good; repeat with --yes", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(_run(args)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
