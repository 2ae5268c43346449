"""The local stack really works: Kafka, TimescaleDB through pgbouncer, Redis, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from core.settings import PROJECT_ROOT, get_settings
from infra.local import stack as local_stack
from models.topics import catalogue, ensure_topics

pytestmark = pytest.mark.integration


def consume(consumer, n: int, timeout_s: float = 30.0) -> list:
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    assert len(got) == n, f"consumed {len(got)} of {n} records within {timeout_s} s"
    return got


def connect_retrying(dsn: str, timeout_s: float = 30.0) -> psycopg.Connection:
    """After PGlite restarts, pgbouncer may fail the first attempt ("server conn crashed?")."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = psycopg.connect(dsn, prepare_threshold=None, autocommit=True)
            conn.execute("SELECT 1")
            return conn
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_kafka_keyed_records_keep_order_on_one_partition(kafka):
    topic = kafka.topic(partitions=3)
    producer = kafka.producer()
    for i in range(30):
        producer.produce(topic, key=f"cam-{i % 4}", value=str(i).encode())
    assert producer.flush(30) == 0
    by_key = defaultdict(list)
    partitions = defaultdict(set)
    for msg in consume(kafka.consumer(topic), 30):
        by_key[msg.key().decode()].append(int(msg.value()))
        partitions[msg.key().decode()].add(msg.partition())
    assert by_key == {f"cam-{k}": list(range(k, 30, 4)) for k in range(4)}
    assert all(len(p) == 1 for p in partitions.values())


