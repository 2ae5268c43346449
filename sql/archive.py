"""Hot, warm, cold: raw events leave the database as Parquet before their chunks are dropped.

    python -m sql.archive run [--hot-days N] [--archive URL] [--since DATE] [--until DATE] [--table T]
    python -m sql.archive restore --table crossing_events --day 2026-10-01 [--tenant mall] [--archive URL]

``run`` (daily, from cron or a Kubernetes CronJob; it replaces the TimescaleDB retention policies
that migration 013 removed from the raw hypertables of :data:`sql.catalog.RAW`):

1. compresses chunks older than ``lifecycle.compress_after_days`` that are not compressed yet (what
   the compression policies of 002/007 do where background jobs run; PGlite runs none);
2. for every chunk of a raw hypertable whose range ends more than ``lifecycle.hot_days`` ago,
   oldest first: writes its rows as Parquet under ``lifecycle.archive_url``::

       tenant=<tenant_id>/table=<hypertable>/day=<YYYY-MM-DD>/part-<chunk>.parquet

   (``tenant=_none`` for rows whose camera is not in ``cameras``; no tenant id can start with
   ``_``), reads the files' row counts back and checks they account for every row of the chunk;
3. materializes the aggregates over the chunk's range (``sql.refresh.covering_windows``), so the
   counts outlive the raw rows for years;
4. drops the chunk (``drop_chunks`` on exactly its range) in a transaction that locks it and counts
   its rows again: a row written since step 2 leaves the chunk for the next run.

A rerun after a crash rewrites the same ``part-<chunk>`` files. Rows already archived by another
part of the same day (a day restored and archived again) are not written twice.

``restore`` loads one archived day of one table back (every tenant, or ``--tenant``), with
``ON CONFLICT DO NOTHING``, so it is idempotent; the aggregates already hold that day. The day is
archived (and dropped) again by the next ``run``.

The archive is a directory or any URI ``pyarrow.fs`` opens (``s3://bucket/prefix?region=...``,
credentials from the usual ``AWS_*`` variables; ``&endpoint_override=host:port&scheme=http`` for
S3-compatible stores such as MinIO): pyarrow's own filesystems, so no fsspec/s3fs is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import AsyncConnection, sql

from sql import catalog, parquet
from sql.refresh import covering_windows, run_plan, watermarks

NO_TENANT = "_none"


# --------------------------------------------------------------------------- layout


def open_archive(url: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a directory or a ``pyarrow.fs`` URI such as ``s3://bucket/prefix``.

    >>> fs, base = open_archive("/tmp/footfall-archive")
    >>> type(fs).__name__, base
    ('LocalFileSystem', '/tmp/footfall-archive')
    """
    if "://" not in url:
        url = str(Path(url).expanduser().resolve())
        Path(url).mkdir(parents=True, exist_ok=True)
    fs, base = pafs.FileSystem.from_uri(url)
    return fs, base.rstrip("/")


def partition(base: str, tenant: str | None, table: str, day: date | str) -> str:
    """The directory of one tenant's rows of one table on one UTC day.

    >>> partition("/a", None, "crossing_events", date(2026, 10, 1))
    '/a/tenant=_none/table=crossing_events/day=2026-10-01'
    """
    day = day.isoformat() if isinstance(day, date) else day
    return f"{base}/tenant={tenant or NO_TENANT}/table={table}/day={day}"


def _files(fs: pafs.FileSystem, path: str, recursive: bool = False) -> list[str]:
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
    found = fs.get_file_info(selector)
    return sorted(i.path for i in found if i.type == pafs.FileType.File and i.path.endswith(".parquet"))


def _dirs(fs: pafs.FileSystem, path: str) -> list[str]:
    selector = pafs.FileSelector(path, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.Directory)


def _rows_in(fs: pafs.FileSystem, path: str) -> int:
    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def _read(fs: pafs.FileSystem, paths: Sequence[str], columns: list[str] | None = None) -> pa.Table | None:
    tables = [pq.read_table(p, filesystem=fs, columns=columns) for p in paths]
    return pa.concat_tables(tables, promote_options="default") if tables else None


# --------------------------------------------------------------------------- run


@dataclass
class ChunkResult:
    table: str
    chunk: str
    start: str
    end: str
    rows: int = 0  # rows in the chunk
    written: int = 0  # rows written to the archive by this run
    already: int = 0  # rows another part of the same day already held
    files: list[str] = field(default_factory=list)
    status: str = "pending"  # dropped | kept: <why>


