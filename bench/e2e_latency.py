"""End to end on this machine: simulated cameras -> Kafka -> one worker (counting + sinks) -> TimescaleDB.

For each camera count, runs the main job (``python -m infra.main_job``: real-time simulator,
Faust worker, API) on its own topic prefix for ``--seconds``, and meanwhile polls
``crossing_events`` for this run's cameras every 100 ms, noting when each crossing first became
visible. Prints one JSON object: per run the frames offered per second, crossings seen, the rows/s
into the crossing hypertable, and capture time -> row visible p50/p95/p99 (the first run is the
baseline the others are compared with). Everything shares this machine's cores: simulator,
worker, API, Kafka, PGlite.

    .venv/bin/python bench/e2e_latency.py [--cameras 100 500] [--seconds 60] [--fps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.settings import get_settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def run(cameras: int, seconds: float, fps: float) -> dict:
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench{run_id}-"
    tmp = Path(tempfile.mkdtemp(prefix="footfall-e2e-"))
    env = {
        **os.environ,
        "FOOTFALL_KAFKA__TOPIC_PREFIX": f"bench-{run_id}",
        "FOOTFALL_HTTP__WORKER_WEB_PORT": str(free_port()),
        "FOOTFALL_HTTP__API_PORT": str(free_port()),
        "FOOTFALL_LOCAL_DIR": str(tmp),
        "FOOTFALL_WORKER__DATADIR": str(tmp / "faust"),
    }
    cmd = [sys.executable, "-m", "infra.main_job", "--cameras", str(cameras), "--fps", str(fps)]
    cmd += ["--duration", str(seconds), "--camera-prefix", prefix, "--report-every", "30"]
    job = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[str, float] = {}
    started = time.time()
    dsn = get_settings().database.url.get_secret_value()
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        while job.poll() is None:
            rows = conn.execute(
                "SELECT event_id, extract(epoch FROM occurred_at) FROM crossing_events "
                "WHERE camera_id LIKE %s AND occurred_at > to_timestamp(%s)",
                (prefix + "%", started - 120),
            ).fetchall()
            now = time.time()
            for event_id, occurred in rows:
                if event_id not in seen:
                    seen[event_id] = now - float(occurred)
            time.sleep(0.1)
        out = job.stdout.read() if job.stdout else ""
        total = conn.execute(
            "SELECT count(*) FROM crossing_events WHERE camera_id LIKE %s", (prefix + "%",)
        ).fetchone()[0]
        for table in ("crossing_events", "line_counts_1m", "occupancy_samples", "zone_events", "stream_stats"):
            conn.execute(f"DELETE FROM {table} WHERE camera_id LIKE %s", (prefix + "%",))  # noqa: S608
        conn.execute("DELETE FROM cameras WHERE camera_id LIKE %s", (prefix + "%",))
    final = [line for line in out.splitlines() if line.startswith("final:")]
    latencies = list(seen.values())
    return {
        "cameras": cameras,
        "fps_per_camera": fps,
        "frames_offered_per_s": cameras * fps,
        "seconds": seconds,
        "crossings_seen_while_running": len(seen),
        "crossings_in_database": int(total),
        "crossing_rows_per_s": round(total / seconds, 1),
        "capture_to_visible_s_p50": pct(latencies, 0.50),
        "capture_to_visible_s_p95": pct(latencies, 0.95),
        "capture_to_visible_s_p99": pct(latencies, 0.99),
        "main_job_final": final[-1] if final else out[-500:],
        "exit": job.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    results = [run(n, args.seconds, args.fps) for n in args.cameras]
    base = results[0]["capture_to_visible_s_p99"]
    for r in results:
        p99 = r["capture_to_visible_s_p99"]
        r["p99_vs_baseline"] = round(p99 / base, 2) if base and p99 else None
    print(
        json.dumps(
            {
                "benchmark": "e2e_latency",
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "baseline": f"{results[0]['cameras']} cameras",
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
