"""Database health on the real stack: ``sql.health`` samples the local database; a worker's leader
samples it every second, publishes ``db-health``, exports the ``footfall_db_*`` gauges and the sink
writes ``db_health`` rows; a ``db_connections_pct`` rule raises one alert for a database at 95 %
(delivered once to a webhook) that resolves at 10 %.

Rows written here are deleted afterwards: the synthetic databases' by name, the real database's by
the exact sample times this test's worker published.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from agents_helpers import Scratch, Worker, drain, produce, values
from alert_helpers import SECRET, Receiver, wait_for

from models.records import AlertRule, DbHealth
from sql.migrate import migrate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dsn(stack) -> str:
    migrate(stack.db_dsn)  # 009 creates db_health; a no-op when applied
    return stack.db_dsn


def test_sample_of_the_real_database_is_sane(dsn):
    from sql.health import sample_dsn

    t0 = time.time()
    s = sample_dsn(dsn)
    assert s.database == psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    assert abs(s.at - t0) < 120  # the server's clock
    assert s.max_connections and s.max_connections > 0
    assert s.database_bytes and s.database_bytes > 1_000_000
    tables = {h.hypertable: h for h in s.hypertables}
    assert {"crossing_events", "stream_stats", "alerts", "db_health"} <= set(tables)
    assert all(h.total_bytes > 0 and h.chunks >= 0 and 0 <= h.compressed_chunks <= h.chunks for h in tables.values())
    assert all(h.compression_ratio is None or h.compression_ratio > 0 for h in tables.values())
    views = {c.view: c for c in s.caggs}
    assert {"crossings_1m", "crossings_1h", "crossings_1d", "occupancy_1m", "stream_health_1h"} <= set(views)
    assert all(c.lag_s is None or c.lag_s >= 0 for c in views.values())
    if s.connections is None:  # PGlite: pg_stat_activity lists nothing
        assert any(x.startswith("connections") for x in s.skipped)
        assert s.connections_pct is None and s.slow_queries is None
    else:  # a real PostgreSQL: this connection at least
        assert 1 <= s.connections <= s.max_connections and 0 < s.connections_pct <= 100 and s.slow_queries >= 0
    assert all(not x.startswith(("hypertables", "caggs", "database")) for x in s.skipped), s.skipped


@pytest.fixture(scope="module")
def world(stack, dsn, tmp_path_factory):
    scratch = Scratch(stack.bootstrap)
    receiver = Receiver().start()
    env = {
        "FOOTFALL_WORKER__SINKS": "true",
        "FOOTFALL_WORKER__CAGG_REFRESH": "false",
        "FOOTFALL_WORKER__SINK_BATCH_WITHIN_S": "0.5",
        "FOOTFALL_DATABASE__URL": dsn,
        "FOOTFALL_ALERTING__DB_HEALTH_INTERVAL_S": "1",
        "FOOTFALL_ALERTING__STARTUP_GRACE_S": "0",
        "FOOTFALL_ALERTING__TICK_S": "0.25",
        "FOOTFALL_ALERTING__WEBHOOK_SECRET": SECRET,
        "FOOTFALL_ALERTING__BACKOFF_BASE_S": "0.2",
    }
    worker = Worker(scratch, tmp_path_factory.mktemp("dbhealth"), env=env).start()
    try:
        worker.wait_ready()
        yield scratch, receiver, worker
    finally:
        worker.stop()
        receiver.stop()
        real = [h for h in values(drain(scratch.bootstrap, scratch.topic("db-health"), idle_s=2, timeout_s=20))]
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            for h in real:  # the exact keys this worker wrote (synthetic ones are deleted by their tests)
                conn.execute("DELETE FROM db_health WHERE database = %s AND at = to_timestamp(%s)",
                             (h["database"], h["at"]))  # fmt: skip
        scratch.close()


def test_leader_samples_publishes_exports_and_the_sink_writes_rows(world, dsn):
    scratch, _receiver, worker = world
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]

    def samples():
        got = values(drain(scratch.bootstrap, scratch.topic("db-health"), idle_s=1, timeout_s=10))
        return [h for h in got if h["database"] == dbname] if len(got) >= 2 else None

    got = wait_for("two samples on db-health", samples, timeout=30, tail=worker.tail)
    assert got[1]["at"] > got[0]["at"]
    assert {h["hypertable"] for h in got[-1]["hypertables"]} >= {"crossing_events", "db_health"}
    last = got[-1]

    def row():
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            return conn.execute(
                "SELECT max_connections, connections_pct, hypertables, caggs, skipped FROM db_health "
                "WHERE database = %s AND at = to_timestamp(%s)", (dbname, last["at"])).fetchone()  # fmt: skip

    max_conn, pct, tables, caggs, skipped = wait_for("the sample's row", row, timeout=20, tail=worker.tail)
    assert max_conn == last["max_connections"] and pct == last["connections_pct"]
    assert {t["hypertable"] for t in tables} == {t["hypertable"] for t in last["hypertables"]}
    assert [c["view"] for c in caggs] == [c["view"] for c in last["caggs"]] and skipped == last["skipped"]

    import urllib.request

    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'footfall_db_hypertable_bytes{hypertable="crossing_events"}' in text
    assert 'footfall_db_cagg_refresh_lag_seconds{view="crossings_1m"}' in text
    assert "footfall_db_connections_pct " in text and "footfall_db_slow_queries " in text


def test_connections_at_95_pct_raise_one_alert_and_10_pct_resolve_it(world, dsn):
    scratch, receiver, worker = world
    db = f"testdb-{uuid.uuid4().hex[:8]}"
    hook = f"/db/{db}"
    rule = AlertRule(rule_id=f"dbconn-{db}", metric="db_connections_pct", comparison=">", threshold=80.0,
                     resolve_threshold=70.0, cooldown_s=0.0, severity="warning",
                     message="High database connection utilization on {database}: {value} %",
                     channels=[f"webhook:{receiver.url(hook)}"], updated_at=time.time())  # fmt: skip
    produce(scratch.bootstrap, scratch.topic("alert-rules"), [(rule.rule_id, rule.to_json())])
    wait_for("the rule on the worker", lambda: rule.rule_id in worker.get("/footfall/alerting/")[1]["rules"],
             tail=worker.tail)  # fmt: skip

    def send(pct: float) -> None:
        h = DbHealth(database=db, at=time.time(), max_connections=100, connections=int(pct), connections_pct=pct,
                     slow_queries=0)  # fmt: skip
        produce(scratch.bootstrap, scratch.topic("db-health"), [(db, h.to_json())])

    try:
        for _ in range(3):  # several samples of one incident
            send(95.0)
            time.sleep(0.3)
        [fired] = wait_for("the alert", lambda: receiver.delivered(hook), tail=worker.tail)
        alert = fired.body["alert"]
        assert fired.signed_ok and fired.body["event"] == "fired"
        assert alert["fingerprint"] == f"{rule.rule_id}|db:{db}" and alert["camera_id"] is None
        assert alert["title"] == f"High database connection utilization on {db}: 95.0 %"
        send(75.0)  # inside the hysteresis band: still firing
        time.sleep(1.5)
        assert len(receiver.delivered(hook)) == 1
        send(10.0)
        wait_for("the resolution", lambda: len(receiver.delivered(hook)) == 2, tail=worker.tail)
        time.sleep(1.5)
        assert receiver.keys(hook) == [f"{alert['alert_id']}:fired", f"{alert['alert_id']}:resolved"]

        def rows():
            with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
                got = conn.execute("SELECT connections_pct FROM db_health WHERE database = %s ORDER BY at",
                                   (db,)).fetchall()  # fmt: skip
            return got if len(got) == 5 else None

        assert [r[0] for r in wait_for("the sink's rows", rows, tail=worker.tail)] == [95.0, 95.0, 95.0, 75.0, 10.0]
    finally:
        produce(scratch.bootstrap, scratch.topic("alert-rules"), [(rule.rule_id, None)])
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            conn.execute("DELETE FROM db_health WHERE database = %s", (db,))
            conn.execute("DELETE FROM alerts WHERE fingerprint = %s", (f"{rule.rule_id}|db:{db}",))


def test_sink_statement_is_idempotent(dsn):
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from agents.rows import DB_HEALTH
    from agents.sinks import TableWriter

    db = f"testdb-{uuid.uuid4().hex[:8]}"
    t = datetime.now(UTC).timestamp()
    recs = [DbHealth(database=db, at=t + i, max_connections=100, skipped=["connections: none"]) for i in range(3)]

    async def write() -> None:
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False,
                                   kwargs={"prepare_threshold": None, "autocommit": True})  # fmt: skip
        await pool.open()

        async def get():
            return pool

        try:
            await TableWriter(DB_HEALTH, pool=get, max_wait_s=0.5).write([DB_HEALTH.row(r) for r in recs])
        finally:
            await pool.close()

    try:
        asyncio.run(write())
        asyncio.run(write())  # a replay
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            got = conn.execute("SELECT skipped, connections FROM db_health WHERE database = %s", (db,)).fetchall()
        assert got == [(["connections: none"], None)] * 3
    finally:
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            conn.execute("DELETE FROM db_health WHERE database = %s", (db,))
