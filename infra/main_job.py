"""The main job behind ``make run``: a source -> Kafka -> Faust worker -> TimescaleDB, plus the HTTP API.

python -m infra.main_job                          # 20 simulated cameras at 10 fps until Ctrl-C
python -m infra.main_job --cameras 100 --fps 5    # a bigger simulated fleet
python -m infra.main_job --source video.mp4       # a video file (looped) through the YOLO grabber
python -m infra.main_job --source rtsp://host/stream --camera-id door
python -m infra.main_job --duration 60            # stop by itself, print the final counts

The local stack (Kafka, TimescaleDB, Redis) must be up (``make run`` brings it up first). This
process starts and supervises: the Faust worker (counting agents, sinks, Redis push, live views),
the API, and the source (the simulator, or a grabber for a video/RTSP URL with one counting line
across the middle of the frame). Every few seconds it prints the counts so far as the database
has them; with the simulator, next to the simulator's ground truth. Logs go to ``.local/logs/``.
Ctrl-C stops the source, lets the pipeline drain, prints the final counts and stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import PROJECT_ROOT, Settings, get_settings

PY = sys.executable
DRAIN_S = 8.0  # after the source stops: long enough for a window flush and a sink batch


@dataclass
class Child:
    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_http(url: str, child: Child, timeout_s: float = 90.0) -> None:
    """Wait until ``url`` answers (any HTTP status); fail naming the child's log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise SystemExit(f"main job: the {child.name} exited during start-up; see {child.log}")
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - an http URL built from settings
            return
        except urllib.error.HTTPError:  # any status: the server is up
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"main job: the {child.name} did not answer {url} within {timeout_s:.0f} s; see {child.log}")


def counts_so_far(settings: Settings, camera_ids: list[str], since: float) -> dict[str, int]:
    """Crossings in the database of this run, by direction (raw events: exact and cheap here): only
    the run's own cameras (exact ids, not a prefix that other cameras may share) and only crossings
    at or after the run's source started (an earlier run of the same camera ids is not counted)."""
    import psycopg

    sql = """
        SELECT direction, count(*) FROM crossing_events
        WHERE camera_id = ANY(%s) AND occurred_at >= to_timestamp(%s)
        GROUP BY direction
    """
    try:
        with psycopg.connect(settings.database.url.get_secret_value(), prepare_threshold=None, connect_timeout=5) as c:
            rows = c.execute(sql, (camera_ids, since)).fetchall()
    except psycopg.Error as exc:
        return {"error": str(exc).splitlines()[0]}  # type: ignore[dict-item]
    return {d: int(n) for d, n in rows}


def truth_totals(path: Path) -> dict[str, int] | None:
    """The simulator's ground truth, summed over cameras and lines, by direction."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cameras = data.get("lines", {}) if isinstance(data, dict) else {}
    out = {"in": 0, "out": 0}
    for lines in cameras.values():
        if isinstance(lines, dict):
            for by_dir in lines.values():
                if isinstance(by_dir, dict):
                    for d in out:
                        out[d] += int(by_dir.get(d, 0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.main_job", description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=20, help="simulated cameras (default 20)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second per simulated camera")
    parser.add_argument("--source", help="a video file or an RTSP/HTTP URL instead of the simulator")
    parser.add_argument("--camera-id", default="source-1", help="camera id for --source")
    parser.add_argument("--camera-prefix", default="sim-", help="camera id prefix of the simulated cameras")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--report-every", type=float, default=10.0, help="seconds between progress lines")
    args = parser.parse_args(argv)

    settings = get_settings()
    logs = settings.local_dir / "logs"
    run_dir = settings.local_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    truth = run_dir / "truth.json"
    truth.unlink(missing_ok=True)
    web, api = settings.http.worker_web_port, settings.http.api_port
    host = settings.http.host

    from models.topics import catalogue, ensure_topics

    ensure_topics(settings.kafka.bootstrap, catalogue(settings.kafka.topic_prefix, settings.kafka.partitions))

    worker = Child(
        "worker",
        [PY, "-m", "faust", "-A", "agents.app", "worker", "-l", "info", "--web-port", str(web)],
        logs / "worker.log",
    )
    # A demo: anonymous callers read the default tenant (as viewers) unless the caller chose
    # otherwise; everything else needs an API key (python -m api keys create ...).
    demo = os.environ.get("FOOTFALL_AUTH__DEMO_TENANT", "default")
    worker.env["FOOTFALL_AUTH__DEMO_TENANT"] = demo
    api_proc = Child("API", [PY, "-m", "api"], logs / "api.log", env={"FOOTFALL_AUTH__DEMO_TENANT": demo})
    if args.source:
        camera_ids = [args.camera_id]
        config = run_dir / "cameras.json"
        config.write_text(json.dumps(source_config(args.source, args.camera_id)))
        publish_configs(settings, config)  # the worker learns the camera's line from the config topic
        source = Child(
            "grabber",
            [PY, "-m", "streams", "run", "--config", str(config), "--no-lease"],  # the camera defaults
            logs / "grabber.log",
        )
    else:
        from streams.simulator import Simulation

        # the exact ids the simulator gives its cameras (it fails early on a bad prefix)
        camera_ids = Simulation(cameras=args.cameras, fps=args.fps, camera_prefix=args.camera_prefix).camera_ids
        source = Child(
            "simulator",
            [PY, "-m", "streams", "simulate", "--cameras", str(args.cameras), "--fps", str(args.fps)]
            + ["--camera-prefix", args.camera_prefix, "--truth", str(truth), "--realtime"],
            logs / "simulator.log",
        )

    stopping = False

    def on_signal(signum, frame) -> None:  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    started = time.time()
    children = [worker, api_proc, source]
    console = f"http://{host}:{api}/"
    try:
        print(f"main job: the console will be at {console}", flush=True)
        print("main job: starting the Faust worker ...", flush=True)
        worker.start()
        wait_http(f"http://{host}:{web}/", worker)
        print("main job: starting the API ...", flush=True)
        api_proc.start()
        wait_http(f"http://{host}:{api}/health", api_proc)
        print(f"main job: starting the {source.name} ...", flush=True)
        # this run's crossings are those from here on: the simulator's first frame is taken now
        started = time.time()
        if args.source is None:
            source.cmd += ["--start", f"{started:.6f}"]
        source.start()
        print(
            f"""
