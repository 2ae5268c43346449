"""The data lifecycle's pure parts: the catalogue, refresh planning, Parquet conversion, the
archive's layout, de-duplication and erasure (on a local directory), backup ordering."""

from __future__ import annotations

import doctest
import importlib
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sql import archive, backup, catalog, parquet
from sql.migrate import checksum
from sql.refresh import AGGREGATES, MINUTE, changed_windows, covering_windows, downstream

T0 = datetime(2026, 3, 4, 10, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize("name", ["sql.catalog", "sql.parquet", "sql.refresh", "sql.archive", "sql.backup"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------- catalogue


def test_the_catalogue_lists_each_relation_once_with_what_the_lifecycle_needs():
    names = [r.name for r in catalog.RELATIONS]
    assert len(names) == len(set(names))
    assert not set(names) & set(catalog.PLATFORM)
    assert {r.name for r in catalog.RELATIONS if r.kind == "aggregate"} == {a.view for a in AGGREGATES}
    for rel in catalog.RELATIONS:
        assert (rel.time is None) == (rel.kind == "reference"), rel.name
        assert not rel.raw or rel.kind == "hypertable"
    assert {a.source for a in AGGREGATES} - {a.view for a in AGGREGATES} <= {r.name for r in catalog.RAW}
    assert [r.name for r in catalog.RELATIONS if r.append_only] == ["audit_log"]


def test_rows_reach_their_tenant_by_their_own_column_or_their_camera():
    assert catalog.tenant_filter(catalog.relation("alerts")).as_string(None) == "tenant_id = %(tenant)s"
    assert "FROM cameras" in catalog.tenant_filter(catalog.relation("zones")).as_string(None)
    assert catalog.tenant_of(catalog.relation("stream_stats")).as_string(None).startswith("(SELECT c.tenant_id")
    with pytest.raises(KeyError, match="db_health"):
        catalog.relation("db_health")


# --------------------------------------------------------------------------- refresh planning


def test_after_deletions_only_the_materialized_part_is_refreshed_bottom_up():
    changes = {"crossing_events": (T0, T0 + timedelta(hours=2)), "zone_events": (T0, T0)}
    marks = {"crossings_1m": T0 + timedelta(hours=1), "crossings_1h": T0 - timedelta(hours=3), "crossings_1d": None}
    plan = changed_windows(changes, marks, T0 + timedelta(days=1))
    assert plan == [("crossings_1m", T0.replace(second=0), T0 + timedelta(hours=1))]  # never past a watermark


def test_before_a_drop_the_windows_cover_the_range_without_a_gap_under_a_watermark():
    start = T0.replace(hour=0, minute=0, second=0)
    end, now = start + timedelta(days=1), T0 + timedelta(days=40)
    marks = {"occupancy_1m": start - timedelta(days=2), "occupancy_1h": end + timedelta(days=5), "occupancy_1d": None}
    plan = {v: (a, b) for v, a, b in covering_windows(["occupancy_samples"], start, end, marks, now)}
    assert plan["occupancy_1m"] == (start - timedelta(days=2), end)  # from the watermark: no gap
    assert plan["occupancy_1h"] == (start, end)
    assert plan["occupancy_1d"] == (start, end)
    assert [a.view for a in downstream(["occupancy_samples"])] == ["occupancy_1m", "occupancy_1h", "occupancy_1d"]
    recent = {v: (a, b) for v, a, b in covering_windows(["crossing_events"], now - timedelta(minutes=5), now, {}, now)}
    assert recent == {
        "crossings_1m": (now.replace(second=0) - 5 * MINUTE, now.replace(second=0))
    }  # not the current bucket


# --------------------------------------------------------------------------- parquet


def test_postgres_values_become_typed_arrow_columns():
    cols = [
        parquet.Column("at", "timestamp with time zone", None),
        parquet.Column("camera_id", "wire_id", "text"),
        parquet.Column("area", "numeric(10,2)", None),
        parquet.Column("tags", "text[]", None),
        parquet.Column("spec", "jsonb", None),
        parquet.Column("blob", "bytea", None),
        parquet.Column("score", "real", None),
    ]
    assert [c.as_text for c in cols] == [False, False, False, False, True, False, False]
    schema = parquet.schema(cols)
    rows = [
        (T0, "cam-1", Decimal("12.50"), ["a", "b"], '{"x": 1}', b"\x80\x01", 0.25),
        (T0, "cam-2", None, [], None, None, None),
    ]
    batch = parquet.to_batch(rows, schema)
    assert batch.num_rows == 2 and batch.schema == schema
    assert batch.column("area").type == pa.decimal128(10, 2)
    assert batch.to_pylist()[0]["tags"] == ["a", "b"] and batch.to_pylist()[0]["at"] == T0
    records = json.loads(parquet._records(pa.Table.from_batches([batch]), {"spec"}))
    assert records[0] == {
        "at": "2026-03-04T10:17:30+00:00", "camera_id": "cam-1", "area": "12.50", "tags": ["a", "b"],
        "spec": {"x": 1}, "blob": "\\x8001", "score": 0.25,
    }  # fmt: skip
    assert records[1]["spec"] is None and records[1]["tags"] == []


# --------------------------------------------------------------------------- archive files


def _crossings(camera: str, n: int, t0: datetime = T0) -> pa.Table:
    times = [t0 + timedelta(seconds=i) for i in range(n)]
    return pa.table(
        {
            "occurred_at": pa.array(times, pa.timestamp("us", tz="UTC")),
            "event_id": [f"{camera}:{i}" for i in range(n)],
            "camera_id": [camera] * n,
        }
    )


def _batch(table: pa.Table, tenant: str, day: str) -> pa.RecordBatch:
    table = table.append_column("__tenant", pa.array([tenant] * table.num_rows))
    return table.append_column("__day", pa.array([day] * table.num_rows)).combine_chunks().to_batches()[0]


def test_a_day_archived_again_is_not_written_twice(tmp_path):
    fs, base = archive.open_archive(str(tmp_path))
    rows = _crossings("cam-1", 10)
    first = archive._PartWriter(
        fs, base, "crossing_events", "_hyper_1_1_chunk", rows.schema, ["event_id", "occurred_at"]
    )
    first.write(_batch(rows, "mall", "2026-03-04"))
    assert first.close() == [f"{base}/tenant=mall/table=crossing_events/day=2026-03-04/part-_hyper_1_1_chunk.parquet"]
    # the day restored and archived again (another chunk), with two late rows
    more = pa.concat_tables([rows, _crossings("cam-1", 12).slice(10)])
    again = archive._PartWriter(
        fs, base, "crossing_events", "_hyper_1_9_chunk", rows.schema, ["event_id", "occurred_at"]
    )
    again.write(_batch(more, "mall", "2026-03-04"))
    again.close()
    assert (again.written, again.already) == (2, 10)
    assert pq.read_table(archive.partition(base, "mall", "crossing_events", date(2026, 3, 4))).num_rows == 12


def test_erasing_from_the_archive_removes_a_camera_or_a_whole_tenant(tmp_path):
    fs, base = archive.open_archive(str(tmp_path))
    for tenant, table in (("mall", "crossing_events"), ("mall", "stream_stats"), ("city", "crossing_events")):
        path = archive.partition(base, tenant, table, "2026-03-04")
        fs.create_dir(path, recursive=True)
        both = pa.concat_tables([_crossings(f"{tenant}-a", 5), _crossings(f"{tenant}-b", 3)])
        pq.write_table(both, f"{path}/part-x.parquet", filesystem=fs)
        pq.write_table(_crossings(f"{tenant}-a", 2, T0 + timedelta(hours=1)), f"{path}/part-y.parquet", filesystem=fs)

    assert archive.erase_archived(str(tmp_path), camera_id="mall-a") == {"crossing_events": 7, "stream_stats": 7}
    left = pq.read_table(archive.partition(base, "mall", "crossing_events", "2026-03-04"))
    assert set(left["camera_id"].to_pylist()) == {"mall-b"} and left.num_rows == 3
    assert not fs.get_file_info(
        f"{archive.partition(base, 'mall', 'stream_stats', '2026-03-04')}/part-y.parquet"
    ).is_file

    assert archive.erase_archived(str(tmp_path), tenant="mall") == {"crossing_events": 3, "stream_stats": 3}
    assert archive._dirs(fs, base) == [f"{base}/tenant=city"]
    with pytest.raises(ValueError, match="name a tenant or a camera"):
        archive.erase_archived(str(tmp_path))


# --------------------------------------------------------------------------- backup


def test_restore_order_puts_parents_first_and_refuses_a_cycle():
    edges = [("zones", "cameras"), ("cameras", "tenants"), ("cameras", "locations"), ("locations", "tenants")]
    order = backup.parents_first(["zones", "locations", "cameras", "tenants", "crossing_events"], edges)
    assert order.index("tenants") < order.index("locations") < order.index("cameras") < order.index("zones")
    with pytest.raises(backup.BackupError, match="cycle"):
        backup.parents_first(["a", "b"], [("a", "b"), ("b", "a")])


def test_a_backup_from_another_schema_history_is_refused(tmp_path):
    (tmp_path / "001_one.sql").write_text("SELECT 1;\n")
    manifest = {"migrations": [{"version": 1, "name": "one", "checksum": "0" * 64}]}
    with pytest.raises(backup.BackupError, match="001_one of the backup is changed"):
        backup.check_migrations(manifest, tmp_path)
    manifest["migrations"][0]["checksum"] = checksum("SELECT 1;\n")
    assert backup.check_migrations(manifest, tmp_path) == 1
