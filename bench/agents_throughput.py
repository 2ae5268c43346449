"""Throughput and latency of one counting worker through the real broker. Prints one JSON object.

Frames come from ``streams.simulator`` (``--unique`` simulated cameras, replicated under new ids
up to ``--cameras``: the simulator itself costs ~0.3 ms per frame, too much to generate 5,000
frames/s live on this machine; the copies are shifted by a few ms so they do not arrive in step).
One worker (``faust -A agents.app worker``, sinks and push off) on a scratch topic prefix.

1. **backlog** (throughput): ``--backlog-s`` seconds of capture for every camera are produced
   before the worker starts; frames/s = frames / time from the first to the last frame processed
   (the worker's own counter, polled over its web view).
2. **paced** (latency): ``--paced-s`` seconds of frames produced in real time at 10 fps per camera
   (captured_at = now); for each crossing, latency = ``processed_at - occurred_at`` (capture ->
   counted) and broker timestamp ``- occurred_at`` (capture -> crossing produced). If the worker
   cannot keep up, latency grows through the run: ``achieved_fps`` and the lag at the end say so.

``--profile`` runs the worker under cProfile and adds its top functions (by own time).

    .venv/bin/python bench/agents_throughput.py --cameras 500 --backlog-s 20 --paced-s 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from agents_helpers import Scratch, Worker, drain  # noqa: E402

from core.settings import get_settings  # noqa: E402
from streams.simulator import Simulation  # noqa: E402


def frames_for(cameras: int, unique: int, seconds: float, start: float, seed: int) -> tuple[list, list]:
    """``(configs, [(captured_at, key, value_bytes)])`` sorted by capture time."""
    sim = Simulation(cameras=unique, fps=10, seed=seed, start=start, camera_prefix="bench")
    base_configs = sim.configs()
    base = list(sim.frames(seconds))
    copies = -(-cameras // unique)
    configs, items = [], []
    for c in range(copies):
        for cfg in base_configs:
            if len(configs) == cameras:
                break
            data = json.loads(cfg.to_json())
            data["camera_id"] = f"{cfg.camera_id}-c{c:02d}"
            configs.append((data["camera_id"], json.dumps(data).encode()))
        wanted = {cid for cid, _ in configs[c * unique : (c + 1) * unique]}
        shift = c * 0.003
        for f in base:
            cid = f"{f.camera_id}-c{c:02d}"
            if cid not in wanted:
                continue
            data = json.loads(f.to_json())
            data["camera_id"] = cid
            data["captured_at"] = f.captured_at + shift
            items.append((data["captured_at"], cid, data))
    items.sort(key=lambda x: x[0])
    return configs, items


def producer(bootstrap: str):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "compression.type": "lz4"})


def push(p, topic: str, key: str, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, key=key.encode(), value=value)
            return
        except BufferError:
            p.poll(0.01)


def frames_processed(worker: Worker) -> int:
    try:
        status, body = worker.get("/footfall/cameras/", timeout=10)
        return body["stats"]["frames"] if status == 200 else -1
    except OSError:
        return -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_count(worker: Worker, target: int, stall_s: float = 30.0) -> tuple[float | None, float, int, float]:
    """Poll until ``target`` frames are processed; returns (first seen moving, done time, count,
    worker CPU seconds in between)."""
    first = None
    cpu0 = 0.0
    last_n, last_change = -1, time.monotonic()
    while True:
        n = frames_processed(worker)
        now = time.monotonic()
        if n > 0 and first is None:
            first, cpu0 = now, cpu_seconds(worker.proc.pid)
        if n != last_n:
            last_n, last_change = n, now
        if n >= target or now - last_change > stall_s:
            return first, now, n, cpu_seconds(worker.proc.pid) - cpu0
        time.sleep(0.2)


def pct(values: list[float], q: float) -> float | None:
    return None if not values else round(float(np.percentile(values, q)) * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=500)
    ap.add_argument("--unique", type=int, default=50, help="distinct simulated cameras (replicated)")
    ap.add_argument("--backlog-s", type=float, default=20.0)
    ap.add_argument("--paced-s", type=float, default=20.0)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    unique = min(args.unique, args.cameras)
    bootstrap = get_settings().kafka.bootstrap
    scratch = Scratch(bootstrap, partitions=get_settings().kafka.partitions)
    workdir = Path(tempfile.mkdtemp(prefix="agents-bench-"))
    prof = workdir / "worker.prof"
    worker = Worker(scratch, workdir, env={"FOOTFALL_WORKER__FLUSH_INTERVAL_S": "1.0", "BROKER_COMMIT_INTERVAL": "2.8"})
    if args.profile:
        worker.cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "faust"]
    result: dict = {
        "bench": "agents_throughput",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cameras": args.cameras,
        "fps_per_camera": 10,
        "partitions": scratch.partitions,
    }
    p = producer(bootstrap)
    det = scratch.topic("detections")
    try:
        # ---------------------------------------------------------------- backlog
        t = time.perf_counter()
        configs, items = frames_for(args.cameras, unique, args.backlog_s, 1_704_067_200.0, seed=5)
        result["generate_s"] = round(time.perf_counter() - t, 1)
        for cid, value in configs:
            push(p, scratch.topic("camera-config"), cid, value)
        for _, cid, data in items:
            push(p, det, cid, json.dumps(data).encode())
        p.flush(60)
        worker.start().wait_ready()
        first, done, n, cpu = wait_count(worker, len(items))
        # the first poll that saw frames moving is up to 0.2 s late: count from the first frame
        result["backlog"] = {
            "frames": len(items),
            "processed": n,
            "seconds": None if first is None else round(done - first, 2),
            "frames_per_s": None if first is None or done <= first else round(n / (done - first)),
            # the worker's own CPU time: frames per CPU second is what one core could do, and moves
            # much less than frames/s when other processes share the machine
            "worker_cpu_s": round(cpu, 2),
            "frames_per_cpu_s": round(n / cpu) if cpu > 0 else None,
        }
        result["loadavg_1m"] = round(os.getloadavg()[0], 2)

        # ---------------------------------------------------------------- paced
        lead = 5.0
        t = time.perf_counter()
        _, paced = frames_for(args.cameras, unique, args.paced_s, 0.0, seed=6)
        gen = time.perf_counter() - t
        start = time.time() + lead
        before = frames_processed(worker)
        i = 0
        sent_start = time.monotonic()
        while i < len(paced):
            now = time.time()
            while i < len(paced) and start + paced[i][0] <= now:
                _, cid, data = paced[i]
                data["captured_at"] = start + data["captured_at"]
                data["published_at"] = now
                data["frame_seq"] = int(data["captured_at"] * 1e6)  # like the grabbers: capture clock in us
                push(p, det, cid, json.dumps(data).encode())
                i += 1
            p.poll(0)
            time.sleep(0.002)
        p.flush(60)
        produce_s = time.monotonic() - sent_start
        _, done, n, _ = wait_count(worker, before + len(paced), stall_s=20)
        end_lag = time.monotonic() - sent_start - produce_s
        crossings = drain(bootstrap, scratch.topic("crossings"), idle_s=3.0, timeout_s=120)
        lat_proc, lat_prod = [], []
        for m in crossings:
            r = json.loads(m.value())
            if r["occurred_at"] < start - 1:  # backlog crossings
                continue
            lat_proc.append(r["processed_at"] - r["occurred_at"])
            lat_prod.append(m.timestamp()[1] / 1000.0 - r["occurred_at"])
        result["paced"] = {
            "frames": len(paced),
            "generate_s": round(gen, 1),
            "offered_fps": round(len(paced) / args.paced_s),
            "achieved_fps": round((n - before) / max(produce_s + end_lag, 1e-9)),
            "drain_after_last_frame_s": round(end_lag, 2),
            "crossings": len(lat_proc),
            "capture_to_counted_ms": {"p50": pct(lat_proc, 50), "p99": pct(lat_proc, 99), "max": pct(lat_proc, 100)},
            "capture_to_produced_ms": {"p50": pct(lat_prod, 50), "p99": pct(lat_prod, 99), "max": pct(lat_prod, 100)},
        }
        _, body = worker.get("/footfall/cameras/")
        result["worker_stats"] = body["stats"]
    finally:
        worker.stop(timeout=60)
        scratch.close()
    if args.profile and prof.exists():
        stats = pstats.Stats(str(prof))
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
        total = sum(v[2] for v in stats.stats.values())
        result["profile_top_tottime"] = [
            {"fn": f"{Path(k[0]).name}:{k[1]}:{k[2]}", "tottime_s": round(v[2], 2), "share": round(v[2] / total, 3)}
            for k, v in rows
        ]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
