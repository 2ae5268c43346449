"""The schema on the real database: migrations applied, TimescaleDB objects and policies in place,
continuous aggregates answering exactly without a refresh, sinks' idempotent writes.

Every row these tests write uses camera ids unique to this run and is deleted afterwards; other
engineers' data in the shared database is never touched.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sql.credentials import decrypt_password, encrypt_password
from sql.migrate import migrate, verify

pytestmark = pytest.mark.integration

RAW_TABLES = ["crossing_events", "zone_events", "occupancy_samples", "stream_stats"]
SECRET = "integration-test-secret-key-0123456789"


def _dsn(request: pytest.FixtureRequest) -> str:
    """The database of the local stack. Uses the shared ``stack`` fixture when tests/conftest.py
    provides it (it starts the stack); without one, skips unless a database answers."""
    from core.settings import get_settings

    try:
        request.getfixturevalue("stack")
        have_stack = True
    except pytest.FixtureLookupError:
        have_stack = False
    dsn = get_settings().database.url.get_secret_value()
    if not have_stack:
        try:
            psycopg.connect(dsn, connect_timeout=5, prepare_threshold=None).close()
        except psycopg.OperationalError as e:
            pytest.skip(f"no database (start it with `python -m infra.local up`): {e}")
    return dsn


@pytest.fixture(scope="module")
def dsn(request: pytest.FixtureRequest) -> str:
    url = _dsn(request)
    migrate(url)  # the real database, schema public; a no-op when already applied
    return url


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        yield conn


@pytest.fixture
def camera(db: psycopg.Connection) -> Iterator[str]:
    """A camera id unique to this test; its rows in every table are deleted afterwards."""
    cam = f"test-sql-{uuid.uuid4().hex[:10]}"
    yield cam
    for table in [*RAW_TABLES, "line_counts_1m", "alerts", "cameras"]:
        db.execute(f"DELETE FROM {table} WHERE camera_id = %s", (cam,))


def rows(db: psycopg.Connection, query: str, params: Any = None) -> list[tuple]:
    return db.execute(query, params).fetchall()


def utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC)


def ahead(**delta: float) -> datetime:
    """A UTC midnight ten days from now, plus ``delta``.

    Rows read back through continuous aggregates are dated ahead of now on purpose: a refresh
    never materializes past ``now() - end_offset``, so these rows always sit above the watermark
    and the real-time part of the aggregate must answer for them: on PGlite (whose jobs never run)
    and on the official image alike, where the refresh policies run every minute and a row dated
    in the past, inserted behind the watermark, would stay invisible until the next refresh.
    """
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=10) + timedelta(**delta)


# --------------------------------------------------------------------------- structure


def test_migrations_are_applied_and_unchanged(dsn: str) -> None:
    assert verify(dsn) == []
    assert migrate(dsn) == []


def test_hypertables_partition_on_time_with_sensible_chunks(db: psycopg.Connection) -> None:
    found = dict(
        rows(
            db,
            """SELECT hypertable_name, (column_name, time_interval)::text
               FROM timescaledb_information.dimensions WHERE hypertable_schema = 'public'""",
        )
    )
    expected = {
        "crossing_events": '(occurred_at,"1 day")',
        "zone_events": '(occurred_at,"1 day")',
        "occupancy_samples": '(at,"1 day")',
        "stream_stats": '(at,"1 day")',
        "line_counts_1m": '(bucket,"7 days")',
        "alerts": '(triggered_at,"7 days")',
    }
    assert {name: found.get(name) for name in expected} == expected  # later migrations may add more


def test_compression_is_segmented_by_camera(db: psycopg.Connection) -> None:
    settings = dict(
        (name.removeprefix("public."), (segmentby, orderby))
        for name, segmentby, orderby in rows(
            db,
            "SELECT hypertable::text, segmentby, orderby FROM timescaledb_information.hypertable_compression_settings",
        )
    )
    assert settings["crossing_events"] == ("camera_id", "occurred_at DESC")
    assert settings["zone_events"] == ("camera_id", "occurred_at DESC")
    assert settings["occupancy_samples"][0] == "camera_id"
    assert settings["stream_stats"] == ("camera_id", "at DESC")
    assert settings["line_counts_1m"][0] == "camera_id"
    enabled = dict(
        rows(
            db,
            """SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables
               WHERE hypertable_schema = 'public'""",
        )
    )
    expected = {t: True for t in [*RAW_TABLES, "line_counts_1m"]} | {"alerts": False}
    assert {name: enabled.get(name) for name in expected} == expected


def test_continuous_aggregates_are_stacked_and_real_time(db: psycopg.Connection) -> None:
    caggs = {
        r[0]: r[1:]
        for r in rows(
            db,
            """SELECT view_name, hypertable_name, materialization_hypertable_name, materialized_only,
                      compression_enabled
               FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public'""",
        )
    }
    assert set(caggs) >= {
        "crossings_1m",
        "crossings_1h",
        "crossings_1d",
        "occupancy_1m",
        "occupancy_1h",
        "occupancy_1d",
        "stream_health_1h",
    }
    assert caggs["crossings_1m"][0] == "crossing_events"
    assert caggs["occupancy_1m"][0] == "occupancy_samples"
    assert caggs["stream_health_1h"][0] == "stream_stats"
    for kind in ("crossings", "occupancy"):  # each level reads the one below
        assert caggs[f"{kind}_1h"][0] == caggs[f"{kind}_1m"][1]
        assert caggs[f"{kind}_1d"][0] == caggs[f"{kind}_1h"][1]
    for view, (_, _, materialized_only, compressed) in caggs.items():  # every aggregate, later ones too
        assert materialized_only is False, view
        assert compressed is True, view


