"""Export a tenant's data as Parquet: one file per relation of :mod:`sql.catalog` (reference
tables, hypertables, the audit log and the continuous aggregates), ``<out>/<relation>.parquet``.

    python -m sql.export --tenant mall --out /tmp/mall-export     # prints {relation: rows}

From code: ``await export_tenant(conn, tenant_id, out_dir) -> dict[relation, rows]`` (``conn``: a
psycopg ``AsyncConnection``; the files are read in one transaction, so they agree with each other).
Secrets are left out (``Relation.private``: the encrypted stream password, API key hashes).
Raw events already archived (``sql.archive``) are not in the database any more: they are in the
archive, under ``tenant=<tenant_id>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from psycopg import AsyncConnection, sql

from sql import catalog, parquet


async def export_tenant(conn: AsyncConnection, tenant_id: str, out_dir: Path | str) -> dict[str, int]:
    """Write every relation of the tenant as ``<out_dir>/<relation>.parquet``; returns rows per relation."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    async with conn.transaction():
        here = await catalog.present(conn, [r.name for r in catalog.RELATIONS])
        for rel in catalog.RELATIONS:
            if rel.name not in here:
                continue
            name = sql.Identifier(rel.name)
            cols = [c for c in await parquet.columns(conn, name) if c.name not in rel.private]
            order = sql.SQL(" ORDER BY {}").format(sql.Identifier(rel.time)) if rel.time else sql.SQL("")
            query = sql.SQL("SELECT {} FROM {} AS t WHERE {}{}").format(
                parquet.select_list(cols), name, catalog.tenant_filter(rel), order
            )
            counts[rel.name] = await parquet.write_query(
                conn, query, {"tenant": tenant_id}, cols, out / f"{rel.name}.parquet"
            )
    return counts


async def _run(dsn: str, tenant_id: str, out_dir: Path) -> dict[str, int]:
    async with await AsyncConnection.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        return await export_tenant(conn, tenant_id, out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    from core.settings import get_settings

    ap = argparse.ArgumentParser(prog="python -m sql.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--out", required=True, type=Path, help="directory for the Parquet files")
    ap.add_argument("--dsn", default=None, help="database URL (default: FOOTFALL_DATABASE__URL / settings)")
    args = ap.parse_args(argv)
    dsn = args.dsn or get_settings().database.url.get_secret_value()
    print(json.dumps(asyncio.run(_run(dsn, args.tenant, args.out)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