def test_broker_does_not_auto_create_topics(kafka):
    missing = f"test.never-created.{uuid.uuid4().hex[:8]}"
    producer = kafka.producer(**{"message.timeout.ms": 3000})
    errors = []
    producer.produce(missing, b"x", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    assert missing not in kafka.admin.list_topics(timeout=10).topics


def test_transactions_work_on_the_single_node(kafka):
    topic = kafka.topic()
    producer = kafka.producer(**{"transactional.id": f"test-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)
    got = consume(kafka.consumer(topic, **{"isolation.level": "read_committed"}), 1)
    assert got[0].value() == b"committed"


def describe_configs(admin, topic: str) -> dict[str, str]:
    fut = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    entries = next(iter(fut.values())).result(timeout=30)
    return {k: v.value for k, v in entries.items()}


def test_ensure_topics_creates_the_catalogue_once(kafka):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    specs = catalogue(prefix, partitions=3)
    try:
        created = ensure_topics(kafka.bootstrap, specs)
        assert sorted(created) == sorted(s.name for s in specs)
        assert ensure_topics(kafka.bootstrap, specs) == []
        meta = kafka.admin.list_topics(timeout=10).topics
        for spec in specs:
            assert len(meta[spec.name].partitions) == 3
            cfg = describe_configs(kafka.admin, spec.name)
            for key, value in spec.config().items():
                assert cfg[key] == value, (spec.name, key)
        compacted = {s.name for s in specs if s.compacted}
        assert {f"{prefix}.camera-config.v1", f"{prefix}.alerts.v1"} <= compacted
    finally:
        names = [s.name for s in specs]
        for fut in kafka.admin.delete_topics(names, operation_timeout=30).values():
            fut.result(timeout=30)


def test_up_created_the_real_catalogue(stack, kafka):
    s = get_settings()
    meta = kafka.admin.list_topics(timeout=10).topics
    for spec in catalogue(s.kafka.topic_prefix, s.kafka.partitions):
        assert spec.name in meta
        assert len(meta[spec.name].partitions) == s.kafka.partitions
    assert describe_configs(kafka.admin, f"{s.kafka.topic_prefix}.camera-config.v1")["cleanup.policy"] == "compact"


def test_redis_round_trip(redis_client):
    key = f"test:{uuid.uuid4().hex}"
    assert redis_client.set(key, "hello", ex=60)
    assert redis_client.get(key) == b"hello"
    assert redis_client.delete(key) == 1


def test_timescaledb_is_installed(pg):
    (version,) = pg.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert version.startswith("2.")
    table = f"test_ht_{uuid.uuid4().hex[:8]}"
    try:
        pg.execute(f"CREATE TABLE {table} (ts timestamptz NOT NULL, n int)")
        pg.execute(f"SELECT create_hypertable('{table}', 'ts')")
        pg.execute(f"INSERT INTO {table} SELECT now() - i * interval '1 minute', 1 FROM generate_series(0, 9) i")
        rows = pg.execute(f"SELECT time_bucket('1 hour', ts), sum(n) FROM {table} GROUP BY 1").fetchall()
        assert sum(r[1] for r in rows) == 10
    finally:
        pg.execute(f"DROP TABLE IF EXISTS {table}")


def test_many_clients_share_the_database_through_pgbouncer(stack, pg):
    table = f"test_pool_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE TABLE {table} (worker int, i int)")
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            with psycopg.connect(stack.db_dsn, prepare_threshold=None) as conn:
                for i in range(10):
                    with conn.transaction():
                        conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (w, i))
                        (n,) = conn.execute(f"SELECT count(*) FROM {table} WHERE worker = %s", (w,)).fetchone()
                        assert n == i + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(5)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert pg.execute(f"SELECT count(*) FROM {table}").fetchone() == (50,)
    finally:
        pg.execute(f"DROP TABLE {table}")


def test_database_keeps_data_across_down_and_up(stack):
    settings = get_settings()
    table = f"test_persist_{uuid.uuid4().hex[:8]}"
    with connect_retrying(stack.db_dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (v text)")
        conn.execute(f"INSERT INTO {table} VALUES ('kept')")
    try:
        local_stack.down(settings, ["db"])
        assert {r.name: r.state for r in local_stack.status(settings, ["db"])} == {
            "pglite": "stopped",
            "pgbouncer": "stopped",
        }
        local_stack.up(settings, ["db"])
        with connect_retrying(stack.db_dsn) as conn:
            assert conn.execute(f"SELECT v FROM {table}").fetchall() == [("kept",)]
    finally:
        local_stack.up(settings, ["db"])
        with connect_retrying(stack.db_dsn) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_database_restart_behind_pgbouncer(stack):
    """PGlite stops and starts again while pgbouncer stays up: a connected client's query waits in
    pgbouncer's queue and completes; a new client is refused at once with pgbouncer's reason."""
    settings = get_settings()
    conn = connect_retrying(stack.db_dsn)
    result: dict[str, object] = {}

    def query() -> None:
        try:
            result["row"] = conn.execute("SELECT 42").fetchone()
        except Exception as exc:
            result["error"] = exc

    waiting = threading.Thread(target=query)
    try:
        local_stack.down(settings, ["pglite"])
        waiting.start()
        time.sleep(1.5)  # pgbouncer has tried to reach PGlite and failed by now
        assert waiting.is_alive() and not result
        with pytest.raises(psycopg.OperationalError, match="server login has been failing"):
            psycopg.connect(stack.db_dsn, prepare_threshold=None, connect_timeout=5).execute("SELECT 1")
        local_stack.up(settings, ["pglite"])
        waiting.join(30)
        assert result == {"row": (42,)}
        with connect_retrying(stack.db_dsn) as fresh:
            assert fresh.execute("SELECT 1").fetchone() == (1,)
    finally:
        local_stack.up(settings, ["db"])
        if waiting.is_alive():
            waiting.join(60)
        conn.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra.local", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_exits_0_when_all_healthy(stack):
    result = run_cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["redis", "pglite", "pgbouncer", "kafka", "prometheus"]
    assert all(" running " in ln and "pid " in ln and "log " in ln for ln in lines)


def test_status_exits_1_for_a_stack_that_is_not_running(tmp_path: Path):
    # Another stack (own local_dir and ports) that was never started: the shared one is untouched.
    env = {
        "FOOTFALL_LOCAL_DIR": str(tmp_path),
        "FOOTFALL_KAFKA__BOOTSTRAP": "127.0.0.1:29092",
        "FOOTFALL_DATABASE__URL": "postgresql://footfall:footfall@127.0.0.1:25432/footfall",
        "FOOTFALL_REDIS__URL": "redis://127.0.0.1:26379/0",
    }
    result = run_cli("status", env=env)
    assert result.returncode == 1
    assert all(" stopped " in ln for ln in result.stdout.splitlines())
    assert "port 29092,29093" in result.stdout


def test_status_of_one_service(stack):
    result = run_cli("status", "redis")
    assert result.returncode == 0
    assert [ln.split()[0] for ln in result.stdout.splitlines()] == ["redis"]


def test_offsets_commit_and_resume(kafka):
    topic = kafka.topic()
    producer = kafka.producer()
    for i in range(4):
        producer.produce(topic, str(i).encode())
    producer.flush(30)
    group = f"test-{uuid.uuid4().hex[:8]}"
    first = kafka.consumer(topic, **{"group.id": group})
    msgs = consume(first, 2)
    first.commit(message=msgs[-1], asynchronous=False)
    first.close()
    kafka._consumers.remove(first)
    second = kafka.consumer(topic, **{"group.id": group})
    assert [int(m.value()) for m in consume(second, 2)] == [2, 3]
    committed = second.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 2