def test_policies_follow_the_hot_warm_cold_lifecycle(db: psycopg.Connection) -> None:
    jobs: dict[tuple[str, str], dict] = {}
    for proc, table, config in rows(
        db,
        """SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs
           WHERE hypertable_schema = 'public' OR hypertable_name IN (
               SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public')""",
    ):
        jobs[(proc.removeprefix("policy_"), table)] = config

    def days(table: str, kind: str, key: str) -> str:
        return jobs[(kind, table)][key]

    for table in RAW_TABLES:
        assert days(table, "compression", "compress_after") == "7 days"
        assert ("retention", table) not in jobs  # 013: `python -m sql.archive run` archives, then drops
    for table in ("line_counts_1m", "crossings_1m", "occupancy_1m"):
        assert days(table, "compression", "compress_after") == "7 days"
        assert days(table, "retention", "drop_after") == "90 days"
    for table in ("crossings_1h", "occupancy_1h", "stream_health_1h"):
        assert days(table, "compression", "compress_after") == "30 days"
        assert days(table, "retention", "drop_after") == "1 year"
    for table in ("crossings_1d", "occupancy_1d"):
        assert days(table, "compression", "compress_after") == "90 days"
        assert days(table, "retention", "drop_after") == "5 years"
    assert days("alerts", "retention", "drop_after") == "1 year"
    assert ("compression", "alerts") not in jobs
    refresh = {t: c for (k, t), c in jobs.items() if k == "refresh_continuous_aggregate"}
    assert set(refresh) >= {"crossings_1m", "crossings_1h", "crossings_1d", "occupancy_1m", "occupancy_1h"} | {
        "occupancy_1d",
        "stream_health_1h",
    }
    assert refresh["crossings_1m"]["start_offset"] == "2 days"
    assert refresh["crossings_1d"]["end_offset"] == "1 day"


# --------------------------------------------------------------------------- data through the aggregates


def _crossings(camera: str, base: datetime, n: int) -> list[tuple]:
    """n crossings every 37 s from base, on two lines, two in three going in."""
    return [
        (
            base + timedelta(seconds=37 * i),
            f"{camera}:{i}",
            camera,
            "l1" if i % 2 else "l2",
            i,
            "out" if i % 3 == 0 else "in",
            1_700_000_000_000_000 + i,
            base + timedelta(seconds=37 * i + 1),
            100.0,
            50.0,
            0.9,
        )
        for i in range(n)
    ]


