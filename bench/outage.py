"""Catch-up after a broker outage: how fast grabber spools drain and when every camera is live again.
Prints one JSON object.

A private single-node broker (its own ports and data, the local stack's jars; the shared broker is
never touched) is killed; ``--cameras`` simulated cameras at ``--fps`` publish through one
``KafkaPublisher`` with its on-disk spool (the grabbers' and the simulator's path), as one grabber
process serving all of them would. The outage lasts ``--outage-s`` of capture time:

- default (**prefill**): the outage's frames (capture times ``--outage-s`` before now up to now)
  are generated and published as fast as the simulator goes, with the broker down, which leaves
  the same spool as a real outage (plus the seconds the prefill itself took);
- ``--realtime``: the outage is waited out in real time (``--outage-s`` of wall clock).

Then the broker is restarted while the cameras keep publishing in real time. Reported, from the
broker's return (the publisher's first delivery since the outage): ``catch_up_frames_per_s``
(frames delivered until the spool is empty, per second), ``drain_s``, and
``time_to_lag_under_1s_s``: until every
camera's newest frame *read back from the broker* is less than 1 s old (a consumer in this process
reads the topic throughout). Order and duplicates per camera are checked on the way.

    .venv/bin/python bench/outage.py --cameras 100 --outage-s 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from agents_helpers import Scratch  # noqa: E402
from private_kafka import PrivateKafka  # noqa: E402

from models.records import FrameDetections  # noqa: E402
from streams.publisher import KafkaPublisher  # noqa: E402
from streams.simulator import Simulation  # noqa: E402
from streams.spool import SpoolConfig  # noqa: E402


class Reader(threading.Thread):
    """Reads the detections topic from the start; per camera the newest capture time, and frames
    out of order or twice."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.newest: dict[str, float] = {}
        self.last_seq: dict[str, int] = {}
        self.count = 0
        self.out_of_order = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import uuid

        from confluent_kafka import Consumer

        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "logger": _quiet(),
            }
        )
        c.subscribe([self.topic])
        try:
            while not self.stop.is_set():
                for m in c.consume(2000, timeout=0.2):
                    if m.error() is not None:
                        continue
                    d = orjson.loads(m.value())
                    cam, seq = d["camera_id"], d["frame_seq"]
                    if seq <= self.last_seq.get(cam, -1):
                        self.out_of_order += 1
                    self.last_seq[cam] = seq
                    self.newest[cam] = d["captured_at"]
                    self.count += 1
        finally:
            c.close()

    def max_lag(self, cameras: list[str]) -> float:
        now = time.time()
        return max(now - self.newest.get(cam, 0.0) for cam in cameras)


def _quiet():
    import logging

    log = logging.getLogger("bench.outage.rdkafka")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--outage-s", type=float, default=300.0)
    ap.add_argument("--realtime", action="store_true", help="wait the outage out in real time")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="give up catching up after this long")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="outage-bench-"))
    broker = PrivateKafka(workdir).start()
    scratch = Scratch(broker.bootstrap, partitions=12)
    topic = scratch.topic("detections")
    result: dict = {
        "bench": "outage",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cameras": args.cameras,
        "fps_per_camera": args.fps,
        "outage_s": args.outage_s,
        "mode": "realtime" if args.realtime else "prefill",
    }
    spool = SpoolConfig(directory=workdir / "spool")
    pub = KafkaPublisher(
        broker.bootstrap, {FrameDetections: topic}, client_id="bench-outage", linger_ms=20, spool=spool
    )
    reader = Reader(broker.bootstrap, topic)
    try:
        broker.kill()
        deadline = time.monotonic() + 30
        while not pub.failing() and time.monotonic() < deadline:
            pub.poll(0.1)
        t_kill = time.time()
        start = t_kill if args.realtime else t_kill - args.outage_s
        sim = Simulation(cameras=args.cameras, fps=args.fps, seed=1, start=start, camera_prefix="out")
        cams = sim.camera_ids
        frames = sim.frames(None)
        frame = next(frames)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        restarting: threading.Thread | None = None
        ready_at: float | None = None
        drained_at: float | None = None
        lag_ok_at: float | None = None
        delivered_at_ready = spooled_at_ready = delivered_before = 0
        t_restart = 0.0
        stop_at = None
        while True:
            now = time.time()
            while frame.captured_at <= now:
                pub.publish(frame)
                frame = next(frames)
            pub.poll(0)
            if restarting is None and now - t_kill >= (args.outage_s if args.realtime else 0.0):
                # prefill done (the frames have caught up with now) or the real outage is over
                result["prefill_s"] = round(time.perf_counter() - t0, 1)
                result["spooled_before_restart"] = pub.spool.waiting + pub.stats.in_flight
                result["spool_disk_mb"] = round(pub.spool_totals().disk_bytes / 2**20, 1)
                restarting = threading.Thread(target=broker.start, daemon=True)
                t_restart = time.monotonic()
                delivered_before = pub.stats.delivered
                restarting.start()
                reader.start()
            if restarting is not None and "broker_restart_s" not in result and not restarting.is_alive():
                result["broker_restart_s"] = round(time.monotonic() - t_restart, 1)  # until a probe round trip
            if restarting is not None and ready_at is None and pub.stats.delivered > delivered_before:
                ready_at = time.monotonic()  # the publisher's first delivery since the outage
                result["outage_effective_s"] = round(time.time() - t_kill, 1)
                delivered_at_ready = pub.stats.delivered - 1
                spooled_at_ready = pub.spool.waiting + pub.stats.in_flight + 1
                result["cameras_behind_s_at_return"] = round(time.time() - start, 1)  # capture time not delivered
            if ready_at is not None:
                if drained_at is None and pub.stats.delivered - delivered_at_ready >= spooled_at_ready:
                    drained_at = time.monotonic()  # everything spooled before the return is delivered
                    result["drain_s"] = round(drained_at - ready_at, 2)
                    result["delivered_from_spool"] = spooled_at_ready
                    result["catch_up_frames_per_s"] = round(spooled_at_ready / max(drained_at - ready_at, 1e-3))
                if lag_ok_at is None and len(reader.newest) == len(cams) and reader.max_lag(cams) < 1.0:
                    lag_ok_at = time.monotonic()
                    result["time_to_lag_under_1s_s"] = round(lag_ok_at - ready_at, 2)
                    stop_at = lag_ok_at + 5.0
                if stop_at is not None and time.monotonic() >= stop_at:
                    break
                if time.monotonic() - ready_at > args.timeout_s:
                    result["timed_out"] = True
                    break
            time.sleep(max(0.0, min(0.01, frame.captured_at - time.time())))
        result["spooled_at_broker_ready"] = spooled_at_ready
        pub.flush(60)
        time.sleep(2.0)
        result["publisher"] = {
            "delivered": pub.stats.delivered,
            "failed": pub.stats.failed,
            "dropped": pub.stats.dropped,
            "cpu_s": round(time.process_time() - cpu0, 1),
        }
        result["read_back"] = {"frames": reader.count, "out_of_order_or_twice": reader.out_of_order}
        result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    finally:
        reader.stop.set()
        pub.close(5)
        if broker.pid is None:
            broker.start()
        scratch.close()
        broker.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
