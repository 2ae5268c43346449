"""How many frames per second one simulator process generates and publishes. Prints one JSON object.

* ``generate``: :class:`streams.simulator.Simulation` alone (records built, nothing sent), in CPU
  seconds of this process and wall seconds;
* ``publish``: ``python -m streams simulate --fast`` the same way as the CLI does it (generation +
  ``KafkaPublisher``, idempotent, lz4, acks=all) into scratch topics on the local broker, timed
  from the first frame to the last delivery report; the topics are deleted afterwards.

    .venv/bin/python bench/simulator_rate.py --cameras 100 --seconds 30
    .venv/bin/python bench/simulator_rate.py --no-kafka
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import get_settings  # noqa: E402
from models.records import FrameDetections  # noqa: E402
from models.topics import catalogue, ensure_topics, topic_name  # noqa: E402
from streams.publisher import KafkaPublisher  # noqa: E402
from streams.simulator import Simulation  # noqa: E402


def generate(cameras: int, fps: float, seconds: float) -> dict:
    sim = Simulation(cameras=cameras, fps=fps, seed=1)
    wall, cpu = time.perf_counter(), time.process_time()
    n = sum(1 for _ in sim.frames(seconds))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "frames": n,
        "frames_per_s_wall": round(n / wall),
        "frames_per_s_cpu": round(n / cpu),
        "us_per_frame_cpu": round(cpu / n * 1e6, 1),
        "boxes_per_frame": round(sim.stats()["boxes"] / n, 2),
    }


def publish(bootstrap: str, cameras: int, fps: float, seconds: float) -> dict:
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    topic = topic_name(prefix, "detections")
    specs = [s for s in catalogue(prefix, get_settings().kafka.partitions) if s.name == topic]
    ensure_topics(bootstrap, specs)
    try:
        pub = KafkaPublisher(
            bootstrap, {FrameDetections: topic}, client_id="bench-simulator", max_messages=100_000, linger_ms=20
        )
        sim = Simulation(cameras=cameras, fps=fps, seed=1)
        wall, cpu = time.perf_counter(), time.process_time()
        n = payload = 0
        for frame in sim.frames(seconds):
            while len(pub) > 80_000:
                pub.poll(0.05)
            value = frame.to_json()
            payload += len(value)
            pub.publish_raw(topic, frame.camera_id, value)
            n += 1
            pub.poll(0)
        left = pub.flush(60)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {
            "frames": n,
            "frames_per_s_wall": round(n / wall),
            "cpu_s_per_wall_s": round(cpu / wall, 2),
            "mean_message_bytes": round(payload / n),
            "delivered": pub.stats.delivered,
            "failed": pub.stats.failed,
            "dropped": pub.stats.dropped,
            "undelivered": left,
        }
    finally:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap})  # keep it alive until the futures resolve
        for fut in admin.delete_topics([topic], operation_timeout=30).values():
            fut.result(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="capture seconds simulated per camera")
    parser.add_argument("--bootstrap", default=get_settings().kafka.bootstrap)
    parser.add_argument("--no-kafka", action="store_true", help="only the generator")
    args = parser.parse_args()
    result = {
        "benchmark": "simulator_rate",
        "cameras": args.cameras,
        "fps": args.fps,
        "seconds": args.seconds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "generate": generate(args.cameras, args.fps, args.seconds),
    }
    if not args.no_kafka:
        result["publish"] = publish(args.bootstrap, args.cameras, args.fps, args.seconds)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