INSERT_CROSSINGS = """
    INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction, frame_seq,
                                 processed_at, x, y, confidence)
    SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[],
                         %s::bigint[], %s::timestamptz[], %s::real[], %s::real[], %s::real[])
    ON CONFLICT DO NOTHING"""


def _insert_crossings(db: psycopg.Connection, events: list[tuple]) -> int:
    return db.execute(INSERT_CROSSINGS, [list(col) for col in zip(*events, strict=True)]).rowcount


def test_crossing_aggregates_sum_the_events_without_a_refresh(db: psycopg.Connection, camera: str) -> None:
    # Across a UTC midnight, so every level has more than one bucket.
    events = _crossings(camera, ahead(minutes=-90), 400)  # ~4 h of events
    assert _insert_crossings(db, events) == 400
    assert _insert_crossings(db, events) == 0  # a replayed batch: ON CONFLICT DO NOTHING drops it all

    for view, width in (("crossings_1m", "minute"), ("crossings_1h", "hour"), ("crossings_1d", "day")):
        expected: Counter = Counter()
        for e in events:
            at = e[0]
            bucket = {
                "minute": at.replace(second=0, microsecond=0),
                "hour": at.replace(minute=0, second=0, microsecond=0),
                "day": at.replace(hour=0, minute=0, second=0, microsecond=0),
            }[width]
            expected[(bucket, e[3], e[5])] += 1
        got = {
            (utc(b), line, d): int(n)
            for b, line, d, n in rows(
                db, f"SELECT bucket, line_id, direction, crossings FROM {view} WHERE camera_id = %s", (camera,)
            )
        }
        assert got == dict(expected), view
    assert len({k[0] for k in expected}) == 2  # two days

    # The same totals from the raw rows, the hourly and the daily level.
    totals = rows(
        db,
        """SELECT (SELECT count(*) FROM crossing_events WHERE camera_id = %(c)s),
                  (SELECT sum(crossings) FROM crossings_1h WHERE camera_id = %(c)s),
                  (SELECT sum(crossings) FILTER (WHERE direction = 'in') FROM crossings_1d WHERE camera_id = %(c)s)""",
        {"c": camera},
    )[0]
    assert [int(t) for t in totals] == [400, 400, sum(1 for e in events if e[5] == "in")]


def test_peak_hour_comes_from_the_hourly_aggregate(db: psycopg.Connection, camera: str) -> None:
    day = ahead()
    per_hour = {8: 5, 12: 30, 17: 12}
    events = []
    for hour, n in per_hour.items():
        for i in range(n):
            at = day + timedelta(hours=hour, seconds=60 * i)
            events.append(
                (at, f"{camera}:{hour}:{i}", camera, "door", i, "in" if i % 4 else "out", i, at, 1.0, 1.0, 1.0)
            )
    _insert_crossings(db, events)
    (row,) = rows(
        db, "SELECT day, peak_hour, crossings, entries, exits FROM peak_hours WHERE camera_id = %s", (camera,)
    )
    assert (utc(row[0]), utc(row[1]), row[2]) == (day, day + timedelta(hours=12), 30)
    assert row[3] + row[4] == 30 and row[4] == 8  # i % 4 == 0 for 8 of 30