async def _chunks(
    conn: AsyncConnection, tables: Sequence[str], before: datetime, since: datetime | None, compressed: bool | None
) -> list[tuple[str, str, str, datetime, datetime]]:
    cur = await conn.execute(
        """SELECT hypertable_name, chunk_schema, chunk_name, range_start, range_end
           FROM timescaledb_information.chunks
           WHERE hypertable_schema = current_schema() AND hypertable_name = ANY(%(tables)s)
             AND range_end <= %(before)s AND (%(since)s::timestamptz IS NULL OR range_start >= %(since)s)
             AND (%(compressed)s::boolean IS NULL OR is_compressed = %(compressed)s)
           ORDER BY range_start, hypertable_name""",
        {"tables": list(tables), "before": before, "since": since, "compressed": compressed},
    )
    return list(await cur.fetchall())


async def compress_old(
    conn: AsyncConnection, before: datetime, since: datetime | None = None, tables: Sequence[str] | None = None
) -> list[str]:
    """Compress the raw hypertables' chunks that end before ``before`` and are not compressed yet."""
    done = []
    tables = tables or [r.name for r in catalog.RAW]
    for _table, schema, chunk, _start, _end in await _chunks(conn, tables, before, since, False):
        name = f"{sql.Identifier(schema).as_string(conn)}.{sql.Identifier(chunk).as_string(conn)}"
        await conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (name,))
        done.append(name)
    return done


def _split(batch: pa.RecordBatch) -> dict[tuple[str, str], pa.Table]:
    """Rows of ``batch`` per (tenant, day), without those two columns."""
    table = pa.Table.from_batches([batch])
    data = table.drop_columns(["__tenant", "__day"])
    out = {}
    for key in table.select(["__tenant", "__day"]).group_by(["__tenant", "__day"]).aggregate([]).to_pylist():
        mask = pc.and_(pc.equal(table["__tenant"], key["__tenant"]), pc.equal(table["__day"], key["__day"]))
        out[(key["__tenant"], key["__day"])] = data.filter(mask)
    return out


class _PartWriter:
    """The files one chunk's rows go to (one per tenant and day), skipping rows that other parts
    of the same day already hold."""

    def __init__(self, fs: pafs.FileSystem, base: str, table: str, chunk: str, arrow_schema: pa.Schema, key: list[str]):
        self.fs, self.base, self.table, self.chunk = fs, base, table, chunk
        self.schema, self.key = arrow_schema, key
        self.writers: dict[tuple[str, str], tuple[pq.ParquetWriter, str]] = {}
        self.existing: dict[tuple[str, str], pa.Table | None] = {}
        self.written = self.already = 0

    def write(self, batch: pa.RecordBatch) -> None:
        for (tenant, day), rows in _split(batch).items():
            known = self._existing(tenant, day)
            if known is not None and known.num_rows:
                fresh = rows.join(known, keys=self.key, join_type="left anti").select(self.schema.names)
                self.already += rows.num_rows - fresh.num_rows
                rows = fresh
            if rows.num_rows:
                self._writer(tenant, day).write_table(rows.cast(self.schema))
                self.written += rows.num_rows

    def _final(self, tenant: str, day: str) -> str:
        return f"{partition(self.base, tenant, self.table, day)}/part-{self.chunk}.parquet"

    def _existing(self, tenant: str, day: str) -> pa.Table | None:
        if (tenant, day) not in self.existing:
            here = _files(self.fs, partition(self.base, tenant, self.table, day))
            others = [p for p in here if p != self._final(tenant, day)]
            self.existing[(tenant, day)] = _read(self.fs, others, self.key)
        return self.existing[(tenant, day)]

    def _writer(self, tenant: str, day: str) -> pq.ParquetWriter:
        if (tenant, day) not in self.writers:
            self.fs.create_dir(partition(self.base, tenant, self.table, day), recursive=True)
            tmp = self._final(tenant, day) + f".{uuid.uuid4().hex[:8]}.tmp"
            writer = pq.ParquetWriter(tmp, self.schema, filesystem=self.fs, compression="zstd")
            self.writers[(tenant, day)] = (writer, tmp)
        return self.writers[(tenant, day)][0]

    def close(self) -> list[str]:
        """Close the files and move them to their final names; returns those names."""
        final = []
        for (tenant, day), (writer, tmp) in self.writers.items():
            writer.close()
            path = self._final(tenant, day)
            self.fs.move(tmp, path)
            final.append(path)
        return final


