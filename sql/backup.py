"""Consistent backups without pg_dump (which PGlite cannot serve), restorable into an empty database.

    python -m sql.backup create DIR [--dsn DSN] [--schema NAME]
    python -m sql.backup restore DIR --dsn <empty database>

``create`` reads, in ONE ``REPEATABLE READ READ ONLY`` transaction (one snapshot, so every file
agrees with every other):

* every table of the schema (reference tables and hypertables; not ``schema_migrations``) as
  ``DIR/tables/<table>.parquet``;
* every continuous aggregate's materialized rows as ``DIR/aggregates/<view>.parquet``: the only
  copy of the history whose raw rows were archived (``sql.archive``);
* ``DIR/manifest.json``: the migrations applied (version, name, checksum from ``sql.migrate``'s
  history), row counts per file, server and TimescaleDB versions.

On PGlite that transaction holds the one server session for the length of the backup (other
clients wait in pgbouncer's queue, up to its ``query_wait_timeout``, 60 s locally).

``restore`` refuses a database that has tables in ``public`` already. It checks that every
migration of the manifest is in this checkout unchanged, applies the migrations up to the
backup's version (``sql.migrate``; later ones are applied by ``python -m sql.migrate up`` as usual),
replaces the rows the migrations seeded (the default tenant, the built-in alert rules) with the
backup's, loads every table (parents first), then per aggregate, bottom-up, its materialized rows
as they were (its watermark set to their end) and a refresh from there to the last complete
bucket, and compares every table's row count with the manifest.

For a second database on the local stack (PGlite has one database per process; ``CREATE DATABASE``
succeeds but no client can connect to it), start another PGlite on its own port and restore into it::

    node infra/local/pglite-server.mjs --data /tmp/restore-db --port 5440 &
    python -m sql.backup restore DIR --dsn 'postgresql://postgres:x@127.0.0.1:5440/postgres?sslmode=disable'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from psycopg import AsyncConnection, sql

from sql import migrate as migrations
from sql import parquet
from sql.refresh import AGGREGATES, covering_windows, root, run_plan, watermarks

FORMAT = 1


class BackupError(Exception):
    """The backup cannot be restored here (target not empty, migrations differ, counts differ)."""


async def _tables(conn: AsyncConnection, schema: str) -> list[str]:
    cur = await conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname <> %s ORDER BY c.relname""",
        (schema, migrations.HISTORY_TABLE),
    )
    return [row[0] for row in await cur.fetchall()]


async def _aggregates(conn: AsyncConnection, schema: str) -> dict[str, sql.Composed]:
    cur = await conn.execute(
        """SELECT view_name, materialization_hypertable_schema, materialization_hypertable_name
           FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s""",
        (schema,),
    )
    return {v: sql.SQL("{}.{}").format(sql.Identifier(s), sql.Identifier(t)) for v, s, t in await cur.fetchall()}


async def create(conn: AsyncConnection, out_dir: Path | str, schema: str = "public") -> dict[str, Any]:
    """Write a consistent backup of ``schema`` into ``out_dir``; returns the manifest."""
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "aggregates").mkdir(exist_ok=True)
    manifest: dict[str, Any] = {"format": FORMAT, "schema": schema, "tables": {}, "aggregates": {}}
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur = await conn.execute(
            "SELECT now(), version(), (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
        )
        created_at, server, timescaledb = await cur.fetchone()
        manifest.update(created_at=created_at.isoformat(), server=server, timescaledb=timescaledb)
        cur = await conn.execute(
            sql.SQL("SELECT version, name, checksum FROM {}.{} ORDER BY version").format(
                sql.Identifier(schema), sql.Identifier(migrations.HISTORY_TABLE)
            )
        )
        manifest["migrations"] = [{"version": v, "name": n, "checksum": c} for v, n, c in await cur.fetchall()]
        for table in await _tables(conn, schema):
            name = sql.Identifier(schema, table)
            manifest["tables"][table] = await _dump(conn, name, out / "tables" / f"{table}.parquet")
        for view, mat in (await _aggregates(conn, schema)).items():
            manifest["aggregates"][view] = await _dump(conn, mat, out / "aggregates" / f"{view}.parquet")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


async def _dump(conn: AsyncConnection, relation: sql.Composable, path: Path) -> int:
    cols = await parquet.columns(conn, relation)
    query = sql.SQL("SELECT {} FROM {} AS t").format(parquet.select_list(cols), relation)
    return await parquet.write_query(conn, query, None, cols, path)


# --------------------------------------------------------------------------- restore


def check_migrations(manifest: dict[str, Any], directory: Path | str | None = None) -> int:
    """The backup's migration version, after checking that each of its migrations is in this
    checkout with the same checksum."""
    here = {m.version: m for m in migrations.discover(directory)}
    for m in manifest["migrations"]:
        mine = here.get(m["version"])
        if mine is None or mine.checksum != m["checksum"]:
            state = "missing" if mine is None else "changed"
            raise BackupError(f"migration {m['version']:03d}_{m['name']} of the backup is {state} in this checkout")
    return max((m["version"] for m in manifest["migrations"]), default=0)


