"""The sinks in a real Faust worker, through the real broker and database.

Each test gets its own topic prefix (``test-<uuid>``: its own topics and consumer group) and its
own camera ids, and runs ``python -m agents.app worker`` as a subprocess with the push agent off.
Records are produced directly (CrossingEvent, WindowCount, ...), as the counting agents would.

- rows are visible within 2 s; a replay of the same records adds no rows; a malformed message
  goes to the dead-letter topic and does not stop the sink;
- SIGKILL in the middle of a stream, restart: nothing lost, nothing duplicated;
- a database outage (a TCP proxy between the worker and pgbouncer is cut for ~20 s while records
  keep coming): logged once, every row arrives exactly once after it is restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

PARTITIONS = 2


# --------------------------------------------------------------------------- helpers


class Worker:
    """``python -m agents.app worker`` with the sinks on, in its own process group."""

    def __init__(self, prefix: str, datadir: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.prefix, self.datadir, self.log, self.extra = prefix, datadir, log, env or {}
        self.proc: subprocess.Popen | None = None
        self._offset = 0

    def start(self, timeout: float = 60.0) -> None:
        env = (
            os.environ
            | {
                "FOOTFALL_KAFKA__TOPIC_PREFIX": self.prefix,
                "FOOTFALL_KAFKA__PARTITIONS": str(PARTITIONS),
                "FOOTFALL_WORKER__PUSH": "false",
                "FOOTFALL_WORKER__SINKS": "true",
                "FOOTFALL_WORKER__CAGG_REFRESH": "false",
                "FOOTFALL_WORKER__DATADIR": str(self.datadir),
                "FOOTFALL_WORKER__SINK_BATCH_WITHIN_S": "0.3",
            }
            | self.extra
        )
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "agents.app", "worker", "-l", "info", "--without-web"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + timeout
        while "[^Worker]: Ready" not in self.output():
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker not ready after {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        # Ready is logged once partitions are assigned; give the fetchers a moment.
        time.sleep(1.0)

    def output(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode("utf-8", "replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class Proxy:
    """A TCP proxy that can be cut (open connections reset, new ones closed at once) and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cut_off = threading.Event()
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            try:
                up = socket.create_connection(self.upstream, timeout=5)
                up.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns |= {client, up}
            threading.Thread(target=self._pump, args=(client, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self.lock:
                self.conns -= {src, dst}

    def cut(self) -> None:
        self.cut_off.set()
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.stopped = True
        self.cut()
        self.server.close()


@pytest.fixture
def env(stack, tmp_path) -> Iterator[dict]:
    """A fresh topic prefix with the catalogue created, a camera id, a producer; cleaned up after."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from models.topics import catalogue, ensure_topics

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    ensure_topics(stack.bootstrap, catalogue(prefix, PARTITIONS))
    cam = f"sink-{uuid.uuid4().hex[:10]}"
    producer = Producer({"bootstrap.servers": stack.bootstrap, "acks": "all", "linger.ms": 5})
    workers: list[Worker] = []

    def worker(**extra: str) -> Worker:
        w = Worker(prefix, tmp_path / "faust", tmp_path / "worker.log", extra)
        workers.append(w)
        return w

    yield {"prefix": prefix, "cam": cam, "producer": producer, "worker": worker, "bootstrap": stack.bootstrap}
    for w in workers:
        w.kill()
    producer.flush(10)
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)
    import psycopg

    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as conn:
        for table in ("crossing_events", "zone_events", "line_counts_1m", "occupancy_samples", "stream_stats"):
            conn.execute(f"DELETE FROM {table} WHERE camera_id LIKE %s", (cam + "%",))


def produce(env: dict, name: str, records: list) -> None:
    from models.topics import topic_name

    topic = topic_name(env["prefix"], name)
    for r in records:
        env["producer"].produce(topic, key=r.camera_id.encode(), value=r.to_json())
    env["producer"].flush(30)


def crossings(cam: str, start: int, n: int, t0: float, cams: int = 4) -> list:
    from models.records import CrossingEvent

    return [
        CrossingEvent(event_id=f"{cam}-{i % cams}:l1:{i}:in:{i}", camera_id=f"{cam}-{i % cams}", line_id="l1",
                      track_id=i, direction="in" if i % 3 else "out", frame_seq=i, occurred_at=t0 + i * 0.01,
                      processed_at=t0 + i * 0.01 + 0.05, x=10.0, y=20.0)
        for i in range(start, start + n)
    ]  # fmt: skip


def count(dsn: str, sql: str, cam: str) -> int:
    import psycopg

    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        return conn.execute(sql, (cam + "%",)).fetchone()[0]


CROSSING_ROWS = "SELECT count(*) FROM crossing_events WHERE camera_id LIKE %s"
CROSSING_IDS = "SELECT count(DISTINCT event_id) FROM crossing_events WHERE camera_id LIKE %s"


def wait_for(dsn: str, sql: str, cam: str, expected: int, timeout: float) -> tuple[int, float]:
    """Poll until the query gives ``expected``; returns (last value, seconds waited). A refused
    connection (pgbouncer right after the database restarted) is polled again."""
    import psycopg

    t0 = time.monotonic()
    n = -1
    while time.monotonic() - t0 < timeout:
        try:
            n = count(dsn, sql, cam)
        except psycopg.OperationalError:
            time.sleep(0.5)
            continue
        if n >= expected:
            break
        time.sleep(0.05)
    return n, time.monotonic() - t0


# --------------------------------------------------------------------------- tests


def test_rows_visible_within_2s_replay_adds_nothing_malformed_dead_lettered(env, stack):
    from models.records import OccupancySample, StreamStats, WindowCount, ZoneEvent
    from models.topics import topic_name

    cam = env["cam"]
    w = env["worker"]()
    w.start()
    t0 = time.time()
    evs = crossings(cam, 0, 200, t0)
    zone = [
        ZoneEvent(
            event_id=f"{cam}-0:z:{i}",
            camera_id=f"{cam}-0",
            zone_id="z",
            track_id=i,
            kind="enter",
            frame_seq=i,
            occurred_at=t0 + i,
            processed_at=t0 + i,
        )
        for i in range(5)
    ]
    windows = [
        WindowCount(
            camera_id=f"{cam}-0",
            line_id="l1",
            direction="in",
            window_start=60.0 * (int(t0) // 60),
            window_end=60.0 * (int(t0) // 60) + 60,
            count=c,
            updated_at=t0 + c,
        )
        for c in (1, 2, 3)
    ]
    occ = [OccupancySample(camera_id=f"{cam}-0", zone_id="z", at=t0 + i, count=i) for i in range(5)]
    stats = [StreamStats(camera_id=f"{cam}-0", grabber_id="g", at=t0 + i, status="online", window_s=10.0,
                         input_fps=10.0, processed_fps=10.0, dropped_frames=0, decode_errors=0, reconnects=0)
             for i in range(5)]  # fmt: skip
    topic = topic_name(env["prefix"], "crossings")
    env["producer"].produce(topic, key=f"{cam}-0".encode(), value=b'{"event_id": "broken"')  # malformed
    produced_at = time.monotonic()
    produce(env, "crossings", evs)
    produce(env, "zone-events", zone)
    produce(env, "window-counts", windows)
    produce(env, "occupancy", occ)
    produce(env, "stream-stats", stats)

    n, waited = wait_for(stack.db_dsn, CROSSING_ROWS, cam, 200, timeout=10)
    visible_after = time.monotonic() - produced_at
    assert n == 200
    assert visible_after < 2.0, f"crossings visible only after {visible_after:.2f} s"
    for sql, expected in (
        ("SELECT count(*) FROM zone_events WHERE camera_id LIKE %s", 5),
        ("SELECT count(*) FROM occupancy_samples WHERE camera_id LIKE %s", 5),
        ("SELECT count(*) FROM stream_stats WHERE camera_id LIKE %s", 5),
        ("SELECT max(count) FROM line_counts_1m WHERE camera_id LIKE %s", 3),
    ):
        got, _ = wait_for(stack.db_dsn, sql, cam, expected, timeout=2)
        assert got == expected, sql

    # Replay everything, then a sentinel behind it on every partition: once the sentinels are in,
    # the replay has been processed.
    produce(env, "crossings", evs)
    produce(env, "window-counts", windows[:2])  # older emissions must not overwrite the newest
    sentinels = crossings(cam, 1000, 8, t0)
    produce(env, "crossings", sentinels)
    n, _ = wait_for(stack.db_dsn, CROSSING_ROWS, cam, 208, timeout=10)
    time.sleep(0.5)
    assert count(stack.db_dsn, CROSSING_ROWS, cam) == 208
    assert count(stack.db_dsn, "SELECT max(count) FROM line_counts_1m WHERE camera_id LIKE %s", cam) == 3

    # The malformed message is on the dead-letter topic with the reason.
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": env["bootstrap"], "group.id": f"t-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest"})  # fmt: skip
    c.subscribe([topic_name(env["prefix"], "dead-letter")])
    try:
        msg, deadline = None, time.monotonic() + 10
        while msg is None and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and msg.error():
                msg = None
    finally:
        c.close()
    assert msg is not None, "nothing on the dead-letter topic"
    dl = json.loads(msg.value())
    assert dl["source_topic"] == topic and "not valid JSON" in dl["error"] and dl["value"].startswith('{"event_id"')


@pytest.mark.slow  # the restarted worker waits ~50 s for the killed member's slot in the group
def test_sigkill_mid_stream_loses_and_duplicates_nothing(env, stack):
    cam = env["cam"]
    w = env["worker"](FOOTFALL_WORKER__SINK_BATCH_WITHIN_S="1.0", FOOTFALL_WORKER__SINK_BATCH_MAX="500")
    w.start()
    t0 = time.time()
    total = 0
    for _ in range(6):  # a steady stream, so batches are always open
        produce(env, "crossings", crossings(cam, total, 300, t0))
        total += 300
        time.sleep(0.15)
    w.kill(signal.SIGKILL)
    before = count(stack.db_dsn, CROSSING_ROWS, cam)
    assert before < total, "the kill came after everything was written: not mid-stream"
    produce(env, "crossings", crossings(cam, total, 600, t0))
    total += 600
    w.start()
    n, _ = wait_for(stack.db_dsn, CROSSING_ROWS, cam, total, timeout=30)
    time.sleep(1.0)
    assert count(stack.db_dsn, CROSSING_ROWS, cam) == total
    assert count(stack.db_dsn, CROSSING_IDS, cam) == total


def through_outage(env: dict, stack, w, *, stop, start, down_s: float) -> str:
    """Produce crossings in bursts before, during (``stop()`` .. ``start()``, ``down_s`` seconds) and
    after a database outage; assert that every row arrived exactly once; return the worker's log."""
    cam = env["cam"]
    w.start()
    t0 = time.time()
    total = 0

    def burst() -> None:
        nonlocal total
        produce(env, "crossings", crossings(cam, total, 50, t0))
        total += 50

    burst()
    wait_for(stack.db_dsn, CROSSING_ROWS, cam, total, timeout=10)
    stop()
    try:
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < down_s:  # records keep coming while the database is away
            burst()
            time.sleep(0.5)
        with contextlib.suppress(psycopg.OperationalError):  # where the test can still look: nothing got in
            assert count(stack.db_dsn, CROSSING_ROWS, cam) < total
    finally:
        start()
    burst()
    wait_for(stack.db_dsn, CROSSING_ROWS, cam, total, timeout=60)
    time.sleep(1.0)
    assert count(stack.db_dsn, CROSSING_ROWS, cam) == total
    assert count(stack.db_dsn, CROSSING_IDS, cam) == total
    return w.output()


def test_database_outage_behind_a_proxy_loses_nothing(env, stack):
    db = stack.db
    proxy = Proxy((db.host, db.port))
    url = f"postgresql://{db.user}:{db.password}@127.0.0.1:{proxy.port}/{db.dbname}"
    w = env["worker"](FOOTFALL_DATABASE__URL=url)

    try:
        out = through_outage(env, stack, w, stop=proxy.cut, start=proxy.restore, down_s=20)
        assert out.count("crossings sink: database write failed") == 1, out[-3000:]
        assert "crossings sink: database writes work again" in out
        assert url not in out and f":{db.password}@" not in out  # the password is never logged
    finally:
        w.kill()
        proxy.close()


@pytest.mark.slow  # PGlite takes ~10-20 s to stop and start again
def test_database_stopped_and_restarted_loses_nothing(env, stack):
    """The real thing behind the proxy test: the database process itself is stopped (the local
    stack's ``down pglite``) while records keep coming, then started again. pgbouncer holds the
    sink's queries while its server is away (``query_wait_timeout`` 60 s) or reports the lost server
    connection; either way every row gets in, once."""
    from core.settings import get_settings
    from infra.local import stack as local_stack

    w = env["worker"]()
    try:
        through_outage(
            env,
            stack,
            w,
            stop=lambda: local_stack.down(get_settings(), ["pglite"]),
            start=lambda: local_stack.up(get_settings(), ["pglite"], ensure_topics=False, migrate_db=False),
            down_s=15,
        )
    finally:
        w.kill()