async def _primary_key(conn: AsyncConnection, table: str) -> list[str]:
    cur = await conn.execute(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)""",
        (table,),
    )
    return [row[0] for row in await cur.fetchall()]


async def archive_chunk(
    conn: AsyncConnection,
    fs: pafs.FileSystem,
    base: str,
    table: str,
    chunk: tuple[str, str],
    start: datetime,
    end: datetime,
    now: datetime,
) -> ChunkResult:
    """Archive one chunk (``chunk``: its schema and name, covering ``start..end`` of ``table``),
    verify, materialize the aggregates over its range, drop it. ``conn`` in autocommit."""
    rel = catalog.relation(table)
    res = ChunkResult(table, chunk[1], start.isoformat(), end.isoformat())
    name = sql.Identifier(table)
    cols = await parquet.columns(conn, name)
    key = await _primary_key(conn, table)
    params = {"start": start, "end": end}
    where = sql.SQL("{t} >= %(start)s AND {t} < %(end)s").format(t=sql.Identifier("t", rel.time))
    query = sql.SQL(
        "SELECT {cols}, coalesce({tenant}, {none}) AS __tenant, to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS __day "
        "FROM {name} AS t WHERE {where}"
    ).format(
        cols=parquet.select_list(cols), tenant=catalog.tenant_of(rel), none=sql.Literal(NO_TENANT),
        t=sql.Identifier("t", rel.time), name=name, where=where,
    )  # fmt: skip
    read_schema = parquet.schema(cols).append(pa.field("__tenant", pa.string())).append(pa.field("__day", pa.string()))
    parts = _PartWriter(fs, base, table, chunk[1], parquet.schema(cols), key)
    try:
        async with conn.transaction(), conn.cursor(name=f"archive_{uuid.uuid4().hex[:12]}") as cur:
            count = await conn.execute(sql.SQL("SELECT count(*) FROM {} AS t WHERE {}").format(name, where), params)
            res.rows = (await count.fetchone())[0]
            await cur.execute(query, params)
            while rows := await cur.fetchmany(parquet.BATCH_ROWS):
                await asyncio.to_thread(parts.write, parquet.to_batch(rows, read_schema))
    finally:
        res.files = await asyncio.to_thread(parts.close)
    res.written, res.already = parts.written, parts.already
    on_disk = sum([await asyncio.to_thread(_rows_in, fs, p) for p in res.files])
    if on_disk != res.written or res.written + res.already != res.rows:
        res.status = f"kept: the archive holds {on_disk} + {res.already} rows of {res.rows}"
        return res
    cur = await conn.execute(sql.SQL("SELECT min({}) FROM {}").format(sql.Identifier(rel.time), name))
    oldest = {table: (await cur.fetchone())[0]}
    await run_plan(conn, covering_windows([table], start, end, await watermarks(conn), now, oldest))
    async with conn.transaction():
        target = sql.SQL("{}.{}").format(sql.Identifier(chunk[0]), sql.Identifier(chunk[1]))
        await conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(target))
        count = await conn.execute(sql.SQL("SELECT count(*) FROM {} AS t WHERE {}").format(name, where), params)
        now_rows = (await count.fetchone())[0]
        if now_rows != res.rows:
            res.status = f"kept: {now_rows - res.rows:+d} rows since it was read; archived again by the next run"
            return res
        cur = await conn.execute(
            "SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz, newer_than => %s::timestamptz)",
            (table, end, start),
        )
        dropped = [row[0] for row in await cur.fetchall()]
    res.status = "dropped" if dropped else "kept: drop_chunks dropped nothing"
    return res


@dataclass
class RunReport:
    archive: str
    hot_before: str
    compressed: list[str] = field(default_factory=list)
    chunks: list[ChunkResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows_archived"] = sum(c.rows for c in self.chunks if c.status == "dropped")
        return data


async def run(
    conn: AsyncConnection,
    archive_url: str,
    hot_days: int,
    compress_after_days: int,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tables: Sequence[str] | None = None,
) -> RunReport:
    """Compress, archive and drop what is older than the lifecycle allows (module docstring).
    ``since``/``until``/``tables`` narrow it (chunks starting at or after ``since`` and ending at
    or before ``until``; some raw tables only). ``conn`` in autocommit."""
    now = now or datetime.now(UTC)
    tables = list(tables or [r.name for r in catalog.RAW])
    unknown = set(tables) - {r.name for r in catalog.RAW}
    if unknown:
        raise ValueError(f"not raw hypertables: {sorted(unknown)} (archived: {[r.name for r in catalog.RAW]})")
    fs, base = open_archive(archive_url)
    hot_before = now - timedelta(days=hot_days)
    compress_before = now - timedelta(days=compress_after_days)
    if until is not None:
        hot_before, compress_before = min(hot_before, until), min(compress_before, until)
    report = RunReport(archive_url, hot_before.isoformat())
    report.compressed = await compress_old(conn, compress_before, since, tables)
    for table, schema, chunk, start, end in await _chunks(conn, tables, hot_before, since, None):
        report.chunks.append(await archive_chunk(conn, fs, base, table, (schema, chunk), start, end, now))
    return report


async def restore(
    conn: AsyncConnection, archive_url: str, table: str, day: date, tenant: str | None = None
) -> dict[str, int]:
    """Load one archived day of ``table`` back (every tenant, or one); idempotent. Returns the rows
    in the archive and those inserted (the others were there already)."""
    rel = catalog.relation(table)
    if not rel.raw:
        raise ValueError(f"{table} is not archived (raw hypertables: {[r.name for r in catalog.RAW]})")
    fs, base = open_archive(archive_url)
    tenants = [f"{base}/tenant={tenant}"] if tenant else _dirs(fs, base)
    paths = [p for t in tenants for p in _files(fs, f"{t}/table={table}/day={day.isoformat()}")]
    data = await asyncio.to_thread(_read, fs, paths)
    if data is None:
        return {"files": 0, "rows": 0, "inserted": 0}
    async with conn.transaction():
        inserted = await parquet.load(conn, sql.Identifier(table), data)
    return {"files": len(paths), "rows": data.num_rows, "inserted": inserted}


# --------------------------------------------------------------------------- erasure


def erase_archived(archive_url: str, tenant: str | None = None, camera_id: str | None = None) -> dict[str, int]:
    """Remove a tenant's archive (``tenant`` alone) or a camera's rows from it (rewriting each file
    that holds some; every tenant's files when ``tenant`` is None). Returns rows removed per table."""
    if not tenant and not camera_id:
        raise ValueError("name a tenant or a camera")
    fs, base = open_archive(archive_url)
    removed: dict[str, int] = {}
    tenants = [f"{base}/tenant={tenant}"] if tenant else _dirs(fs, base)
    for tdir in tenants:
        for path in _files(fs, tdir, recursive=True):
            table = path.split("/table=", 1)[1].split("/", 1)[0]
            if camera_id is None:
                n = _rows_in(fs, path)
                fs.delete_file(path)
            else:
                data = pq.read_table(path, filesystem=fs)
                keep = data.filter(pc.invert(pc.fill_null(pc.equal(data["camera_id"], camera_id), False)))
                n = data.num_rows - keep.num_rows
                if n and keep.num_rows:
                    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
                    pq.write_table(keep, tmp, filesystem=fs, compression="zstd")
                    fs.move(tmp, path)
                elif n:
                    fs.delete_file(path)
            if n:
                removed[table] = removed.get(table, 0) + n
        if camera_id is None and fs.get_file_info(tdir).type == pafs.FileType.Directory:
            fs.delete_dir(tdir)
    return removed


# --------------------------------------------------------------------------- command line


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, datetime.min.time(), UTC) if day else None