def test_occupancy_averages_carry_sums_not_averages_of_averages(db: psycopg.Connection, camera: str) -> None:
    hour = ahead(hours=5)
    # One sample of 10 in the first minute, three samples (0, 0, 2) in the next one.
    samples = [(hour, 10), (hour + timedelta(seconds=60), 0), (hour + timedelta(seconds=70), 0)]
    samples.append((hour + timedelta(seconds=80), 2))
    for at, count in samples:
        db.execute(
            """INSERT INTO occupancy_samples (at, camera_id, zone_id, count, capacity, capacity_pct)
               VALUES (%s, %s, 'z1', %s, 20, %s) ON CONFLICT DO NOTHING""",
            (at, camera, count, count * 5.0),
        )
    minute = rows(db, "SELECT count_avg FROM occupancy_1m WHERE camera_id = %s ORDER BY bucket", (camera,))
    assert [round(a, 3) for (a,) in minute] == [10.0, 0.667]
    for view in ("occupancy_1h", "occupancy_1d"):
        (got,) = rows(
            db,
            f"""SELECT samples, count_sum, count_avg, count_max, count_min, capacity_pct_max
                FROM {view} WHERE camera_id = %s""",
            (camera,),
        )
        assert got == (4, 12, 3.0, 10, 0, 50.0), view  # avg of the minute averages would be 5.33


def test_stream_health_per_camera_hour(db: psycopg.Connection, camera: str) -> None:
    hour = ahead(hours=3)
    stats = [  # at + s, status, processed_fps, dropped (total), reconnects (total), latency p95
        (0, "online", 10.0, 0, 0, 100.0),
        (600, "online", 8.0, 30, 1, 300.0),
        (1200, "degraded", 4.0, 90, 3, 1200.0),
        (1800, "online", 10.0, 100, 3, 200.0),
    ]
    for s, status, fps, dropped, reconnects, p95 in stats:
        db.execute(
            """INSERT INTO stream_stats (at, camera_id, grabber_id, status, window_s, input_fps, processed_fps,
                   dropped_frames, decode_errors, reconnects, inference_ms_p50, inference_ms_p95, latency_ms_p95,
                   model_name, model_version)
               VALUES (%s, %s, 'g1', %s, 600, 10, %s, %s, 0, %s, 50, 80, %s, 'yolov8s', '8.3')
               ON CONFLICT DO NOTHING""",
            (hour + timedelta(seconds=s), camera, status, fps, dropped, reconnects, p95),
        )
    (got,) = rows(
        db,
        """SELECT samples, online_samples, degraded_samples, processed_fps_avg, processed_fps_min, latency_ms_p95_max,
                  dropped_frames_delta, reconnects_delta, frames_in_est
           FROM stream_health_1h WHERE camera_id = %s""",
        (camera,),
    )
    assert got == (4, 3, 1, 8.0, 4.0, 1200.0, 100, 3, 24000.0)
    (perf,) = rows(db, "SELECT count(*), max(inference_ms_p95) FROM model_performance WHERE camera_id = %s", (camera,))
    assert perf == (4, 80.0)


def test_window_counts_upsert_and_ignore_older_emissions(db: psycopg.Connection, camera: str) -> None:
    bucket = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    upsert = """
        INSERT INTO line_counts_1m AS t (bucket, camera_id, line_id, direction, count, final, updated_at)
        VALUES (%s, %s, 'l1', 'in', %s, %s, %s)
        ON CONFLICT (camera_id, line_id, direction, bucket)
        DO UPDATE SET count = EXCLUDED.count, final = EXCLUDED.final, updated_at = EXCLUDED.updated_at
        WHERE t.updated_at <= EXCLUDED.updated_at"""
    t0 = bucket + timedelta(minutes=1)
    db.execute(upsert, (bucket, camera, 5, False, t0))
    db.execute(upsert, (bucket, camera, 7, True, t0 + timedelta(seconds=30)))
    db.execute(upsert, (bucket, camera, 6, False, t0 + timedelta(seconds=10)))  # late, older: ignored
    assert rows(db, "SELECT count, final FROM line_counts_1m WHERE camera_id = %s", (camera,)) == [(7, True)]
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(upsert, (bucket + timedelta(seconds=5), camera, 1, False, t0))  # not a minute boundary


