"""Erasure, export, archive and backup against the real local stack (issue 9, items 4 and 5).

Every test writes its own tenants and cameras (unique ids) at a random day between 1975 and 2015,
so its chunks hold only its rows and nothing recent of anyone else's is touched, and erases them
afterwards. The backup test works in a throw-away schema and restores into a private PGlite.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pyarrow.parquet as pq
import pytest
from lifecycle_helpers import (
    FAKE_HASH,
    camera_rows,
    counts,
    in_schema,
    old_day,
    private_pglite,
    seed_tenant,
    tenant_rows,
    uid,
)
from psycopg import AsyncConnection

from api.live import publish_occupancy, snapshot_key
from core.settings import get_settings
from models.records import OccupancySample
from sql import archive, backup, catalog, erase, export
from sql.migrate import migrate
from sql.refresh import covering_windows, run_plan, watermarks

pytestmark = pytest.mark.integration
T = TypeVar("T")
PREFIX = get_settings().kafka.topic_prefix


def run(dsn: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """``fn(conn, *args)`` on a fresh autocommit AsyncConnection."""

    async def go() -> T:
        async with await AsyncConnection.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            return await fn(conn, *args, **kwargs)

    return asyncio.run(go())


async def materialize(conn: AsyncConnection, start: datetime, end: datetime) -> None:
    """Materialize the aggregates over ``start..end`` the safe way (no gap under a watermark)."""
    tables = [r.name for r in catalog.RAW]
    oldest = {}
    for rel in catalog.RAW:
        cur = await conn.execute(f"SELECT min({rel.time}) FROM {rel.name}")
        oldest[rel.name] = (await cur.fetchone())[0]
    plan = covering_windows(tables, start, end, await watermarks(conn), datetime.now(UTC), oldest)
    await run_plan(conn, plan)


@pytest.fixture
def tenants(stack, pg):
    """Tenant ids to use; each is erased (rows and aggregates) after the test."""
    made: list[str] = []
    yield made
    for tenant in made:
        run(stack.db_dsn, erase.erase_tenant, tenant)


def redis_url(stack: Any) -> str:
    return f"redis://{stack.redis_host}:{stack.redis_port}/0"


def _snapshot(redis_url: str, camera_id: str, at: float) -> None:
    import redis.asyncio as aioredis

    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            sample = OccupancySample(camera_id=camera_id, zone_id="hall", at=at, count=3)
            await publish_occupancy(client, PREFIX, sample)
        finally:
            await client.aclose()

    asyncio.run(go())


def _erase_redis(redis_url: str, camera_id: str) -> int:
    import redis.asyncio as aioredis

    async def go() -> int:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await erase.erase_camera_redis(client, PREFIX, camera_id)
        finally:
            await client.aclose()

    return asyncio.run(go())


# --------------------------------------------------------------------------- the catalogue


def test_the_catalogue_names_every_table_that_holds_a_tenant_or_a_camera(pg):
    """A new table with a tenant_id or camera_id column must be added to sql/catalog.py, or
    erasure and export would miss it."""
    rows = pg.execute(
        """SELECT DISTINCT c.relname FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND a.attname IN ('tenant_id', 'camera_id') AND NOT a.attisdropped
             AND (c.relkind IN ('r', 'p') OR c.relname IN (
                 SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public'))"""
    ).fetchall()
    assert {r[0] for r in rows} == {r.name for r in catalog.RELATIONS}


# --------------------------------------------------------------------------- erasure


def test_erasing_a_camera_leaves_nothing_of_it_and_spares_the_others(stack, pg, redis_client, tenants):
    mine, other = uid("ten"), uid("ten")
    tenants += [mine, other]
    gone, kept, theirs = uid("cam"), uid("cam"), uid("cam")
    day = old_day()
    seed_tenant(pg, mine, [gone, kept], day)
    seed_tenant(pg, other, [theirs], day)
    run(stack.db_dsn, materialize, day, day + timedelta(days=1))
    for cam in (gone, kept):
        _snapshot(redis_url(stack), cam, day.timestamp())
    before = camera_rows(pg, [gone])
    assert all(before.values()), before  # every table and aggregate (materialized) holds some of it
    spared = {c: (camera_rows(pg, [c]), counts(pg, [c])) for c in (kept, theirs)}

    t0 = time.perf_counter()
    report = run(stack.db_dsn, erase.erase_camera, gone)
    assert _erase_redis(redis_url(stack), gone) == 1
    elapsed = time.perf_counter() - t0

    assert camera_rows(pg, [gone]) == dict.fromkeys(before, 0)
    assert redis_client.exists(snapshot_key(PREFIX, gone)) == 0
    assert redis_client.exists(snapshot_key(PREFIX, kept)) == 1
    for rel in catalog.RELATIONS:
        if rel.camera and rel.kind != "aggregate":
            assert report.rows[rel.name] == before[rel.name], rel.name
    assert set(report.changes) == {r.name for r in catalog.RAW}
    for cam, (rows, agg) in spared.items():
        assert camera_rows(pg, [cam]) == rows
        assert counts(pg, [cam]) == agg
    assert elapsed < 10
    redis_client.delete(snapshot_key(PREFIX, kept))


def test_erasing_a_tenant_removes_every_row_of_it_but_its_audit_trail(stack, pg, tenants):
    mine, other = uid("ten"), uid("ten")
    tenants += [mine, other]
    cams, theirs = [uid("cam"), uid("cam")], uid("cam")
    day = old_day()
    seed_tenant(pg, mine, cams, day)
    seed_tenant(pg, other, [theirs], day)
    pg.execute(
        "SELECT audit_append(%s, 'test', 'admin', 'tenant.erase', 'tenant', %s, NULL, NULL, 'ok', NULL, NULL)",
        (mine, mine),
    )
    run(stack.db_dsn, materialize, day, day + timedelta(days=1))
    before = tenant_rows(pg, mine)
    assert all(before.values()), before
    spared = (tenant_rows(pg, other), counts(pg, [theirs]))

    report = run(stack.db_dsn, erase.erase_tenant, mine)

    after = tenant_rows(pg, mine)
    assert after == {**dict.fromkeys(before, 0), "audit_log": before["audit_log"]}  # append-only: kept
    assert camera_rows(pg, cams) == dict.fromkeys(camera_rows(pg, cams), 0)
    assert report.cameras == sorted(cams)
    assert report.rows["tenants"] == 1 and report.rows["crossing_events"] == before["crossing_events"]
    assert (tenant_rows(pg, other), counts(pg, [theirs])) == spared


# --------------------------------------------------------------------------- export


def test_export_writes_each_relation_of_the_tenant_as_readable_parquet(stack, pg, tenants, tmp_path):
    mine, other = uid("ten"), uid("ten")
    tenants += [mine, other]
    cams, theirs = [uid("cam"), uid("cam")], uid("cam")
    day = old_day()
    seed_tenant(pg, mine, cams, day)
    seed_tenant(pg, other, [theirs], day)
    expected = tenant_rows(pg, mine)

    t0 = time.perf_counter()
    written = run(stack.db_dsn, export.export_tenant, mine, tmp_path)
    elapsed = time.perf_counter() - t0

    assert written == expected
    for rel in catalog.RELATIONS:
        table = pq.read_table(tmp_path / f"{rel.name}.parquet")
        assert table.num_rows == expected[rel.name], rel.name
        assert not set(rel.private) & set(table.column_names)
        if "camera_id" in table.column_names:
            assert set(table["camera_id"].to_pylist()) <= set(cams)
    crossings = pq.read_table(tmp_path / "crossing_events.parquet").to_pylist()
    db = pg.execute(
        "SELECT occurred_at, event_id, x, confidence FROM crossing_events WHERE camera_id = ANY(%s) ORDER BY 1, 2",
        (cams,),
    ).fetchall()
    # real columns are float32 in Parquet: the same value, printed with more digits than psycopg's
    assert sorted((r["occurred_at"], r["event_id"], r["x"], round(r["confidence"], 6)) for r in crossings) == db
    camera = pq.read_table(tmp_path / "cameras.parquet").to_pylist()[0]
    assert camera["tags"] == ["door", "north"] and json.loads(camera["alert_thresholds"]) == {"occupancy_pct": 90}
    assert FAKE_HASH not in (tmp_path / "api_keys.parquet").read_bytes().decode("latin-1")
    assert elapsed < 15


# --------------------------------------------------------------------------- archive


def test_archive_run_writes_parquet_drops_the_chunk_and_restore_brings_the_rows_back(stack, pg, tenants, tmp_path):
    mine = uid("ten")
    tenants.append(mine)
    cam, orphan = uid("cam"), uid("orphan")  # orphan: a camera not in `cameras` (no tenant)
    day = old_day()
    seed_tenant(pg, mine, [cam], day, n=40)
    pg.execute(
        "INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction, frame_seq,"
        " processed_at, x, y) VALUES (%s, %s, %s, 'door', 1, 'in', 1, %s, 1, 1)",
        (day + timedelta(hours=5), f"{orphan}:door:1", orphan, day),
    )
    original = pg.execute(
        "SELECT * FROM crossing_events WHERE camera_id = ANY(%s) ORDER BY occurred_at, event_id", ([cam, orphan],)
    ).fetchall()
    url = str(tmp_path / "archive")

    t0 = time.perf_counter()
    report = run(stack.db_dsn, archive.run, url, 30, 7, since=day, until=day + timedelta(days=1))
    elapsed = time.perf_counter() - t0

    by_table = {c.table: c for c in report.chunks}
    assert set(by_table) == {r.name for r in catalog.RAW}
    assert all(c.status == "dropped" for c in report.chunks), report.to_json()
    assert by_table["crossing_events"].rows == 41 and by_table["stream_stats"].rows == 40
    part = archive.partition(url, mine, "crossing_events", day.date())
    assert pq.read_table(part).num_rows == 40
    assert pq.read_table(archive.partition(url, None, "crossing_events", day.date())).num_rows == 1
    assert len(report.compressed) == len(catalog.RAW)  # older than 7 days: compressed first
    left = pg.execute(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'crossing_events'"
        " AND range_start = %s",
        (day,),
    ).fetchone()[0]
    assert left == 0
    assert camera_rows(pg, [cam])["crossing_events"] == 0
    for view, measure in [("crossings_1m", "crossings"), ("crossings_1h", "crossings"), ("crossings_1d", "crossings"),
                          ("occupancy_1d", "samples"), ("stream_health_1h", "samples")]:  # fmt: skip
        total = pg.execute(f"SELECT sum({measure}) FROM {view} WHERE camera_id = %s", (cam,)).fetchone()[0]
        assert total == 40, view  # materialized before the drop: the counts outlive the raw rows

    got = run(stack.db_dsn, archive.restore, url, "crossing_events", day.date())
    assert got == {"files": 2, "rows": 41, "inserted": 41}
    back = pg.execute(
        "SELECT * FROM crossing_events WHERE camera_id = ANY(%s) ORDER BY occurred_at, event_id", ([cam, orphan],)
    ).fetchall()
    assert back == original
    assert run(stack.db_dsn, archive.restore, url, "crossing_events", day.date(), mine)["inserted"] == 0

    again = run(stack.db_dsn, archive.run, url, 30, 7, since=day, until=day + timedelta(days=1))
    crossing = [c for c in again.chunks if c.table == "crossing_events"]
    assert [(c.status, c.written, c.already) for c in crossing] == [("dropped", 0, 41)]  # nothing twice
    assert pq.read_table(part).num_rows == 40
    assert elapsed < 20


# --------------------------------------------------------------------------- backup


@pytest.fixture
def source_schema(stack):
    name = f"bk_{uid('s').replace('-', '_')}"
    migrate(stack.db_dsn, schema=name)
    yield name
    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as conn:
        for schema in (f"{name}_scoped", name):
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


def test_a_backup_restored_into_an_empty_database_gives_identical_counts(stack, pg, source_schema, tmp_path):
    schema = source_schema
    tenant, cams = uid("ten"), [uid("cam"), uid("cam")]
    history, hot = old_day(), datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    seed_tenant(pg, tenant, cams, history, schema=schema)
    with in_schema(pg, schema):  # more raw rows: recent ones, and older ones (a restored archive day)
        for shift, tag in ((hot - history, "hot"), (timedelta(days=-30), "older")):
            pg.execute(
                "INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction,"
                " frame_seq, processed_at, x, y, confidence) SELECT occurred_at + %s, event_id || %s, camera_id,"
                " line_id, track_id, direction, frame_seq, processed_at, x, y, confidence FROM crossing_events"
                " WHERE occurred_at < %s",
                (shift, f":{tag}", history + timedelta(days=1)),
            )
    day = (history, history + timedelta(days=1))
    for view in ("crossings_1m", "occupancy_1m", "stream_health_1h", "crossings_1h", "occupancy_1h", "crossings_1d"):
        pg.execute(f"CALL refresh_continuous_aggregate('{schema}.{view}', %s, %s)", day)
    with in_schema(pg, schema):  # the history day's raw rows archived away: only the aggregates keep it
        for rel in catalog.RAW:
            pg.execute(
                "SELECT drop_chunks(%s::regclass, older_than => %s, newer_than => %s)", (rel.name, day[1], day[0])
            )
        expected = counts(pg, cams)
    assert expected["crossings_1d"] and expected["crossings"]

    t0 = time.perf_counter()
    manifest = run(stack.db_dsn, backup.create, tmp_path / "backup", schema)
    created = time.perf_counter() - t0
    assert [m["version"] for m in manifest["migrations"]] == sorted(m["version"] for m in manifest["migrations"])
    assert manifest["tables"]["crossing_events"] == 120 and manifest["aggregates"]["crossings_1d"] > 0

    with private_pglite(tmp_path) as dsn:
        t0 = time.perf_counter()
        report = asyncio.run(backup.restore(dsn, tmp_path / "backup"))
        restored = time.perf_counter() - t0
        assert report["problems"] == [] and report["tables"]["crossing_events"] == 120
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as target:
            assert counts(target, cams) == expected
            assert target.execute("SELECT count(*) FROM tenants WHERE tenant_id = %s", (tenant,)).fetchone()[0] == 1
        with pytest.raises(backup.BackupError, match="empty database"):
            asyncio.run(backup.restore(dsn, tmp_path / "backup"))
    assert created < 15 and restored < 30


# --------------------------------------------------------------------------- worker state and live views


def test_a_tombstone_removes_the_camera_from_the_worker_state_and_live_views(stack, tmp_path):
    """What erasure publishes (sql.erase.publish_tombstones) makes the worker forget the camera:
    its config, its counting state (table and changelog) and every live view of it."""
    from agents_helpers import Scratch, Worker, line_config, produce, walkers

    from core.settings import KafkaSettings, Settings

    scratch = Scratch(stack.bootstrap)
    worker = Worker(scratch, tmp_path)
    gone, kept = uid("cam"), uid("cam")

    def wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}:\n{worker.tail()}")
            time.sleep(0.2)

    def listed() -> set[str]:
        return {c["camera_id"] for c in worker.get("/footfall/cameras/")[1]["cameras"]}

    try:
        worker.start().wait_ready()
        produce(
            scratch.bootstrap, scratch.topic("camera-config"), [(c, line_config(c).to_json()) for c in (gone, kept)]
        )
        frames = [f for c in (gone, kept) for f in walkers(c, [(100, 100, 0)], 1_700_000_040.0, duration_s=6)]
        produce(scratch.bootstrap, scratch.topic("detections"), [(f.camera_id, f.to_json()) for f in frames])
        wait(lambda: {gone, kept} <= listed(), "the cameras were not counted")
        for path in ("/", "/counts/", "/occupancy/"):
            assert worker.get(f"/footfall/cameras/{gone}{path}")[0] == 200

        settings = Settings(
            kafka=KafkaSettings(bootstrap=scratch.bootstrap, topic_prefix=scratch.prefix, partitions=scratch.partitions)
        )
        assert erase.publish_tombstones([gone], settings) == 1

        wait(lambda: gone not in listed(), "the erased camera is still listed")
        for path in ("/", "/counts/", "/occupancy/"):
            assert worker.get(f"/footfall/cameras/{gone}{path}")[0] == 404
        assert gone not in worker.get("/footfall/configs/")[1]["configs"]
        status, body = worker.get(f"/footfall/cameras/{kept}/")
        assert status == 200 and body["last_frame_seq"] == frames[-1].frame_seq
        assert kept in worker.get("/footfall/configs/")[1]["configs"]

        worker.stop()  # a new worker rebuilds its tables from the changelogs: the tombstones hold
        worker = Worker(scratch, tmp_path, name="w2").start()
        worker.wait_ready()
        wait(lambda: worker.get(f"/footfall/cameras/{kept}/")[0] == 200, "the kept camera's state is gone")
        assert worker.get(f"/footfall/cameras/{gone}/")[0] == 404
        assert gone not in worker.get("/footfall/configs/")[1]["configs"]
    finally:
        worker.stop()
        scratch.close()
