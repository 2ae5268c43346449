"""``python -m streams simulate``: publish simulated detections for N virtual cameras to Kafka.

Each camera's ``CameraConfig`` goes to the compacted camera-config topic first (flushed), then
``FrameDetections`` to the detections topic, keyed by ``camera_id``, through the grabber's
:class:`streams.publisher.KafkaPublisher` (idempotent, lz4). The ground truth of what was
published is written to ``--truth`` at the end, every ``--truth-every`` seconds while running,
and when stopped with Ctrl-C (SIGINT/SIGTERM stop after the frame being published).

Store and forward as in a grabber (``--spool-dir`` ...): in real time, frames the broker cannot take
wait in the spool and are delivered in order when it is back; what is still undelivered at the end
stays in the spool directory, and the next run with the same directory (by default the same topic
prefix) delivers it first. ``--fast`` waits for the broker instead (back-pressure).

python -m streams simulate --cameras 20 --fps 10                        # demo: real time, forever
python -m streams simulate --cameras 100 --fps 10 --duration 60 --fast --truth /tmp/truth.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.settings import get_settings
from models.records import FrameDetections, StreamStats
from streams.spool import KeyStats
from streams.spool_options import add_spool_arguments

log = logging.getLogger("streams.simulate")
QUEUE_MESSAGES = 100_000  # producer's local queue; fast mode waits when it is 80 % full


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m streams simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=4, help="number of virtual cameras (default 4)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second per camera (default 10)")
    parser.add_argument("--duration", type=float, help="seconds of capture time to simulate (default: until Ctrl-C)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="fast", action="store_false", help="publish at capture time (default)")
    pace.add_argument("--fast", dest="fast", action="store_true", help="publish as fast as the producer goes")
    parser.set_defaults(fast=False)
    parser.add_argument("--start", type=float, help="capture time of the first frame, epoch seconds (default: now)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same frames and truth")
    parser.add_argument("--camera-prefix", default="sim", help="camera ids are <prefix>-0001 ... (default sim)")
    parser.add_argument("--arrivals-per-min", type=float, help="people entering each view per minute (default 12)")
    parser.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    parser.add_argument(
        "--stats-every", type=float, default=5.0, help="seconds between StreamStats per camera (0 = none)"
    )
    parser.add_argument("--truth-every", type=float, default=10.0, help="seconds between truth writes while running")
    parser.add_argument(
        "--snapshot-every",
        type=float,
        default=settings.snapshots.interval_s,
        help="seconds between each camera's rendered snapshot in Redis (0 = none; settings.snapshots)",
    )
    parser.add_argument("--redis-url", default=None, help="where snapshots go (default: settings.redis.url)")
    parser.add_argument("--bootstrap", default=settings.kafka.bootstrap)
    parser.add_argument("--topic-prefix", default=settings.kafka.topic_prefix)
    parser.add_argument("--ensure-topics", action="store_true", help="create the camera-config/detections topics")
    parser.add_argument("--no-configs", action="store_true", help="do not publish the cameras' CameraConfig")
    parser.add_argument("--log-level", default=settings.log_level)
    add_spool_arguments(parser)
    return parser


def _snapshots(args: argparse.Namespace):
    """The snapshot publisher of ``--snapshot-every`` (None: off)."""
    if args.snapshot_every <= 0:
        return None
    from streams.snapshots import from_settings

    settings = get_settings()
    snap = settings.snapshots.model_copy(update={"interval_s": args.snapshot_every})
    return from_settings(settings.model_copy(update={"snapshots": snap}), args.redis_url, args.topic_prefix)


class SimulatedHealth:
    """Stream-stats heartbeats for the virtual cameras (every camera ``online``; fps as simulated),
    so dashboards and the API's stream metrics have data in a demo. Event time: the frames'.
    ``spool`` gives a camera's share of the publisher's spool (``KafkaPublisher.spool_stats``)."""

    def __init__(self, fps: float, every_s: float, spool: Callable[[str], KeyStats] | None = None) -> None:
        self.fps, self.every_s, self.spool = fps, every_s, spool
        self.frames: dict[str, int] = {}
        self.since: dict[str, float] = {}

    def add(self, frame: FrameDetections) -> list[StreamStats]:
        cam, t = frame.camera_id, frame.captured_at
        self.frames[cam] = self.frames.get(cam, 0) + 1
        since = self.since.setdefault(cam, t)
        if t - since < self.every_s:
            return []
        window = t - since
        spool = self.spool(cam) if self.spool is not None else KeyStats(0, None, 0)
        age = None if spool.oldest_ts is None else round(max(0.0, time.time() - spool.oldest_ts), 3)
        stats = StreamStats(
            camera_id=cam,
            grabber_id="simulator",
            at=t,
            status="online",
            window_s=window,
            input_fps=self.fps,
            processed_fps=round(self.frames[cam] / window, 3),
            dropped_frames=0,
            decode_errors=0,
            reconnects=0,
            inference_ms_p50=frame.inference_ms,
            inference_ms_p95=frame.inference_ms,
            latency_ms_p50=0.0,
            latency_ms_p95=0.0,
            frame_width=frame.frame_width,
            frame_height=frame.frame_height,
            model_name=frame.model_name,
            model_version=frame.model_version,
            spooled_messages=spool.waiting,
            spool_oldest_age_s=age,
            spool_dropped=spool.dropped,
        )
        self.frames[cam], self.since[cam] = 0, t
        return [stats]


def write_truth(path: Path, document: dict) -> None:
    """Write atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
    os.replace(tmp, path)