def test_alert_lifecycle_is_one_row_per_alert(db: psycopg.Connection, camera: str) -> None:
    triggered = datetime.now(UTC) - timedelta(minutes=30)
    upsert = """
        INSERT INTO alerts AS a (triggered_at, alert_id, rule, camera_id, severity, status, title, metric_value,
                                 threshold, updated_at, resolved_at, acknowledged_by)
        VALUES (%s, %s, 'high_latency', %s, 'error', %s, 'High latency', 1500, 1000, %s, %s, %s)
        ON CONFLICT (alert_id, triggered_at) DO UPDATE
        SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, resolved_at = EXCLUDED.resolved_at,
            acknowledged_by = EXCLUDED.acknowledged_by
        WHERE a.updated_at <= EXCLUDED.updated_at"""
    alert_id = f"{camera}:high_latency:1"
    steps = [
        ("active", triggered, None, None),
        ("acknowledged", triggered + timedelta(minutes=5), None, "ops"),
        ("resolved", triggered + timedelta(minutes=20), triggered + timedelta(minutes=20), "ops"),
        ("active", triggered + timedelta(minutes=1), None, None),  # a stale re-delivery
    ]
    for status, updated, resolved, ack in steps:
        db.execute(upsert, (triggered, alert_id, camera, status, updated, resolved, ack))
    (got,) = rows(
        db, "SELECT status, acknowledged_by, resolved_at IS NOT NULL FROM alerts WHERE camera_id = %s", (camera,)
    )
    assert got == ("resolved", "ops", True)


# --------------------------------------------------------------------------- reference tables


def test_camera_password_is_stored_encrypted(db: psycopg.Connection, camera: str) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    db.execute(
        """INSERT INTO cameras (camera_id, name, stream_url, stream_username, stream_password_enc, alert_thresholds)
           VALUES (%s, 'Door', 'rtsp://10.0.0.5:554/stream1', 'viewer', %s, '{"max_latency_ms": 800}')""",
        (camera, encrypt_password(password, SECRET)),
    )
    (blob,) = rows(db, "SELECT stream_password_enc FROM cameras WHERE camera_id = %s", (camera,))[0]
    assert password.encode() not in bytes(blob)
    (whole_row,) = rows(db, "SELECT c::text FROM cameras c WHERE camera_id = %s", (camera,))[0]
    assert password not in whole_row
    assert decrypt_password(blob, SECRET) == password

    with pytest.raises(psycopg.errors.CheckViolation, match="cameras_stream_password_is_encrypted"):
        db.execute("UPDATE cameras SET stream_password_enc = %s WHERE camera_id = %s", (password.encode(), camera))
    with pytest.raises(psycopg.errors.CheckViolation, match="cameras_stream_url_has_no_password"):
        db.execute("UPDATE cameras SET stream_url = 'rtsp://viewer:secret@10.0.0.5/x' WHERE camera_id = %s", (camera,))


def test_lines_and_zones_belong_to_their_camera(db: psycopg.Connection, camera: str) -> None:
    db.execute("INSERT INTO cameras (camera_id, timezone) VALUES (%s, 'Asia/Ho_Chi_Minh')", (camera,))
    db.execute(
        """INSERT INTO counting_lines (camera_id, line_id, start_x, start_y, end_x, end_y, count_mode)
           VALUES (%s, 'door', 10, 300, 600, 300, 'both')""",
        (camera,),
    )
    db.execute(
        """INSERT INTO zones (camera_id, zone_id, polygon, capacity, alert_threshold_pct, area_sqm)
           VALUES (%s, 'hall', '[[0,0],[100,0],[100,100]]', 50, 80, 25.5)""",
        (camera,),
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO zones (camera_id, zone_id, polygon) VALUES (%s, 'bad', '[[0,0],[1,1]]')", (camera,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO cameras (camera_id) VALUES ('has space')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("UPDATE cameras SET timezone = 'Mars/Olympus' WHERE camera_id = %s", (camera,))
    db.execute("DELETE FROM cameras WHERE camera_id = %s", (camera,))
    left = rows(
        db,
        """SELECT (SELECT count(*) FROM counting_lines WHERE camera_id = %(c)s)
                + (SELECT count(*) FROM zones WHERE camera_id = %(c)s)""",
        {"c": camera},
    )
    assert left == [(0,)]
