"""Where a tenant's data lives and how each row reaches its tenant: the one list that erasure
(``sql.erase``), export (``sql.export``), archiving (``sql.archive``) and the tests follow.

Only ``cameras``, ``alerts`` and the reference tables carry a ``tenant_id``; the time-series
hypertables and the aggregates carry a ``camera_id`` and belong to the tenant of that camera in
``cameras``. ``db_health`` and ``ai_models`` are the platform's (no tenant).

>>> [r.name for r in RELATIONS if r.via == "tenant" and r.kind == "hypertable"]
['alerts', 'audit_log']
>>> tenant_filter(relation("crossing_events")).as_string(None)
'camera_id IN (SELECT camera_id FROM cameras WHERE tenant_id = %(tenant)s)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import AsyncConnection, sql

Kind = Literal["reference", "hypertable", "aggregate"]
Via = Literal["tenant", "camera"]


@dataclass(frozen=True)
class Relation:
    """A relation holding tenant data."""

    name: str
    kind: Kind
    via: Via  # "tenant": its own tenant_id column; "camera": camera_id -> cameras.tenant_id
    time: str | None = None  # the time column of a hypertable or aggregate
    camera: bool = True  # has a camera_id column (what erasing one camera deletes by)
    raw: bool = False  # raw events: hot for lifecycle.hot_days, then archived and dropped (sql.archive)
    append_only: bool = False  # never erased (012: the audit log refuses DELETE even to the owner)
    private: tuple[str, ...] = ()  # columns never exported (secrets)


# Parents before children (foreign keys); erasure deletes in reverse order.
RELATIONS: tuple[Relation, ...] = (
    Relation("tenants", "reference", "tenant", camera=False),
    Relation("locations", "reference", "tenant", camera=False),
    Relation("cameras", "reference", "tenant", private=("stream_password_enc",)),
    Relation("camera_groups", "reference", "tenant", camera=False),
    Relation("camera_group_members", "reference", "camera"),
    Relation("counting_lines", "reference", "camera"),
    Relation("zones", "reference", "camera"),
    Relation("whatif_lines", "reference", "camera"),
    Relation("whatif_counts", "reference", "camera"),
    Relation("geometry_versions", "reference", "camera"),
    Relation("alert_rules", "reference", "tenant", camera=False),
    Relation("users", "reference", "tenant", camera=False),
    Relation("api_keys", "reference", "tenant", camera=False, private=("hash",)),
    Relation("crossing_events", "hypertable", "camera", "occurred_at", raw=True),
    Relation("zone_events", "hypertable", "camera", "occurred_at", raw=True),
    Relation("track_summaries", "hypertable", "camera", "first_seen", raw=True),
    Relation("occupancy_samples", "hypertable", "camera", "at", raw=True),
    Relation("stream_stats", "hypertable", "camera", "at", raw=True),
    Relation("camera_health", "hypertable", "camera", "at", raw=True),
    Relation("line_counts_1m", "hypertable", "camera", "bucket"),
    Relation("alerts", "hypertable", "tenant", "triggered_at"),
    Relation("audit_log", "hypertable", "tenant", "at", camera=False, append_only=True),
    Relation("crossings_1m", "aggregate", "camera", "bucket"),
    Relation("crossings_1h", "aggregate", "camera", "bucket"),
    Relation("crossings_1d", "aggregate", "camera", "bucket"),
    Relation("occupancy_1m", "aggregate", "camera", "bucket"),
    Relation("occupancy_1h", "aggregate", "camera", "bucket"),
    Relation("occupancy_1d", "aggregate", "camera", "bucket"),
    Relation("stream_health_1h", "aggregate", "camera", "bucket"),
    Relation("zone_events_1m", "aggregate", "camera", "bucket"),
    Relation("zone_events_1h", "aggregate", "camera", "bucket"),
    Relation("zone_events_1d", "aggregate", "camera", "bucket"),
)

# Relations with neither a tenant nor a camera: the platform's own.
PLATFORM = ("ai_models", "db_health", "schema_migrations")

RAW = tuple(r for r in RELATIONS if r.raw)


def relation(name: str) -> Relation:
    for r in RELATIONS:
        if r.name == name:
            return r
    raise KeyError(f"{name!r} is not a tenant relation (sql/catalog.py)")


def tenant_filter(rel: Relation) -> sql.Composable:
    """``WHERE`` condition selecting the rows of ``%(tenant)s``."""
    if rel.via == "tenant":
        return sql.SQL("tenant_id = %(tenant)s")
    return sql.SQL("camera_id IN (SELECT camera_id FROM cameras WHERE tenant_id = %(tenant)s)")


def tenant_of(rel: Relation, alias: str = "t") -> sql.Composable:
    """Expression giving a row's tenant (NULL when its camera is not in ``cameras``)."""
    if rel.via == "tenant":
        return sql.SQL("{}.tenant_id").format(sql.Identifier(alias))
    return sql.SQL("(SELECT c.tenant_id FROM cameras c WHERE c.camera_id = {}.camera_id)").format(sql.Identifier(alias))


async def present(conn: AsyncConnection, names: list[str]) -> set[str]:
    """Which of ``names`` exist in the current schema (a database at an older migration lacks some)."""
    cur = await conn.execute(
        "SELECT n FROM unnest(%s::text[]) AS n"
        " WHERE to_regclass(quote_ident(current_schema()) || '.' || quote_ident(n)) IS NOT NULL",
        (names,),
    )
    return {row[0] for row in await cur.fetchall()}


async def materialization(conn: AsyncConnection, view: str) -> sql.Composed:
    """The hypertable a continuous aggregate keeps its materialized rows in."""
    cur = await conn.execute(
        """SELECT materialization_hypertable_schema, materialization_hypertable_name
           FROM timescaledb_information.continuous_aggregates
           WHERE view_schema = current_schema() AND view_name = %s""",
        (view,),
    )
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"{view} is not a continuous aggregate in the current schema")
    return sql.SQL("{}.{}").format(sql.Identifier(row[0]), sql.Identifier(row[1]))
