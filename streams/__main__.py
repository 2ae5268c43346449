"""``python -m streams``: run grabbers, or the simulator.

python -m streams run --config streams/examples/cameras.yaml [--cameras lobby,door] [--imgsz 320]
python -m streams run --config-topic            # follow the compacted camera-config topic
python -m streams simulate ...                  # see streams.simulate_cli
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from core.settings import get_settings
from streams.backends import BACKENDS, DEFAULT_BACKEND, DEFAULT_PRECISION, PRECISIONS
from streams.detector import NMS_IOU
from streams.spool_options import add_spool_arguments

log = logging.getLogger("streams")


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="grab camera streams and publish detections and stream stats")
    src = run.add_argument_group("cameras")
    src.add_argument("--config", help="YAML/JSON file of CameraConfig objects")
    src.add_argument(
        "--config-topic",
        nargs="?",
        const="",
        default=None,
        help="follow the compacted camera-config topic (default: the catalogue's) instead of, or after, --config",
    )
    src.add_argument("--cameras", help="comma-separated camera ids to run (default: all enabled)")
    det = run.add_argument_group("detector")
    det.add_argument(
        "--model",
        default="",
        help="default model: a .pt path or an Ultralytics name (default yolo11n.pt, offline fallback)",
    )
    det.add_argument(
        "--nms-iou", type=float, default=NMS_IOU, help=f"non-maximum suppression IoU (default {NMS_IOU}; 0.5 in crowds)"
    )
    det.add_argument("--imgsz", type=int, help="inference size for every camera (overrides detection.imgsz)")
    det.add_argument("--device", default="auto", help="cpu, cuda:0, or auto (default)")
    det.add_argument("--torch-threads", type=int, help="torch CPU threads (default: torch's choice)")
    det.add_argument("--max-batch", type=int, default=16, help="most frames per inference call")
    det.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        choices=BACKENDS,
        help="inference backend for cameras that do not set detection.backend (default auto: OpenVINO, "
        "else ONNX Runtime, else PyTorch on a CPU; PyTorch on a GPU); exported once, cached (streams/backends.py)",
    )
    det.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISIONS,
        help=f"fp32 or int8 (OpenVINO; calibrated on a clip, else on this grabber's own frames, fp32 until then) "
        f"for cameras that do not set detection.precision (default {DEFAULT_PRECISION})",
    )
    det.add_argument(
        "--int8-calibration",
        type=Path,
        help="clip whose frames calibrate INT8 (default $FOOTFALL_CALIBRATION_CLIP, else the development clip "
        "where it exists, else the cameras' own frames: streams/calibration.py)",
    )
    det.add_argument(
        "--motion-gating",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip the detector on frames where nothing moved near a camera's lines and zones, repeating "
        "its last boxes (cameras that do not set detection.motion_gating; default on; streams/motion.py)",
    )
    cap = run.add_argument_group("capture")
    cap.add_argument(
        "--fast-files", action="store_true", help="read files as fast as possible instead of at native fps"
    )
    cap.add_argument("--once", action="store_true", help="play files once instead of looping")
    cap.add_argument("--backoff-cap", type=float, default=60.0, help="longest wait between reconnects, seconds")
    out = run.add_argument_group("output")
    out.add_argument("--bootstrap", default=settings.kafka.bootstrap)
    out.add_argument("--topic-prefix", default=settings.kafka.topic_prefix)
    out.add_argument("--detections-topic", help="override the detections topic name")
    out.add_argument("--stats-topic", help="override the stream-stats topic name")
    out.add_argument("--ensure-topics", action="store_true", help="create the catalogue topics if missing")
    out.add_argument("--stats-interval", type=float, default=5.0, help="seconds between StreamStats messages")
    out.add_argument("--metrics-port", type=int, default=settings.http.metrics_port, help="Prometheus port; 0 = off")
    out.add_argument("--metrics-host", default=settings.http.host)
    out.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=settings.preview.enabled,
        help="serve the annotated MJPEG preview on preview.host:preview.port (default: off; FOOTFALL_PREVIEW__*)",
    )
    fleet = run.add_argument_group("fleet")
    fleet.add_argument("--grabber-id", default=f"{socket.gethostname()}:{os.getpid()}")
    fleet.add_argument("--no-lease", action="store_true", help="own every configured camera without Redis leases")
    fleet.add_argument("--lease-ttl", type=float, default=10.0, help="lease period, seconds")
    fleet.add_argument("--redis-url", default=None, help="default: settings.redis.url")
    run.add_argument("--duration", type=float, help="stop after this many seconds (benchmarks, tests)")
    run.add_argument("--log-level", default=settings.log_level)
    add_spool_arguments(run)

    sub.add_parser("simulate", help="publish simulated detections (streams.simulate_cli)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        from streams import simulate_cli  # written separately; imported only for this command

        return simulate_cli.main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    return 2


def setup_logging(level: str):
    from streams.redact import RedactingFilter

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redactor = RedactingFilter()
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return redactor


def run(args: argparse.Namespace) -> int:
    redactor = setup_logging(args.log_level)
    if not args.config and args.config_topic is None:
        log.error("give --config FILE and/or --config-topic")
        return 2
    # Heavy imports only here: the simulator and `--help` stay light.
    from models.records import FrameDetections, StreamStats
    from models.topics import catalogue, ensure_topics, topic_name
    from streams.config import ConfigError, ConfigTopicFollower, load_configs
    from streams.detector import Detector, ModelError
    from streams.grabber import Grabber, GrabberOptions
    from streams.health import GrabberMetrics
    from streams.lease import LeaseKeeper, LocalLeases, RedisLeases
    from streams.publisher import KafkaPublisher
    from streams.spool import SpoolLocked
    from streams.spool_options import spool_from_args

    settings = get_settings()
    try:
        configs = load_configs(args.config) if args.config else []
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    for cfg in configs:
        if cfg.stream and cfg.stream.credentials_ref:
            redactor.add(os.environ.get(cfg.stream.credentials_ref))

    if args.ensure_topics:
        ensure_topics(args.bootstrap, catalogue(args.topic_prefix, settings.kafka.partitions))
    topics = {
        FrameDetections: args.detections_topic or topic_name(args.topic_prefix, "detections"),
        StreamStats: args.stats_topic or topic_name(args.topic_prefix, "stream-stats"),
    }
    try:
        spool = spool_from_args(args, f"grabber-{args.topic_prefix}", settings.local_dir)
    except (SpoolLocked, OSError, ValueError) as exc:
        log.error("spool: %s", exc)
        return 2
    publisher = KafkaPublisher(
        args.bootstrap,
        topics,
        client_id=f"footfall-grabber-{args.grabber_id}",
        headers={"grabber_id": args.grabber_id},
        spool=spool,
    )
    metrics = GrabberMetrics()
    server = metrics.serve(args.metrics_host, args.metrics_port) if args.metrics_port else None

    try:
        detector = Detector(
            args.model,
            device=args.device,
            threads=args.torch_threads,
            nms_iou=args.nms_iou,
            backend=args.backend,
            precision=args.precision,
            calibration=args.int8_calibration,
        )
    except ModelError as exc:
        log.error("%s", exc)
        return 2

    follower = None
    if args.config_topic is not None:
        follower = ConfigTopicFollower(
            args.bootstrap, args.config_topic or topic_name(args.topic_prefix, "camera-config")
        )
        follower.start()

    grabber_holder: dict[str, Grabber] = {}
    if args.no_lease:
        leases = LocalLeases()
    else:
        import redis

        client = redis.Redis.from_url(
            args.redis_url or settings.redis.url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
        )
        leases = LeaseKeeper(
            RedisLeases(client, args.grabber_id, int(args.lease_ttl * 1000)),
            on_lost=lambda cid: grabber_holder["g"].revoke(cid),
        )

    def config_source():
        if follower is None:
            return configs, False
        topic_configs, changed = follower.snapshot()
        if not changed:
            return [], False
        merged = {c.camera_id: c for c in configs} | {c.camera_id: c for c in topic_configs}
        for cfg in topic_configs:
            if cfg.stream and cfg.stream.credentials_ref:
                redactor.add(os.environ.get(cfg.stream.credentials_ref))
        return list(merged.values()), True

    options = GrabberOptions(
        grabber_id=args.grabber_id,
        stats_interval_s=args.stats_interval,
        default_model=args.model,
        imgsz=args.imgsz,
        realtime_files=not args.fast_files,
        loop_files=not args.once,
        backoff_cap_s=args.backoff_cap,
        max_batch=args.max_batch,
        cameras=[c.strip() for c in args.cameras.split(",") if c.strip()] if args.cameras else None,
        motion_gating=args.motion_gating,
    )
    from streams.snapshots import from_settings as snapshots_from_settings

    snapshots = snapshots_from_settings(settings, args.redis_url, args.topic_prefix)
    preview, preview_server = None, None
    if args.preview:
        from streams.preview import Preview, PreviewServer

        ps = settings.preview
        preview = Preview(ps.max_fps, ps.max_width)
        preview_server = PreviewServer(preview, ps.host, ps.port).start()
        log.info("annotated preview on http://%s:%d/preview?camera_id=<id>", ps.host, ps.port)
    grabber = Grabber(
        options, publisher, detector, leases, metrics, config_source if follower else None, snapshots, preview
    )
    grabber_holder["g"] = grabber
    grabber.set_configs(configs)
    if not grabber.selected and follower is None:
        log.error(
            "no enabled camera with a stream in %s%s",
            args.config,
            f" matching --cameras {args.cameras}" if args.cameras else "",
        )
        return 2
    try:
        grabber.warm_up()
    except ModelError as exc:
        log.error("%s", exc)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    leases.start()
    log.info("grabber %s running %d camera(s)", args.grabber_id, len(grabber.selected))
    try:
        grabber.run(stop, args.duration)
    finally:
        if follower is not None:
            follower.stop()
        if server is not None:
            server.shutdown()
        if preview_server is not None:
            preview_server.stop()
    log.info("grabber %s stopped; %d detections published", args.grabber_id, grabber.published)
    return 0


def leave(code: int) -> None:
    """Exit without the interpreter's teardown of native libraries: by now the publisher is flushed
    and closed (its spool holds the rest), leases released and servers stopped. That teardown
    (librdkafka, OpenVINO, torch) once kept a grabber that had logged "stopped" alive past its
    supervisor's 20 s (a CI rehearsal; not reproduced in a dozen runs), and a supervisor then kills it."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