def parents_first(tables: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[str]:
    """``tables`` ordered so that every (child, parent) edge has the parent first.

    >>> parents_first(["zones", "cameras", "tenants"], [("zones", "cameras"), ("cameras", "tenants")])
    ['tenants', 'cameras', 'zones']
    """
    order: list[str] = []
    pending = sorted(tables)
    while pending:
        ready = [t for t in pending if not any(c == t and p in pending and p != t for c, p in edges)]
        if not ready:
            raise BackupError(f"foreign keys form a cycle among {pending}")
        order += ready
        pending = [t for t in pending if t not in ready]
    return order


async def _empty(conn: AsyncConnection) -> bool:
    cur = await conn.execute(
        """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"""
    )
    return (await cur.fetchone())[0] == 0


async def _earliest(conn: AsyncConnection, table: str, column: str) -> datetime | None:
    cur = await conn.execute(sql.SQL("SELECT min({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table)))
    return (await cur.fetchone())[0]


async def restore(dsn: str, in_dir: Path | str, now: datetime | None = None) -> dict[str, Any]:
    """Restore the backup in ``in_dir`` into the empty database at ``dsn`` (public schema)."""
    src = Path(in_dir)
    manifest = json.loads((src / "manifest.json").read_text())
    version = check_migrations(manifest)
    connect = {"prepare_threshold": None, "autocommit": True}
    async with await AsyncConnection.connect(dsn, **connect) as conn:
        if not await _empty(conn):
            raise BackupError("the target database has tables in public already: restore needs an empty database")
    applied = await asyncio.to_thread(migrations.migrate, dsn, target=version)
    report: dict[str, Any] = {"migrations": len(applied), "tables": {}, "aggregates": {}, "refreshed": []}
    async with await AsyncConnection.connect(dsn, **connect) as conn:
        tables = [t for t in await _tables(conn, "public") if t in manifest["tables"]]
        missing = sorted(set(manifest["tables"]) - set(tables))
        if missing:
            raise BackupError(f"tables of the backup not created by the migrations: {missing}")
        cur = await conn.execute(
            """SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
               WHERE contype = 'f' AND connamespace = 'public'::regnamespace"""
        )
        order = parents_first(tables, await cur.fetchall())
        cur = await conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        hypertables = {row[0] for row in await cur.fetchall()}
        async with conn.transaction():  # the rows the migrations seeded give way to the backup's
            for table in reversed(order):
                if table not in hypertables:
                    await conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        for table in order:
            data = await asyncio.to_thread(pq.read_table, src / "tables" / f"{table}.parquet")
            async with conn.transaction():
                report["tables"][table] = await parquet.load(conn, sql.Identifier(table), data)
        report["aggregates"], report["refreshed"] = await _aggregates_back(
            conn, src, manifest, now or datetime.now(UTC)
        )
        report["problems"] = await _compare(conn, manifest)
    if report["problems"]:
        raise BackupError("restored, but counts differ: " + "; ".join(report["problems"]))
    return report


async def _aggregates_back(
    conn: AsyncConnection, src: Path, manifest: dict[str, Any], now: datetime
) -> tuple[dict[str, int], list[str]]:
    """Bottom-up, per aggregate: load its materialized rows as they were (the only copy of history
    whose raw rows were archived, which may lie between days that still have raw rows), set its
    watermark to the end of them (TimescaleDB's own ``cagg_migrate_update_watermark``: below a
    watermark rows are read from the materialization only, as in the source), then refresh from
    the watermark (or, with nothing loaded, from the oldest raw row) to the last complete bucket."""
    from sql.catalog import relation

    cur = await conn.execute(
        "SELECT user_view_name, mat_hypertable_id FROM _timescaledb_catalog.continuous_agg"
        " WHERE user_view_schema = 'public'"
    )
    ids = dict(await cur.fetchall())
    mats = await _aggregates(conn, "public")
    loaded: dict[str, int] = {}
    refreshed: list[str] = []
    earliest: dict[str, datetime | None] = {}
    for agg in AGGREGATES:
        if agg.view not in mats:
            continue
        base = root(agg)
        if base not in earliest:
            earliest[base] = await _earliest(conn, base, relation(base).time or "at")
        if agg.view in manifest["aggregates"]:
            data = await asyncio.to_thread(pq.read_table, src / "aggregates" / f"{agg.view}.parquet")
            async with conn.transaction():
                loaded[agg.view] = await parquet.load(conn, mats[agg.view], data)
            if loaded[agg.view]:
                await conn.execute("CALL _timescaledb_functions.cagg_migrate_update_watermark(%s)", (ids[agg.view],))
        marks = await watermarks(conn)
        start = marks.get(agg.view) or earliest[base]
        if start is not None:
            plan = covering_windows([base], start, now, marks, now, earliest)
            refreshed += await run_plan(conn, [w for w in plan if w[0] == agg.view])
    return loaded, refreshed


async def _compare(conn: AsyncConnection, manifest: dict[str, Any]) -> list[str]:
    problems = []
    for table, rows in manifest["tables"].items():
        cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        got = (await cur.fetchone())[0]
        if got != rows:
            problems.append(f"{table}: {got} rows, the backup has {rows}")
    return problems


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    from core.settings import get_settings

    ap = argparse.ArgumentParser(prog="python -m sql.backup", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["create", "restore"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--dsn", default=None, help="create: default FOOTFALL_DATABASE__URL; restore: required")
    ap.add_argument("--schema", default="public", help="schema to back up (create only)")
    args = ap.parse_args(argv)
    if args.command == "restore" and not args.dsn:
        ap.error("restore needs --dsn of an empty database")
    dsn = args.dsn or get_settings().database.url.get_secret_value()

    async def go() -> dict[str, Any]:
        if args.command == "restore":
            return await restore(dsn, args.dir)
        async with await AsyncConnection.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            return await create(conn, args.dir, args.schema)

    try:
        print(json.dumps(asyncio.run(go()), indent=2, default=str))
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
