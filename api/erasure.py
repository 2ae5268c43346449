"""What the API does outside its request transaction when a tenant's data goes or leaves.

Erasure (``sql.erase``): the caller has already removed the configuration and published the
camera tombstones (the workers drop the cameras' state and live views); after the sinks have
written what was in flight, every row of the cameras goes from every table and aggregate (as the
writer role, then the aggregates refreshed by the connection's own role, which owns them), then
Redis and the archive. Export (``sql.export``): Parquet, one file per table, zipped. Each runs on a
connection of its own (tuple rows, autocommit), not the request's.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection

from sql.roles import set_role

log = logging.getLogger(__name__)

# What the workers had already sent before the tombstone reaches the database within this (the
# sinks flush every second); the same wait as `python -m sql.erase`.
SETTLE_S = 3.0


async def _connect(state: Any) -> AsyncConnection:
    dsn = state.settings.database.url.get_secret_value()
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=None, connect_timeout=10)


async def _erase(state: Any, tenant: str | None, cameras: list[str]) -> dict[str, int]:
    from sql import erase
    from sql.archive import erase_archived

    await asyncio.sleep(SETTLE_S)
    async with await _connect(state) as conn:
        async with conn.transaction():
            await conn.execute(set_role(state.settings.database.writer_role))
            if tenant is not None:
                report = await erase.erase_tenant_rows(conn, tenant)
            else:
                (camera,) = cameras
                report = await erase.erase_camera_rows(conn, camera)
        await erase.refresh_aggregates(conn, report)
    for camera in cameras:
        await erase.erase_camera_redis(state.redis, state.settings.kafka.topic_prefix, camera)
    archive_url = state.settings.lifecycle.archive_url
    if tenant is not None:
        archived = await asyncio.to_thread(erase_archived, archive_url, tenant=tenant)
    else:
        archived = await asyncio.to_thread(erase_archived, archive_url, camera_id=cameras[0])
    log.info("erased %s: %s rows in the database, %s archived", tenant or cameras[0], report.rows, archived)
    return dict(report.rows)


async def erase_camera(state: Any, camera_id: str) -> dict[str, int]:
    """Every row of ``camera_id`` (its config row and tombstone are the caller's)."""
    return await _erase(state, None, [camera_id])


async def erase_tenant(state: Any, tenant_id: str, cameras: list[str]) -> dict[str, int]:
    """Tombstone every camera of the tenant (the workers drop their state), then erase its rows,
    its principals and the tenant itself (the audit log keeps its rows)."""
    for camera_id in cameras:
        await asyncio.to_thread(state.publisher.publish, camera_id, None)
    return await _erase(state, tenant_id, cameras)


async def export_zip(state: Any, tenant_id: str) -> bytes:
    """The tenant's data as one Parquet file per table, zipped (pyarrow is imported here only)."""
    from sql import export

    with tempfile.TemporaryDirectory(prefix="footfall-export-") as tmp:
        async with await _connect(state) as conn, conn.transaction():
            await conn.execute(set_role(state.settings.database.writer_role))
            await export.export_tenant(conn, tenant_id, Path(tmp))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(tmp).as_posix())
        return buf.getvalue()


async def publish_rules(state: Any, conn: AsyncConnection, rule_ids: list[str]) -> None:
    """Publish rules just stored (a new tenant's copies of the built-in rules) to the workers."""
    if not rule_ids:
        return
    from api.routes.alerts import load_rules

    for rule in await load_rules(conn):
        if rule.rule_id in rule_ids:
            await asyncio.to_thread(state.publisher.publish, rule.rule_id, rule.to_json(), "alert-rules")
