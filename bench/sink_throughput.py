"""Sink throughput and latency through the real broker, a real Faust worker and the real database.

    python -m bench.sink_throughput [--cameras 100 500] [--seconds 20] [--backlog 60000]

For each camera count, a worker (``faust -A agents.app worker``, sinks only: push and the
aggregate refresher off) consumes its own topics (prefix ``bench-<uuid>``) and:

1. **latency at load**: this process produces, for ``--seconds``, what N cameras produce per
   second (per camera: ``--crossings`` crossings, ``--occupancy`` occupancy samples and
   ``--windows`` window-count emissions), with ``occurred_at`` = the moment of producing. A poller
   reads new crossing rows every ``--poll`` seconds; a row's latency is (first poll that sees it) -
   occurred_at, so figures carry up to one poll interval of resolution. Reported: p50/p99/max and
   the rows/s the sink sustained (all three tables).
2. **capacity** (once, with ``--backlog`` rows): a backlog of crossings + window counts + occupancy
   is produced before the worker starts; rows/s = rows / time to drain it completely.

Prints JSON. Everything written is deleted afterwards (topics and rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from core.settings import PROJECT_ROOT, get_settings
from models.records import CrossingEvent, OccupancySample, WindowCount
from models.topics import catalogue, ensure_topics, topic_name

PARTITIONS = 4


def start_worker(prefix: str, dsn: str, log: Path, batch_max: int, within_s: float) -> subprocess.Popen:
    env = os.environ | {
        "FOOTFALL_KAFKA__TOPIC_PREFIX": prefix,
        "FOOTFALL_KAFKA__PARTITIONS": str(PARTITIONS),
        "FOOTFALL_WORKER__PUSH": "false",
        "FOOTFALL_WORKER__CAGG_REFRESH": "false",
        "FOOTFALL_WORKER__DATADIR": str(log.parent / "faust"),
        "FOOTFALL_WORKER__SINK_BATCH_MAX": str(batch_max),
        "FOOTFALL_WORKER__SINK_BATCH_WITHIN_S": str(within_s),
    }
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "agents.app", "worker", "-l", "info", "--without-web"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Load:
    """Records for N cameras; ``emit(producer, t)`` produces one second's worth at event time ``t``."""

    def __init__(self, prefix: str, tag: str, cameras: int, crossings: float, occupancy: float, windows: float):
        self.prefix, self.tag, self.cameras = prefix, tag, cameras
        self.rates = {"crossings": crossings, "occupancy": occupancy, "window-counts": windows}
        self.carry = dict.fromkeys(self.rates, 0.0)
        self.seq = 0
        self.counts = dict.fromkeys(self.rates, 0)
        self.topics = {k: topic_name(prefix, k) for k in self.rates}

    def cam(self, i: int) -> str:
        return f"{self.tag}-{i % self.cameras}"

    def emit(self, producer: Producer, t: float, seconds: float = 1.0) -> int:
        n_rows = 0
        for kind, rate in self.rates.items():
            want = rate * self.cameras * seconds + self.carry[kind]
            n = int(want)
            self.carry[kind] = want - n
            for _ in range(n):
                self.seq += 1
                s, cam = self.seq, self.cam(self.seq)
                if kind == "crossings":
                    rec = CrossingEvent(event_id=f"{cam}:l1:{s}:in:{s}", camera_id=cam, line_id="l1", track_id=s,
                                        direction="in" if s % 2 else "out", frame_seq=s, occurred_at=t,
                                        processed_at=t, x=1.0, y=1.0)  # fmt: skip
                elif kind == "occupancy":
                    rec = OccupancySample(camera_id=cam, zone_id="z", at=t + s * 1e-6, count=s % 9)
                else:
                    w0 = 60.0 * (t // 60)
                    rec = WindowCount(camera_id=cam, line_id=f"l{s % 2}", direction="in" if s % 4 < 2 else "out",
                                      window_start=w0, window_end=w0 + 60, count=s % 50,
                                      updated_at=t + s * 1e-6)  # fmt: skip
                while True:
                    try:
                        producer.produce(self.topics[kind], key=cam.encode(), value=rec.to_json())
                        break
                    except BufferError:
                        producer.poll(0.05)
                n_rows += 1
                self.counts[kind] += 1
            producer.poll(0)
        return n_rows


def wait_ready(log: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "[^Worker]: Ready" in text or "Worker ready" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError("worker not ready")


def count_rows(conn: psycopg.Connection, tag: str) -> int:
    q = (
        "SELECT (SELECT count(*) FROM crossing_events WHERE camera_id LIKE %(p)s)"
        " + (SELECT count(*) FROM occupancy_samples WHERE camera_id LIKE %(p)s)"
        " + (SELECT count(*) FROM line_counts_1m WHERE camera_id LIKE %(p)s)"
    )
    return conn.execute(q, {"p": tag + "-%"}).fetchone()[0]


def cleanup(conn: psycopg.Connection, admin: AdminClient, prefix: str, tag: str) -> None:
    for table in ("crossing_events", "occupancy_samples", "line_counts_1m"):
        conn.execute(f"DELETE FROM {table} WHERE camera_id LIKE %s", (tag + "-%",))
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)


def run_latency(args, cameras: int, dsn: str, admin: AdminClient, bootstrap: str, workdir: Path) -> dict:
    prefix, tag = f"bench-{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, catalogue(prefix, PARTITIONS))
    log = workdir / f"worker-{cameras}.log"
    proc = start_worker(prefix, dsn, log, args.batch_max, args.within)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "compression.type": "lz4"})
    conn = psycopg.connect(dsn, prepare_threshold=None, autocommit=True)
    try:
        wait_ready(log, proc)
        time.sleep(2.0)
        load = Load(prefix, tag, cameras, args.crossings, args.occupancy, args.windows)
        seen: dict[str, float] = {}
        latencies: list[float] = []
        produced = 0
        rows_before = count_rows(conn, tag)
        t_start = time.time()
        end = t_start + args.seconds

        def pace() -> None:
            """Produce on a steady clock in its own thread, so slow polls never hold the load back."""
            nonlocal produced
            next_emit = t_start
            while next_emit < end:
                produced += load.emit(producer, time.time(), args.tick)
                next_emit += args.tick
                time.sleep(max(0.0, next_emit - time.time()))
            producer.flush(30)

        def poll(since: float) -> None:
            rows = conn.execute(
                "SELECT event_id, extract(epoch FROM occurred_at)::float8 FROM crossing_events"
                " WHERE occurred_at >= to_timestamp(%s) AND camera_id LIKE %s",
                (since, tag + "-%"),
            ).fetchall()
            t_seen = time.time()
            for eid, occurred in rows:
                if eid not in seen:
                    seen[eid] = t_seen
                    latencies.append(t_seen - occurred)

        producing = threading.Thread(target=pace, daemon=True)
        producing.start()
        while producing.is_alive():
            # Rows older than 10 s and still unseen are picked up by the final pass below.
            poll(max(t_start - 1, time.time() - 10))
            time.sleep(args.poll)
        total_cross = load.counts["crossings"]
        deadline = time.time() + 60
        while len(seen) < total_cross and time.time() < deadline:
            poll(t_start - 1)
            time.sleep(args.poll)
        t_done = time.time()
        rows_written = count_rows(conn, tag) - rows_before
        offered = sum(load.rates.values()) * cameras
        lat = sorted(latencies)
        q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
        return {
            "cameras": cameras,
            "offered_rows_per_s": round(offered, 1),
            "seconds": args.seconds,
            "crossings_produced": total_cross,
            "crossings_visible": len(seen),
            "messages_produced": produced,
            "rows_in_db": rows_written,  # window-count emissions of one key and minute share a row
            "messages_per_s_sustained": round(produced / (t_done - t_start), 1),
            "latency_s": {
                "p50": round(q[49], 3),
                "p99": round(q[98], 3),
                "max": round(lat[-1], 3) if lat else None,
                "poll_resolution_s": args.poll,
            },
        }
    finally:
        stop_worker(proc)
        producer.flush(10)
        cleanup(conn, admin, prefix, tag)
        conn.close()


