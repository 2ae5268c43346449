"""Rows of PostgreSQL relations to Parquet and back: the one conversion behind export, archive and
backup.

Types follow the relation's columns (``format_type``), so an empty table still gets a typed file
and a round trip gives back the same values: ``timestamptz`` -> timestamp[us, UTC], ``text`` and
text domains (``wire_id``) -> string, ``jsonb`` -> its JSON text, ``text[]`` -> list<string>,
``numeric(p,s)`` -> decimal128(p,s), ``uuid`` -> its text, ``bytea`` -> binary.

Reading streams through a server-side cursor (inside the caller's transaction) in batches of
:data:`BATCH_ROWS`. Loading goes through ``jsonb_populate_recordset`` (``COPY`` does not work on
PGlite): one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` per batch, typed by the target
table itself, whatever its columns' types.

>>> arrow_type("numeric(10,2)"), arrow_type("text[]"), arrow_type("wire_id", "text")
(Decimal128Type(decimal128(10, 2)), ListType(list<item: string>), DataType(string))
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import AsyncConnection, sql

BATCH_ROWS = 5000
TEXT_CAST = ("jsonb", "json", "uuid")  # read as their text

_SIMPLE: dict[str, pa.DataType] = {
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamp without time zone": pa.timestamp("us"),
    "date": pa.date32(),
    "text": pa.string(),
    "character varying": pa.string(),
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "bytea": pa.binary(),
}
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")


def arrow_type(pg_type: str, base_type: str | None = None) -> pa.DataType:
    """The Arrow type for a column of ``pg_type`` (``format_type`` text; ``base_type`` for a domain)."""
    pg_type = base_type or pg_type
    if pg_type.endswith("[]"):
        return pa.list_(arrow_type(pg_type[:-2]))
    if pg_type in _SIMPLE:
        return _SIMPLE[pg_type]
    if m := _NUMERIC.match(pg_type):
        return pa.decimal128(int(m[1]), int(m[2]))
    return pa.string()  # jsonb, uuid, numeric without a scale, anything else: its text


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str  # format_type, e.g. "numeric(10,2)", "wire_id"
    base_type: str | None  # a domain's base type

    @property
    def arrow(self) -> pa.DataType:
        return arrow_type(self.pg_type, self.base_type)

    @property
    def as_text(self) -> bool:
        """Read as text (the Arrow type is its text)."""
        return self.arrow == pa.string() and (self.base_type or self.pg_type) not in ("text", "character varying")


async def columns(conn: AsyncConnection, relation: sql.Composable) -> list[Column]:
    """The columns of a table, view or aggregate, in order."""
    cur = await conn.execute(
        sql.SQL(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                      CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
               WHERE a.attrelid = {}::regclass AND a.attnum > 0 AND NOT a.attisdropped
               ORDER BY a.attnum"""
        ).format(sql.Literal(relation.as_string(conn))),
    )
    return [Column(*row) for row in await cur.fetchall()]


def schema(cols: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow) for c in cols])


def select_list(cols: Sequence[Column], alias: str = "t") -> sql.Composable:
    """The columns to read, jsonb/uuid/... as text."""
    parts = []
    for c in cols:
        ident = sql.Identifier(alias, c.name)
        parts.append(sql.SQL("{}::text").format(ident) if c.as_text else ident)
    return sql.SQL(", ").join(parts)


def to_batch(rows: Sequence[Sequence[Any]], arrow_schema: pa.Schema) -> pa.RecordBatch:
    values = list(zip(*rows, strict=True)) if rows else [() for _ in arrow_schema]
    return pa.record_batch([pa.array(v, type=f.type) for v, f in zip(values, arrow_schema, strict=True)], arrow_schema)


async def write_query(
    conn: AsyncConnection,
    query: sql.Composable,
    params: Any,
    cols: Sequence[Column],
    path: Path | str,
    filesystem: Any = None,
) -> int:
    """Stream ``query`` (its columns are ``cols``) into one Parquet file; returns the rows written.
    Needs an open transaction (server-side cursor)."""
    arrow_schema = schema(cols)
    rows = 0
    writer = pq.ParquetWriter(str(path), arrow_schema, filesystem=filesystem, compression="zstd")
    try:
        async with conn.cursor(name=f"parquet_{uuid.uuid4().hex[:12]}") as cur:
            await cur.execute(query, params)
            while batch := await cur.fetchmany(BATCH_ROWS):
                rows += len(batch)
                await asyncio.to_thread(writer.write_batch, to_batch(batch, arrow_schema))
    finally:
        writer.close()  # an empty result still leaves a typed file
    return rows


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"cannot load a {type(value).__name__} value")


def _records(table: pa.Table, json_columns: set[str]) -> str:
    data = table.to_pylist()
    for row in data:
        for name in json_columns:
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return json.dumps(data, default=_json_value, separators=(",", ":"))


async def load(conn: AsyncConnection, target: sql.Composable, table: pa.Table) -> int:
    """Insert ``table``'s rows into ``target`` (its columns by name; the target's columns missing
    from the file take their defaults), in batches, skipping rows whose key is there already;
    returns the rows the database inserted."""
    cols = {c.name: c for c in await columns(conn, target)}
    names = [n for n in table.column_names if n in cols]
    json_columns = {n for n in names if (cols[n].base_type or cols[n].pg_type) in ("jsonb", "json")}
    idents = sql.SQL(", ").join(map(sql.Identifier, names))
    query = sql.SQL(
        "INSERT INTO {t} ({c}) SELECT {c} FROM jsonb_populate_recordset(NULL::{t}, %s::jsonb) ON CONFLICT DO NOTHING"
    ).format(t=target, c=idents)
    inserted = 0
    table = table.select(names)
    for offset in range(0, table.num_rows, BATCH_ROWS):
        payload = _records(table.slice(offset, BATCH_ROWS), json_columns)
        cur = await conn.execute(query, (payload,))
        inserted += max(cur.rowcount, 0)
    return inserted
