"""Grabber throughput and latency on this machine, publishing to the real broker.

Runs ``python -m streams run`` on the crosswalk clip (read at its native 24 fps, like a camera;
``mot16-09`` at 30 fps, 1080p, where named) in several configurations, each for a fixed duration,
and reads the detections back from Kafka:

- ``1cam-320`` (the baseline) and ``1cam-640``: one camera, one process;
- ``4cam-batched-320``: one process, four cameras (the clip x4), one shared model, batched calls;
- ``4cam-batched-320-2t``: the same with two torch threads (all of this machine's cores);
- ``4proc-320``: four processes with one camera each (four models, no batching);
- ``1cam-old-defaults`` / ``1cam-defaults`` (and ``1cam-mot-...`` on ``mot16-09``): one camera at the
  detection settings a camera got before the accuracy work (640 px, confidence 0.3, NMS 0.7) and at
  today's defaults (a config without detection settings): the cost of the defaults, frames/s per core.

Every process uses one torch thread unless named ``-2t``. Prints one JSON object: per
configuration the detected frames per second (all cameras together), capture-to-publish latency
p50/p95, inference-call p50 and the speed-up against the baseline.

    .venv/bin/python bench/grabber_throughput.py [--duration 25] [--only 1cam-320,4proc-320]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from core.settings import get_settings  # noqa: E402
from streams.health import percentile  # noqa: E402

ASSETS = PROJECT_ROOT.parent / "shared" / "assets"
CLIP = ASSETS / "crosswalk-640x360.mp4"
MOT = ASSETS / "mot16-09" / "video.mp4"  # 1920x1080, 30 fps
WARM_S = 3.0  # ignore each configuration's first seconds (connect, first frames)
# The camera defaults before issue 15 (640 px, confidence 0.3, NMS IoU 0.7), set explicitly; the
# "-defaults" configurations send a camera config with no detection settings (today's defaults).
OLD_DEFAULTS = {"imgsz": 640, "confidence": 0.3, "nms_iou": 0.7}

CONFIGS = {
    # name: (cameras, processes, --imgsz override, torch threads per process, clip, detection settings)
    "1cam-320": (1, 1, 320, 1, CLIP, None),
    "1cam-640": (1, 1, 640, 1, CLIP, None),
    "4cam-batched-320": (4, 1, 320, 1, CLIP, None),
    "4cam-batched-320-2t": (4, 1, 320, 2, CLIP, None),
    "4proc-320": (4, 4, 320, 1, CLIP, None),
    "1cam-old-defaults": (1, 1, None, 1, CLIP, OLD_DEFAULTS),
    "1cam-defaults": (1, 1, None, 1, CLIP, None),
    "1cam-mot-old-defaults": (1, 1, None, 1, MOT, OLD_DEFAULTS),
    "1cam-mot-defaults": (1, 1, None, 1, MOT, None),
}
BASELINE = "1cam-320"


def camera(cid: str, clip: Path, detection: dict | None) -> dict:
    fps = 24 if clip == CLIP else 30  # the clips' native rates
    cfg = {"camera_id": cid, "stream": {"protocol": "file", "url": str(clip), "target_fps": fps}}
    if detection:
        cfg["detection"] = detection
    return cfg


def run_config(name: str, bootstrap: str, det_topic: str, stats_topic: str, duration: float, workdir: Path) -> dict:
    n_cams, n_procs, imgsz, threads, clip, detection = CONFIGS[name]
    run = uuid.uuid4().hex[:6]
    cams = [f"bench-{name}-{run}-{i}" for i in range(n_cams)]
    per_proc = [cams[i::n_procs] for i in range(n_procs)]
    procs = []
    for i, ids in enumerate(per_proc):
        cfg = workdir / f"{name}-{i}.json"
        cfg.write_text(json.dumps({"cameras": [camera(c, clip, detection) for c in ids]}))
        cmd = [sys.executable, "-m", "streams", "run", "--config", str(cfg), "--no-lease", "--metrics-port", "0"]
        cmd += ["--detections-topic", det_topic, "--stats-topic", stats_topic, "--bootstrap", bootstrap]
        cmd += ["--imgsz", str(imgsz)] if imgsz else []
        cmd += ["--torch-threads", str(threads), "--device", "cpu", "--duration", str(duration)]
        cmd += ["--grabber-id", f"bench-{name}-{i}", "--log-level", "WARNING"]
        procs.append(subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    errors = [p.communicate(timeout=duration + 180)[1].decode(errors="replace") for p in procs]
    failed = [e[-2000:] for p, e in zip(procs, errors, strict=True) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"{name}: grabber failed:\n{failed[0]}")
    dets, stats = read_back(bootstrap, det_topic, stats_topic, set(cams))
    return summarise(name, dets, stats, cams)


def read_back(bootstrap: str, det_topic: str, stats_topic: str, cams: set[str]) -> tuple[list[dict], list[dict]]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False})
    c.assign([TopicPartition(det_topic, 0, 0), TopicPartition(stats_topic, 0, 0)])
    dets, stats = [], []
    idle_until = time.monotonic() + 5
    while time.monotonic() < idle_until:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        idle_until = time.monotonic() + 2
        if m.key() is None or m.key().decode() not in cams:
            continue
        (dets if m.topic() == det_topic else stats).append(json.loads(m.value()))
    c.close()
    return dets, stats


def summarise(name: str, dets: list[dict], stats: list[dict], cams: list[str]) -> dict:
    n_cams, n_procs, imgsz, threads, clip, detection = CONFIGS[name]
    start = min(d["captured_at"] for d in dets) + WARM_S
    end = max(d["captured_at"] for d in dets)
    window = [d for d in dets if start <= d["captured_at"] <= end]
    span = end - start
    latency = [(d["published_at"] - d["captured_at"]) * 1000 for d in window]
    inference = [d["inference_ms"] for d in window]
    last_stats = {s["camera_id"]: s for s in stats}
    return {
        "config": name,
        "cameras": n_cams,
        "processes": n_procs,
        "clip": clip.name if clip != MOT else "mot16-09",
        "imgsz": imgsz or "camera's",
        "detection": detection or "defaults",
        "torch_threads_per_process": threads,
        "measured_s": round(span, 1),
        "frames_per_s": round(len(window) / span, 2),
        "frames_per_s_per_camera": round(len(window) / span / n_cams, 2),
        "latency_ms_p50": round(percentile(latency, 50), 1),
        "latency_ms_p95": round(percentile(latency, 95), 1),
        "inference_call_ms_p50": round(percentile(inference, 50), 1),
        "people_per_frame_mean": round(sum(len(d["boxes"]) for d in window) / max(len(window), 1), 2),
        "input_fps_per_camera": round(
            sum(last_stats[c]["input_fps"] for c in cams if c in last_stats) / max(len(last_stats), 1), 1
        ),
        "dropped_frames_total": sum(last_stats[c]["dropped_frames"] for c in cams if c in last_stats),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=25.0, help="seconds per configuration")
    parser.add_argument("--only", help=f"comma-separated configurations (default all: {', '.join(CONFIGS)})")
    parser.add_argument("--bootstrap", default=get_settings().kafka.bootstrap)
    args = parser.parse_args()
    if not CLIP.is_file():
        print(json.dumps({"skipped": f"footage not found: {CLIP}"}))
        return 0
    names = args.only.split(",") if args.only else list(CONFIGS)

    from confluent_kafka.admin import AdminClient, NewTopic

    run = uuid.uuid4().hex[:8]
    det_topic, stats_topic = f"bench.grabber.{run}.detections", f"bench.grabber.{run}.stream-stats"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for fut in admin.create_topics([NewTopic(t, 1, 1) for t in (det_topic, stats_topic)]).values():
        fut.result()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                results.append(run_config(name, args.bootstrap, det_topic, stats_topic, args.duration, Path(tmp)))
                print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        for fut in admin.delete_topics([det_topic, stats_topic]).values():
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - best effort cleanup
                print(f"could not delete a bench topic: {exc}", file=sys.stderr)
    base = next((r for r in results if r["config"] == BASELINE), None)
    for r in results:
        if base:
            r["speedup_vs_baseline"] = round(r["frames_per_s"] / base["frames_per_s"], 2)
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    print(
        json.dumps(
            {
                "benchmark": "grabber_throughput",
                "clip": CLIP.name,
                "source_fps": 24,
                "duration_s_per_config": args.duration,
                "cpu": cpu,
                "cores": os.cpu_count(),
                "device": "cpu",
                "baseline": BASELINE,
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