def main(argv: Sequence[str] | None = None) -> int:
    from core.settings import get_settings

    s = get_settings().lifecycle
    ap = argparse.ArgumentParser(prog="python -m sql.archive", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="compress, archive and drop old chunks of the raw hypertables")
    r.add_argument("--hot-days", type=int, default=s.hot_days)
    r.add_argument("--compress-after-days", type=int, default=s.compress_after_days)
    r.add_argument("--since", type=date.fromisoformat, default=None, help="only chunks from this day on")
    r.add_argument("--until", type=date.fromisoformat, default=None, help="only chunks ending by this day")
    r.add_argument("--table", action="append", default=None, help="only this raw table (repeatable)")
    b = sub.add_parser("restore", help="load an archived day back")
    b.add_argument("--table", required=True)
    b.add_argument("--day", required=True, type=date.fromisoformat)
    b.add_argument("--tenant", default=None)
    for p in (r, b):
        p.add_argument("--archive", default=s.archive_url, help=f"directory or URI (default {s.archive_url})")
        p.add_argument("--dsn", default=None, help="database URL (default: FOOTFALL_DATABASE__URL / settings)")
    args = ap.parse_args(argv)
    dsn = args.dsn or get_settings().database.url.get_secret_value()

    async def go() -> dict[str, Any]:
        async with await AsyncConnection.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            if args.command == "restore":
                return await restore(conn, args.archive, args.table, args.day, args.tenant)
            since, until = (_midnight(d) for d in (args.since, args.until))
            days = (args.hot_days, args.compress_after_days)
            report = await run(conn, args.archive, *days, since=since, until=until, tables=args.table)
            return report.to_json()

    print(json.dumps(asyncio.run(go()), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