footfall is running: {source.name} -> Kafka ({settings.kafka.bootstrap}) -> worker -> TimescaleDB
  console      {console}   (cameras, live counts, snapshots, the line/zone editor, charts)
  live views   http://{host}:{web}/footfall/cameras/   (then .../cameras/<id>/counts/ and .../occupancy/)
  API          http://{host}:{api}/docs   (e.g. curl 'http://{host}:{api}/api/v1/cameras')
  live push    ws://{host}:{api}/api/v1/live/ws?camera_id=<id>
  database     {_redacted_db(settings)}   (tables crossing_events, line_counts_1m, crossings_1h ...)
  prometheus   http://127.0.0.1:{settings.http.prometheus_port}/targets   (worker metrics; alerts at /alerts)
  logs         {logs}/
  access       anonymous reads see the demo tenant {demo!r} (FOOTFALL_AUTH__DEMO_TENANT; empty = keys only);
               an admin key: .venv/bin/python -m api keys create --tenant default --role admin
Counts so far are printed every {args.report_every:.0f} s; Ctrl-C stops.
""",
            flush=True,
        )
        next_report = time.monotonic() + args.report_every
        while not stopping:
            if args.duration is not None and time.time() - started >= args.duration:
                break
            for c in children:
                if not c.alive() and not (c is source and args.source is None and args.duration):
                    raise SystemExit(f"main job: the {c.name} stopped unexpectedly; see {c.log}")
            if time.monotonic() >= next_report:
                report(settings, camera_ids, started, truth)
                next_report += args.report_every
            time.sleep(0.5)
        print(f"main job: stopping the {source.name}; draining for {DRAIN_S:.0f} s ...", flush=True)
        source.stop()
        time.sleep(DRAIN_S)
        report(settings, camera_ids, started, truth, final=True)
    finally:
        for c in reversed(children):
            c.stop()
    return 0


def report(settings: Settings, camera_ids: list[str], since: float, truth: Path, final: bool = False) -> None:
    # only this run's crossings: its cameras, stamped (by the source's capture clock) at or after
    # the source started; an earlier run of the same camera ids is not counted again
    db = counts_so_far(settings, camera_ids, since)
    line = f"{'final' if final else 'so far'}: crossings in the database in={db.get('in', 0)} out={db.get('out', 0)}"
    if "error" in db:
        line = f"database not answering: {db['error']}"
    gt = truth_totals(truth)
    if gt is not None:
        line += f"   simulator ground truth in={gt['in']} out={gt['out']}"
    print(line, flush=True)


def _redacted_db(settings: Settings) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(settings.database.url.get_secret_value())
    return f"postgresql://{u.username}@{u.hostname}:{u.port}{u.path}"


def source_config(source: str, camera_id: str) -> dict:
    """A one-camera config for a video file or URL: one counting line down the middle of the frame,
    the detection settings a camera gets by default (no ``detection``: bench/accuracy.py's choice)."""
    width, height = _frame_size(source)
    protocol = "rtsp" if source.startswith("rtsp") else "http" if source.startswith("http") else "file"
    url = source if protocol != "file" else str(Path(source).resolve())
    return {
        "cameras": [
            {
                "camera_id": camera_id,
                "name": f"{camera_id} ({protocol})",
                "stream": {"protocol": protocol, "url": url, "target_fps": 10},
                "lines": [{"line_id": "middle", "start": [width / 2, height], "end": [width / 2, 0]}],
            }
        ]
    }


def publish_configs(settings: Settings, path: Path) -> None:
    """Publish the file's cameras to the compacted camera-config topic (validated on the way)."""
    from confluent_kafka import Producer

    from models.base import parse
    from models.kafka_security import librdkafka_security
    from models.records import CameraConfig
    from models.topics import topic_name

    config = {"bootstrap.servers": settings.kafka.bootstrap, "enable.idempotence": True}
    producer = Producer(config | librdkafka_security(settings.kafka))
    topic = topic_name(settings.kafka.topic_prefix, "camera-config")
    for raw in json.loads(path.read_text())["cameras"]:
        cfg = parse(CameraConfig, raw)
        producer.produce(topic, key=cfg.camera_id.encode(), value=cfg.to_json())
    if producer.flush(30):
        raise SystemExit(f"main job: could not publish the camera configuration to {topic}")


def _frame_size(source: str) -> tuple[int, int]:
    try:
        import cv2
    except ImportError:
        return 640, 480
    cap = cv2.VideoCapture(source)
    try:
        ok, frame = cap.read()
        return (frame.shape[1], frame.shape[0]) if ok else (640, 480)
    finally:
        cap.release()


if __name__ == "__main__":
    raise SystemExit(main())