def summary(sim, published: int, elapsed: float, stats, spooled: int = 0) -> str:
    totals = sim.totals()
    rate = published / elapsed if elapsed > 0 else 0.0
    return (
        f"simulated {sim.cameras} camera(s) at {sim.fps:g} fps: {published} frames in {elapsed:.1f} s "
        f"({rate:.0f} frames/s); truth: {totals['crossings']} crossings (in {totals['in']}, out {totals['out']}), "
        f"{totals['zone_entries']} zone entries; delivered {stats.delivered}, failed {stats.failed}, "
        f"dropped {stats.dropped}, spooled {spooled}"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dataclasses import replace

    from models.records import CameraConfig
    from models.topics import catalogue, ensure_topics, topic_name
    from streams.publisher import KafkaPublisher
    from streams.simulator import SimParams, Simulation
    from streams.snapshots import render_scene
    from streams.spool import SpoolLocked
    from streams.spool_options import spool_from_args

    if args.cameras < 1 or args.fps <= 0 or (args.duration is not None and args.duration < 0):
        log.error("--cameras must be >= 1, --fps > 0 and --duration >= 0")
        return 2
    params = SimParams()
    if args.arrivals_per_min is not None:
        params = replace(params, arrivals_per_min=args.arrivals_per_min)
    start = time.time() if args.start is None else args.start
    try:
        sim = Simulation(
            cameras=args.cameras,
            fps=args.fps,
            seed=args.seed,
            start=start,
            camera_prefix=args.camera_prefix,
            params=params,
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2

    config_topic = topic_name(args.topic_prefix, "camera-config")
    detections_topic = topic_name(args.topic_prefix, "detections")
    stats_topic = topic_name(args.topic_prefix, "stream-stats")
    if args.ensure_topics:
        wanted = {config_topic, detections_topic, stats_topic}
        specs = [s for s in catalogue(args.topic_prefix, get_settings().kafka.partitions) if s.name in wanted]
        ensure_topics(args.bootstrap, specs)
    try:
        spool = spool_from_args(args, f"simulator-{args.topic_prefix}", get_settings().local_dir)
    except (SpoolLocked, OSError, ValueError) as exc:
        log.error("spool: %s", exc)
        return 2
    publisher = KafkaPublisher(
        args.bootstrap,
        {FrameDetections: detections_topic, CameraConfig: config_topic, StreamStats: stats_topic},
        client_id=f"footfall-simulator-{os.getpid()}",
        headers={"grabber_id": "simulator"},
        max_messages=QUEUE_MESSAGES,
        max_kbytes=256 * 1024,
        linger_ms=20,
        spool=spool,
    )

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    published = 0
    began = time.monotonic()
    try:
        if not args.no_configs:
            for cfg in sim.configs():
                publisher.publish(cfg)
            left = publisher.flush(30)
            if left and not publisher.spool.on_disk:
                log.error(
                    "%d camera config(s) not delivered to %s; is Kafka up at %s?", left, config_topic, args.bootstrap
                )
                publisher.close(0)
                return 1
            if left:  # they wait in the spool and go first when the broker is back; frames follow them
                log.warning("%d camera config(s) not delivered yet (Kafka at %s); spooling", left, args.bootstrap)
        log.info(
            "simulating %d camera(s) at %g fps into %s (%s)",
            args.cameras,
            args.fps,
            detections_topic,
            "fast" if args.fast else "real time",
        )
        began = time.monotonic()
        next_truth = began + args.truth_every
        health = SimulatedHealth(args.fps, args.stats_every, publisher.spool_stats) if args.stats_every > 0 else None
        snapshots = _snapshots(args) if not args.fast else None
        frames = sim.frames(args.duration)
        while not stop.is_set():
            if not args.fast:  # publish at capture time (relative to the first frame)
                wait = (sim.next_time - start) - (time.monotonic() - began)
                if wait > 0 and stop.wait(wait):
                    break  # the frame is not generated, so the truth covers what was published
            frame = next(frames, None)
            if frame is None:
                break
            while args.fast and len(publisher) > QUEUE_MESSAGES * 0.8:  # fast: back-pressure, not the spool
                publisher.poll(0.05)
            publisher.publish(frame)
            published += 1
            if snapshots is not None:
                snapshots.offer(
                    frame.camera_id,
                    lambda f=frame: render_scene(f.frame_width, f.frame_height, params.horizon_y, f.boxes),
                    frame.captured_at,
                )
            if health is not None:
                for stats in health.add(frame):
                    publisher.publish(stats)
            publisher.poll(0)
            if args.truth is not None and time.monotonic() >= next_truth:
                write_truth(args.truth, sim.truth_document())
                next_truth += args.truth_every
    finally:
        elapsed = time.monotonic() - began
        left = publisher.close(30)  # what the broker did not take stays in the spool for the next start
        spooled = left if publisher.spool.directory is not None else 0
        if args.truth is not None:
            doc = sim.truth_document()
            doc["publisher"] = {
                "delivered": publisher.stats.delivered,
                "failed": publisher.stats.failed,
                "dropped": publisher.stats.dropped,
                "undelivered_at_exit": left,
                "spooled_at_exit": spooled,
            }
            write_truth(args.truth, doc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(summary(sim, published, elapsed, publisher.stats, spooled), flush=True)
    return 0 if publisher.stats.failed == 0 and publisher.stats.dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