def run_capacity(args, dsn: str, admin: AdminClient, bootstrap: str, workdir: Path) -> dict:
    prefix, tag = f"bench-{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, catalogue(prefix, PARTITIONS))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all", "compression.type": "lz4"})
    conn = psycopg.connect(dsn, prepare_threshold=None, autocommit=True)
    # One row per record: window counts spread over distinct keys (every emission its own minute).
    load = Load(prefix, tag, 500, 1.0, 1.0, 1.0)
    t = time.time() - 3600
    produced = 0
    while produced < args.backlog:
        produced += load.emit(producer, t, 1.0)
        t += 60.0  # next minute: window-count keys stay distinct
    producer.flush(60)
    log = workdir / "worker-capacity.log"
    proc = start_worker(prefix, dsn, log, args.batch_max, args.within)
    try:
        wait_ready(log, proc)
        t0 = time.time()
        first, n = None, 0
        deadline = t0 + 300
        while time.time() < deadline:
            n = count_rows(conn, tag)
            if first is None and n > 0:
                first = time.time()
            if n >= produced:
                break
            time.sleep(0.25)
        t1 = time.time()
        return {
            "backlog_rows": produced,
            "rows_in_db": n,
            "drain_s": round(t1 - (first or t0), 2),
            "rows_per_s": round(n / max(t1 - (first or t0), 1e-9), 1),
            "batch_max": args.batch_max,
        }
    finally:
        stop_worker(proc)
        cleanup(conn, admin, prefix, tag)
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--crossings", type=float, default=1.0, help="crossings per camera per second")
    ap.add_argument("--occupancy", type=float, default=1.0, help="occupancy samples per camera per second")
    ap.add_argument("--windows", type=float, default=1.0, help="window-count emissions per camera per second")
    ap.add_argument("--tick", type=float, default=0.1, help="produce every this many seconds")
    ap.add_argument("--poll", type=float, default=0.1, help="database poll interval for visibility")
    ap.add_argument("--backlog", type=int, default=60000, help="rows for the capacity run (0 = skip)")
    ap.add_argument("--batch-max", type=int, default=get_settings().worker.sink_batch_max)
    ap.add_argument("--within", type=float, default=get_settings().worker.sink_batch_within_s)
    args = ap.parse_args(argv)
    s = get_settings()
    dsn = s.database.url.get_secret_value()
    bootstrap = s.kafka.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    result: dict = {"partitions": PARTITIONS, "batch_max": args.batch_max, "within_s": args.within, "runs": []}
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        for cams in args.cameras:
            result["runs"].append(run_latency(args, cams, dsn, admin, bootstrap, Path(tmp)))
        if args.backlog:
            result["capacity"] = run_capacity(args, dsn, admin, bootstrap, Path(tmp))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
