"""Detector cost per backend: frames per core-second on one pinned core, and counting accuracy.

For each configuration (inference backend x precision x motion gating, ``streams/backends.py``,
``streams/motion.py``) a fresh subprocess pinned to ONE core (``os.sched_setaffinity``, one
inference thread) runs the grabber's per-frame path -- the motion gate's check when gating is on,
then ``streams.detector.Detector.detect`` on the frames it lets through -- on

* ``crosswalk``: ``../shared/assets/crosswalk-640x360.mp4`` (busy, at ``auto_imgsz`` = 640),
* ``mot16-09``: ``../shared/assets/mot16-09/video.mp4`` (busy, 1080p, at ``auto_imgsz`` = 960),
* ``quiet``: a synthetic quiet clip (``bench/quiet_clip.py``: a still street, one real person
  walking across every 10 s; written once under ``.local/cache/``, 10 fps),

and reports frames per core-second = frames / CPU seconds of the process spent in gate + detector
(decoding is not counted: it is the same for every backend), and ms of CPU per frame. The baseline
is Ultralytics' PyTorch ``predict`` on the same frames, one core, no gating (``torch``).

Accuracy: ``bench/accuracy.py --backend B --precision P --motion-gating on|off --no-peer`` per
configuration (pooled over the development footage; its detections are cached, so only the first
run of a backend is slow); ``--no-accuracy`` skips it.

    .venv/bin/python bench/detector_cost.py                       # ~15 min the first time
    .venv/bin/python bench/detector_cost.py --frames 40 --quiet-frames 100 --no-accuracy --configs torch,openvino
    .venv/bin/python bench/detector_cost.py --configs openvino-int8 --gating on

Prints one JSON object: ``configs`` (per configuration and clip: frames, CPU s, frames per
core-second, CPU ms per frame, share of frames gated, speed-up vs ``torch``; the accuracy) and
``defaults`` (the configuration the grabber runs by default: ``--backend auto``, ``--precision``
default, motion gating on) with ``busy_speedup_vs_torch`` (geometric mean over the busy clips) and
``quiet_speedup_vs_torch``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ASSETS = ROOT.parent / "shared" / "assets"
CACHE = ROOT / ".local" / "cache"
CLIPS = {
    "crosswalk": ASSETS / "crosswalk-640x360.mp4",
    "mot16-09": ASSETS / "mot16-09" / "video.mp4",
    "quiet": CACHE / "quiet-street-60s-10fps.mp4",
}
BUSY = ("crosswalk", "mot16-09")
# name: (backend, precision)
BACKEND_CONFIGS = {
    "torch": ("torch", "fp32"),
    "onnx": ("onnx", "fp32"),
    "openvino": ("openvino", "fp32"),
    "openvino-int8": ("openvino", "int8"),
}


def clip_lines(name: str) -> list[tuple[list[float], list[float]]]:
    """The counting lines of a clip (the motion gate's region of interest); none: the whole frame."""
    path = CLIPS[name]
    lines_file = path.with_name("lines.json") if name != "quiet" else path.with_suffix(".json")
    if not lines_file.is_file():
        return []
    data = json.loads(lines_file.read_text())
    data = data.get("lines", data)
    return [(v["start"], v["end"]) for v in data.values()]


def quiet_clip() -> Path:
    path = CLIPS["quiet"]
    if not path.is_file():
        from bench.quiet_clip import quiet_clip as make

        make(path, seconds=60, fps=10)
    return path


# --------------------------------------------------------------------------- one configuration (subprocess)


def measure(backend: str, precision: str, gating: bool, clip: str, frames: int, core: int) -> dict:
    """Runs in a pinned subprocess: gate + detect ``frames`` frames of ``clip``, CPU time counted."""
    os.sched_setaffinity(0, {core})
    import cv2

    from streams.detector import Detector, auto_imgsz
    from streams.motion import DEFAULT_MOTION, MotionGate, roi_box

    detector = Detector("", "cpu", threads=1, backend=backend, precision=precision)
    cap = cv2.VideoCapture(str(CLIPS[clip]))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    ok, first = cap.read()
    if not ok:
        raise SystemExit(f"cannot read {CLIPS[clip]}")
    h, w = first.shape[:2]
    imgsz = auto_imgsz(w, h)
    t0 = time.perf_counter()
    engine = detector.warm_up("", imgsz, (w, h))  # loads, exports once (cached), first inference
    load_s = time.perf_counter() - t0
    gate = MotionGate(DEFAULT_MOTION, roi_box((w, h), clip_lines(clip))) if gating else None
    cpu = wall = 0.0
    done = detected = 0
    image = first
    while done < frames:
        c0, w0 = time.process_time(), time.perf_counter()
        if gate is None or gate.check(image, done / fps):
            detector.detect("", [image], imgsz, 0.1)
            detected += 1
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        done += 1
        ok, image = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
    cap.release()
    return {
        "backend": engine.backend,
        "precision": engine.precision,
        "imgsz": imgsz,
        "frames": done,
        "detected_frames": detected,
        "gated_ratio": round(1 - detected / done, 3),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "frames_per_core_s": round(done / cpu, 2),
        "cpu_ms_per_frame": round(1000 * cpu / done, 1),
        "cpu_ms_per_detection": round(1000 * cpu / max(detected, 1), 1),
        "load_s": round(load_s, 1),
    }


def run_measure(backend: str, precision: str, gating: bool, clip: str, frames: int, core: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--_measure", json.dumps([backend, precision, gating, clip, frames, core])]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{backend}/{precision} on {clip} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_accuracy(backend: str, precision: str, gating: bool) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "accuracy.py"), "--no-peer", "--backend", backend]
    cmd += ["--precision", precision, "--motion-gating", "on" if gating else "off"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    text = proc.stdout
    start = text.find("\n{\n") + 1 if not text.startswith("{") else 0  # exporters may log to stdout first
    try:
        if proc.returncode != 0:
            raise ValueError(f"exit status {proc.returncode}")
        out = json.loads(text[start:])
    except ValueError as exc:  # one configuration's failure must not lose the others' figures
        return {"error": f"{exc}: {(proc.stderr or text)[-1000:]}"}
    return {
        "pooled": out["pooled"]["accuracy"],
        "sequences": {k: v["accuracy"] for k, v in out["defaults"]["sequences"].items()},
    }


# --------------------------------------------------------------------------- main


def geomean(values: list[float]) -> float | None:
    return round(math.exp(sum(math.log(v) for v in values) / len(values)), 2) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per busy clip and configuration (default 120)")
    parser.add_argument(
        "--quiet-frames",
        type=int,
        default=300,
        help="frames of the quiet clip (default 300 = 30 s at 10 fps: three walkers; gated frames cost little)",
    )
    parser.add_argument("--configs", help=f"comma-separated backends (default all: {', '.join(BACKEND_CONFIGS)})")
    parser.add_argument(
        "--gating",
        choices=("off", "on", "both"),
        default="both",
        help="motion gating (streams/motion.py) for every backend: off, on or both (default both)",
    )
    parser.add_argument("--clips", help=f"comma-separated clips (default all: {', '.join(CLIPS)})")
    parser.add_argument("--no-accuracy", action="store_true", help="skip bench/accuracy.py per configuration")
    parser.add_argument("--core", type=int, help="the core to pin each run to (default: the last one allowed)")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(*json.loads(args._measure))))
        return 0

    from streams.backends import DEFAULT_BACKEND, DEFAULT_PRECISION, pick_backend

    if not CLIPS["crosswalk"].is_file():
        print(json.dumps({"skipped": f"footage not found: {CLIPS['crosswalk']}"}))
        return 0
    quiet_clip()
    clips = args.clips.split(",") if args.clips else list(CLIPS)
    names = args.configs.split(",") if args.configs else list(BACKEND_CONFIGS)
    gatings = {"off": [False], "on": [True], "both": [False, True]}[args.gating]
    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    default = (pick_backend(DEFAULT_BACKEND, "cpu"), DEFAULT_PRECISION, True)
    plan = [(n, *BACKEND_CONFIGS[n], g) for n in names for g in gatings]
    if not any((b, p, g) == default for _, b, p, g in plan):
        plan.append(("defaults", *default))
    if not any((b, g) == ("torch", False) for _, b, _, g in plan):
        plan.insert(0, ("torch", "torch", "fp32", False))  # the baseline
    results: dict[str, dict] = {}
    t_start = time.monotonic()
    for name, backend, precision, gating in plan:
        label = f"{name}{'+gating' if gating else ''}"
        entry: dict = {"backend": backend, "precision": precision, "motion_gating": gating, "clips": {}}
        for clip in clips:
            n = args.quiet_frames if clip == "quiet" else args.frames
            entry["clips"][clip] = run_measure(backend, precision, gating, clip, n, core)
            print(f"{label} {clip}: {json.dumps(entry['clips'][clip])}", file=sys.stderr)
        if not args.no_accuracy:
            entry["accuracy"] = run_accuracy(backend, precision, gating)
            print(f"{label} accuracy: {entry['accuracy']}", file=sys.stderr)
        results[label] = entry
    base = results.get("torch")
    for entry in results.values():
        for clip, r in entry["clips"].items():
            if base and clip in base["clips"]:
                r["speedup_vs_torch"] = round(r["frames_per_core_s"] / base["clips"][clip]["frames_per_core_s"], 2)
    default_label = next(
        (k for k, v in results.items() if (v["backend"], v["precision"], v["motion_gating"]) == default), None
    )
    d = results.get(default_label or "", {"clips": {}})
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = models[0] if models else cpu
    out = {
        "benchmark": "detector_cost",
        "cpu": cpu,
        "pinned_core": core,
        "frames_per_clip": {c: args.quiet_frames if c == "quiet" else args.frames for c in clips},
        "clips": {c: str(CLIPS[c].relative_to(ROOT.parent)) for c in clips},
        "configs": results,
        "defaults": {
            "config": default_label,
            "backend": default[0],
            "precision": default[1],
            "motion_gating": True,
            "busy_speedup_vs_torch": geomean(
                [d["clips"][c]["speedup_vs_torch"] for c in BUSY if "speedup_vs_torch" in d["clips"].get(c, {})]
            ),
            "quiet_speedup_vs_torch": d["clips"].get("quiet", {}).get("speedup_vs_torch"),
        },
        "elapsed_s": round(time.monotonic() - t_start, 1),
    }
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
