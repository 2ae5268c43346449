"""Counting accuracy on real footage: the grabber path (decode -> ``Detector`` -> tracker -> line
counter) over every sequence in ``../shared/assets/`` that has ground truth, beside a peer.

A sequence is a folder with ``video.mp4``, ``gt.txt`` (MOTChallenge), ``lines.json`` and
``expected_crossings.json`` (``shared/assets/README.md`` gives the rule behind the expected counts;
:func:`rule_crossings` is that rule, and the run checks it reproduces each file from ``gt.txt``).

For each setting of the grid the frames go through ``streams.detector.Detector`` (cached per
sequence, image size and NMS IoU under ``.local/cache/accuracy/``, keyed by the video, the weights,
the ``Detector`` class's code and the Ultralytics and torch versions: detections are made once at a
confidence floor and filtered per setting, which gives the same boxes as running at that
confidence, since NMS only lets a box suppress lower-scored ones), the grabber's wire rounding
(``box_rows``) and ``core.camera.process_frame`` with the setting's tracker and counting parameters,
one frame at a time as the counting agent does. Counting accuracy is
``1 - sum |counted - expected| / sum expected`` over lines x directions, per sequence and pooled
over all of them.

The peer, in the same run on the same frames and model: Ultralytics' ``model.track`` with its
default tracker (ByteTrack) and settings, its tracks counted with the same rule as the ground truth.

Every missed or extra crossing is explained from the ground truth (:func:`explain`): per frame the
tracks are matched to ground-truth boxes (IoU >= 0.4), and a missed crossing is put down to

* ``not detected``: no detection overlaps the person near the crossing (occluded, too small);
* ``no confirmed track``: detected, but no confirmed track followed the person there (born late,
  or too few or too weak detections to confirm);
* ``id switch``: the person's track before the line is not the one after it;
* ``track ended at the line``: the person's track was lost at the line and never re-found;
* ``followed, not counted``: one track followed the person across, but its boxes' anchor did not
  pass beyond the band on both sides (partial boxes, the clip ending on the line);

and an extra crossing to ``false or merged box`` (the track follows no single person: a box on
nobody or around two people), ``taken over`` (the track moved from one person to another across
the line), ``double count`` (two tracks counted one person's passage), or ``anchor off the
person`` (one person's track whose boxes' bottom edge crossed where the person's feet did not).

    .venv/bin/python bench/accuracy.py                       # the defaults and the peer
    .venv/bin/python bench/accuracy.py --grid imgsz=640,800 nms_iou=0.7,0.5 high_conf=0.5,0.3
    .venv/bin/python bench/accuracy.py --json bench/results/accuracy.json --no-peer
    .venv/bin/python bench/accuracy.py --no-peer --motion-gating off   # every frame detected
    .venv/bin/python bench/accuracy.py --no-peer --backend openvino --precision int8 --lines grid

``--lines grid`` adds :func:`grid_lines` to each sequence's own (229 crossings instead of 74, from
``gt.txt`` by the same rule): a comparison of two detectors that does not turn on one crossing.
``--calibration sequence`` calibrates INT8 on each sequence's own video, as a grabber without a
calibration clip does on its cameras' frames (``streams/calibration.py``).

Motion gating (``--motion-gating on``, the default, as in the grabber): each sequence's frames go
through ``streams.motion`` (the region of interest from its lines) and a gated frame gets the boxes
of the last frame the detector ran on instead of its own, as the grabber publishes them. The
detection cache is untouched (every frame is detected once and cached; the gate only picks which
cached detections are used and which repeated). Each sequence reports ``gated_ratio`` and
``gate_ms`` (the gate's CPU time per frame: shrinking the frame and comparing).

Grid keys: ``imgsz`` (a number or ``auto``, the stream-size rule), ``nms_iou``, ``confidence``
(detection settings), and any field of ``core.tracking.TrackerParams`` or
``core.counting.CountingParams``. Prints a table on stderr and one JSON object on stdout whose
``pooled.accuracy`` is the defaults' pooled figure.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import itertools
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.camera import CameraParams, CameraState, Frame, process_frame  # noqa: E402
from core.counting import Scene  # noqa: E402
from core.geometry import iou_matrix  # noqa: E402

ASSETS = ROOT.parent / "shared" / "assets"
CACHE = ROOT / ".local" / "cache" / "accuracy"
DET_FLOOR = 0.05  # detections are cached down to this confidence
BAND_PX, BAND_FRAC = 3.0, 0.02  # the reference rule's band (shared/assets/README.md)
MATCH_IOU = 0.4  # a track follows a ground-truth person on a frame when their boxes overlap this much
DETECTION_KEYS = ("imgsz", "nms_iou", "confidence")
# The detector's inference backend and precision (streams/backends.py), set by --backend/--precision.
BACKEND, PRECISION = "torch", "fp32"
# INT8 calibration frames (--calibration): "default" is streams.backends' clip; "sequence" is each
# sequence's own video, as a camera calibrated on its own stream would be.
CALIBRATION = "default"


# --------------------------------------------------------------------------- footage


@dataclass
class Sequence:
    name: str
    folder: Path
    fps: float
    width: int
    height: int
    lines: dict[str, dict[str, list[float]]]
    expected: dict[str, dict[str, int]]
    gt: np.ndarray  # rows frame, id, x1, y1, x2, y2 (pedestrians only)

    @property
    def video(self) -> Path:
        return self.folder / "video.mp4"


def read_gt(path: Path) -> np.ndarray:
    """Ground-truth rows ``frame, id, x1, y1, x2, y2``. MOT16/17 files (a class column holding
    values other than -1) keep pedestrians only (columns 7 and 8 both 1), as the expected counts do."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] >= 8 and np.any(rows[:, 7] != -1):
        rows = rows[(rows[:, 6] == 1) & (rows[:, 7] == 1)]
    out = rows[:, :6].copy()
    out[:, 4] += out[:, 2]
    out[:, 5] += out[:, 3]
    return out


def _video_info(video: Path) -> tuple[float, int, int]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        return fps, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


def sequences(assets: Path = ASSETS, only: list[str] | None = None) -> list[Sequence]:
    """Every folder of ``assets`` with a video, ground truth, lines and expected crossings."""
    out = []
    for folder in sorted(p for p in assets.iterdir() if p.is_dir()) if assets.is_dir() else []:
        files = [folder / n for n in ("video.mp4", "gt.txt", "lines.json", "expected_crossings.json")]
        if not all(f.is_file() for f in files) or (only and folder.name not in only):
            continue
        fps, width, height = _video_info(files[0])
        info = folder / "seqinfo.ini"
        if info.is_file():
            for line in info.read_text().splitlines():
                if line.startswith("frameRate="):
                    fps = float(line.split("=", 1)[1])
        out.append(
            Sequence(
                name=folder.name,
                folder=folder,
                fps=fps,
                width=width,
                height=height,
                lines=json.loads(files[2].read_text()),
                expected=json.loads(files[3].read_text()),
                gt=read_gt(files[1]),
            )
        )
    return out


def frames(video: Path) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield image
    finally:
        cap.release()


# --------------------------------------------------------------------------- the counting rule


def direction_names(start: list[float], end: list[float]) -> tuple[str, str]:
    """Reference names of the (+1, -1) sides a track ends on; +1 is the core's ``in`` side
    (``(end - start) x (p - start) > 0``, image coordinates)."""
    if start[0] == end[0]:
        return ("right_to_left", "left_to_right") if end[1] > start[1] else ("left_to_right", "right_to_left")
    if start[1] == end[1]:
        return ("top_to_bottom", "bottom_to_top") if end[0] > start[0] else ("bottom_to_top", "top_to_bottom")
    return ("to_right", "to_left")


def rule_crossings(boxes: np.ndarray, lines: dict[str, dict]) -> list[tuple[int, str, str, int]]:
    """The reference rule (``shared/assets/README.md``) over tracked boxes.

    ``boxes`` rows are ``frame, id, x1, y1, x2, y2``; returns ``(id, line, direction, frame)``: an
    anchor (bottom-centre) within max(3 px, 2 % of the box height) of the line or beyond its ends
    has no side; a crossing is a change of side between two anchors that have one."""
    out = []
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    b = boxes[order]
    ax, ay, h = (b[:, 2] + b[:, 4]) / 2, b[:, 5], b[:, 5] - b[:, 3]
    band = np.maximum(BAND_PX, BAND_FRAC * h)
    for name, line in lines.items():
        (sx, sy), (ex, ey) = line["start"], line["end"]
        dx, dy = ex - sx, ey - sy
        length2 = dx * dx + dy * dy
        t = ((ax - sx) * dx + (ay - sy) * dy) / length2
        dist = (dx * (ay - sy) - dy * (ax - sx)) / np.sqrt(length2)
        side = np.where((t < 0) | (t > 1) | (np.abs(dist) <= band), 0, np.sign(dist)).astype(int)
        pos, neg = direction_names(line["start"], line["end"])
        last: dict[int, int] = {}
        for (frame, tid), s in zip(b[:, :2].astype(int).tolist(), side.tolist(), strict=True):
            if s == 0:
                continue
            if last.get(tid, s) != s:
                out.append((tid, name, pos if s > 0 else neg, frame))
            last[tid] = s
    return out


def grid_lines(width: int, height: int, columns: int = 8, rows: int = 6) -> dict[str, dict[str, list[float]]]:
    """Full-height lines at every ``1/columns`` of the width and full-width lines at every ``1/rows``
    of the height, named like the assets' (``x480``, ``y300``): many more crossings to measure
    against than a sequence's own few lines (``--lines grid``), so that a comparison of two detectors
    does not turn on one or two events."""
    out = {
        f"x{round(width * k / columns)}": {
            "start": [round(width * k / columns), 0],
            "end": [round(width * k / columns), height],
        }
        for k in range(1, columns)
    }
    out |= {
        f"y{round(height * k / rows)}": {
            "start": [0, round(height * k / rows)],
            "end": [width, round(height * k / rows)],
        }
        for k in range(1, rows)
    }
    return out


def expected_from(crossings: list[tuple[int, str, str, int]], lines: dict[str, dict]) -> dict[str, dict[str, int]]:
    """Expected counts per line and direction from the reference rule's crossings (both directions
    of every line, zeros included)."""
    n = Counter((line, d) for _, line, d, _ in crossings)
    return {
        name: {d: n[(name, d)] for d in direction_names(line["start"], line["end"])} for name, line in lines.items()
    }


def tally(crossings: list[tuple[int, str, str, int]], expected: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    n = Counter((line, d) for _, line, d, _ in crossings)
    return {line: {d: n[(line, d)] for d in dirs} for line, dirs in expected.items()}


def errors(counts: dict[str, dict[str, int]], expected: dict[str, dict[str, int]]) -> int:
    return sum(abs(counts[line][d] - n) for line, dirs in expected.items() for d, n in dirs.items())


def total(expected: dict[str, dict[str, int]]) -> int:
    return sum(n for dirs in expected.values() for n in dirs.values())


# --------------------------------------------------------------------------- detection


def auto_imgsz(width: int, height: int) -> int:
    from streams.detector import auto_imgsz as rule

    return rule(width, height)


_DETECTED: dict[tuple[str, int, float], list[np.ndarray]] = {}


def backends_code() -> str:
    """Hash of ``streams/backends.py`` (how exported models are made and run)."""
    import streams.backends

    return hashlib.sha256(inspect.getsource(streams.backends).encode()).hexdigest()


def detections(seq: Sequence, imgsz: int, nms_iou: float, use_cache: bool = True) -> list[np.ndarray]:
    """Per frame ``(N, 5)`` boxes of ``streams.detector.Detector`` at ``DET_FLOOR`` confidence
    (once per process: every setting of a run, gated or not, sees the same detections)."""
    key = (seq.name, imgsz, nms_iou)
    if key not in _DETECTED:
        _DETECTED[key] = _detections(seq, imgsz, nms_iou, use_cache)
    return _DETECTED[key]


def _detections(seq: Sequence, imgsz: int, nms_iou: float, use_cache: bool = True) -> list[np.ndarray]:
    import torch
    import ultralytics

    import streams.detector
    from streams.detector import Detector, file_digest, offline_model_path

    model = offline_model_path()
    key = hashlib.sha256(
        ":".join(
            (
                file_digest(str(seq.video)),
                file_digest(str(model)),
                hashlib.sha256(inspect.getsource(streams.detector.Detector).encode()).hexdigest(),  # the code
                ultralytics.__version__,
                torch.__version__,
                f"{imgsz}:{nms_iou}:{DET_FLOOR}",
                *(() if (BACKEND, PRECISION) == ("torch", "fp32") else (BACKEND, PRECISION, backends_code())),
                *((CALIBRATION,) if PRECISION == "int8" and CALIBRATION != "default" else ()),
            )
        ).encode()
    )
    tag = "" if (BACKEND, PRECISION) == ("torch", "fp32") else f"-{BACKEND}-{PRECISION}"
    calibration = seq.video if PRECISION == "int8" and CALIBRATION == "sequence" else None
    path = CACHE / f"{seq.name}-{imgsz}-{nms_iou}{tag}-{key.hexdigest()[:10]}.npz"
    if use_cache and path.is_file():
        data = np.load(path)
        return np.split(data["boxes"], data["splits"])
    detector = Detector("", "cpu", nms_iou=nms_iou, backend=BACKEND, precision=PRECISION, calibration=calibration)
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    t0 = time.perf_counter()
    for image in itertools.chain(frames(seq.video), [None]):
        if image is not None:
            batch.append(image)
        if batch and (image is None or len(batch) == 8):
            found, _ = detector.detect("", batch, imgsz, DET_FLOOR)
            out += found
            batch = []
    print(f"  detected {seq.name} at {imgsz} px, NMS {nms_iou}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    splits = np.cumsum([len(b) for b in out])[:-1]
    np.savez_compressed(path, boxes=np.concatenate(out) if out else np.zeros((0, 5)), splits=splits)
    return out


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """What one pipeline made of one sequence: its crossings and, per frame, its tracks' boxes."""

    crossings: list[tuple[int, str, str, int]]  # track, line, direction, frame
    tracks: np.ndarray  # rows frame, track id, x1, y1, x2, y2 (confirmed tracks matched on that frame)
    detections: list[np.ndarray] = field(default_factory=list)  # what the tracker was given, per frame


_SMALL: dict[tuple[str, int], tuple[list[np.ndarray], float]] = {}


def small_frames(seq: Sequence, width: int) -> tuple[list[np.ndarray], float]:
    """The sequence's frames as the motion gate sees them, and the ms per frame it took to shrink them."""
    from streams.motion import downscale

    key = (seq.name, width)
    if key not in _SMALL:
        out, spent = [], 0.0
        for image in frames(seq.video):
            t0 = time.perf_counter()
            out.append(downscale(image, width))
            spent += time.perf_counter() - t0
        _SMALL[key] = (out, 1000.0 * spent / max(len(out), 1))
    return _SMALL[key]


def gate_frames(seq: Sequence, motion: Any) -> tuple[list[bool], float]:
    """Per frame, whether the detector runs under ``streams.motion`` with ``motion``
    (``MotionParams``), and the gate's ms per frame (shrinking + deciding)."""
    from streams.motion import GateState, decide, roi_box, roi_mask

    small, shrink_ms = small_frames(seq, motion.width)
    roi = roi_box(
        (seq.width, seq.height), [(line["start"], line["end"]) for line in seq.lines.values()], margin=motion.roi_margin
    )
    mask = roi_mask(small[0].shape, (seq.width, seq.height), roi) if small else None
    state, runs = GateState(), []
    t0 = time.perf_counter()
    for seq_no, image in enumerate(small, start=1):
        t = seq_no / seq.fps
        run = decide(state, image, mask, t, motion).run
        if run:
            state = GateState(image, t)
        runs.append(run)
    decide_ms = 1000.0 * (time.perf_counter() - t0) / max(len(small), 1)
    return runs, shrink_ms + decide_ms


def gated_boxes(boxes: list[np.ndarray], runs: list[bool]) -> list[np.ndarray]:
    """``boxes`` with each gated frame's replaced by those of the last frame the detector ran on."""
    out, last = [], np.zeros((0, 5))
    for found, run in zip(boxes, runs, strict=True):
        if run:
            last = found
        out.append(last)
    return out


def run_core(seq: Sequence, boxes: list[np.ndarray], confidence: float, params: CameraParams) -> Run:
    """The counting agent's path: wire rounding, then ``process_frame`` frame by frame."""
    from streams.grabber import box_rows

    scene = Scene.from_config(lines=[(name, line["start"], line["end"]) for name, line in seq.lines.items()])
    names = {name: direction_names(line["start"], line["end"]) for name, line in seq.lines.items()}
    state = CameraState()
    crossings, tracked, given = [], [], []
    for seq_no, found in enumerate(boxes, start=1):
        kept = np.asarray(box_rows(found[found[:, 4] >= confidence]), dtype=np.float64).reshape(-1, 5)
        given.append(kept)
        state, cross, _, _ = process_frame(state, Frame(seq.name, seq_no, seq_no / seq.fps, kept), scene, params)
        for c in cross:
            pos, neg = names[c.line_id]
            crossings.append((c.track_id, c.line_id, pos if c.direction == "in" else neg, seq_no))
        for t in state.tracker.view():
            if t.confirmed and t.time_since_update == 0.0:
                tracked.append((seq_no, t.track_id, *t.box))
    return Run(crossings, np.array(tracked, dtype=np.float64).reshape(-1, 6), given)


def run_peer(seq: Sequence, use_cache: bool = True) -> Run:
    """Ultralytics ``model.track`` (its default ByteTrack and settings), same model, same frames."""
    import ultralytics

    from streams.detector import file_digest, offline_model_path

    model_path = offline_model_path()
    key = f"{file_digest(str(seq.video))}:{file_digest(str(model_path))}:{ultralytics.__version__}"
    path = CACHE / f"{seq.name}-peer-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npy"
    if use_cache and path.is_file():
        rows = np.load(path)
    else:
        from ultralytics import YOLO

        model = YOLO(str(model_path))
        out = []
        for seq_no, image in enumerate(frames(seq.video), start=1):
            r = model.track(image, persist=True, verbose=False, device="cpu")[0]
            if r.boxes is not None and r.boxes.id is not None:
                for tid, box in zip(r.boxes.id.int().tolist(), r.boxes.xyxy.tolist(), strict=True):
                    out.append((seq_no, tid, *box))
        rows = np.array(out, dtype=np.float64).reshape(-1, 6)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, rows)
    return Run(rule_crossings(rows, seq.lines), rows)


# --------------------------------------------------------------------------- explaining errors


def _identity(tracks: np.ndarray, gt: np.ndarray) -> dict[tuple[int, int], int]:
    """(frame, track id) -> ground-truth id, by optimal IoU matching on every frame."""
    out = {}
    for frame in np.unique(tracks[:, 0]):
        t = tracks[tracks[:, 0] == frame]
        g = gt[gt[:, 0] == frame]
        if not len(g):
            continue
        iou = iou_matrix(t[:, 2:6], g[:, 2:6])
        r, c = linear_sum_assignment(iou, maximize=True)
        for i, j in zip(r, c, strict=True):
            if iou[i, j] >= MATCH_IOU:
                out[(int(frame), int(t[i, 1]))] = int(g[j, 1])
    return out


def explain(seq: Sequence, run: Run, truth: list[tuple[int, str, str, int]]) -> list[dict[str, Any]]:
    """Every missed and extra crossing of ``run`` against the ground-truth crossings ``truth``,
    with its cause (see the module docstring)."""
    window = max(int(round(seq.fps)), 5)  # frames either side of a crossing
    ident = _identity(run.tracks, seq.gt) if len(run.tracks) else {}
    by_frame: dict[int, dict[int, int]] = defaultdict(dict)
    for (f, tid), p in ident.items():
        by_frame[f][tid] = p

    def followers(person: int, lo: int, hi: int) -> list[int]:
        return [tid for f in range(lo, hi + 1) for tid, p in by_frame.get(f, {}).items() if p == person]

    def person_of(tid: int, lo: int, hi: int) -> list[int]:
        return [by_frame.get(f, {}).get(tid) for f in range(lo, hi + 1) if tid in by_frame.get(f, {})]

    # pair each ground-truth crossing with a counted one: same line and direction, close in time,
    # the track following that person; then leftovers close in time (identity aside)
    missed = list(truth)
    extra = list(run.crossings)
    for strict in (True, False):
        for g in list(missed):
            pid, line, d, gf = g
            best = None
            for e in extra:
                tid, eline, ed, ef = e
                if (eline, ed) != (line, d) or abs(ef - gf) > 2 * window:
                    continue
                if strict and pid not in person_of(tid, ef - window, ef):
                    continue
                if best is None or abs(ef - gf) < abs(best[3] - gf):
                    best = e
            if best is not None:
                missed.remove(g)
                extra.remove(best)
    out = []
    for pid, line, d, gf in missed:
        g = seq.gt[seq.gt[:, 1] == pid]
        near = g[np.abs(g[:, 0] - gf) <= window]
        seen = 0
        for row in near:
            dets = run.detections[int(row[0]) - 1] if int(row[0]) - 1 < len(run.detections) else np.zeros((0, 5))
            if len(dets) and iou_matrix(row[None, 2:6], dets[:, :4]).max() >= MATCH_IOU:
                seen += 1
        before = set(followers(pid, gf - window, gf - 1))
        after = set(followers(pid, gf, gf + window))
        if seen == 0:
            cause = "not detected"
        elif not before and not after:
            cause = "no confirmed track"
        elif before and after and not before & after:
            cause = "id switch"
        elif before and not after:
            cause = "track ended at the line"
        elif after and not before:
            cause = "no confirmed track"  # born on the far side: where it came from is unknown
        else:
            cause = "followed, not counted"  # one track across: its boxes' anchor did not cross beyond the band
        out.append({"kind": "missed", "line": line, "direction": d, "frame": gf, "person": pid, "cause": cause})
    counted_people = defaultdict(list)
    for tid, line, d, ef in run.crossings:
        for p in set(person_of(tid, ef - window, ef)):
            counted_people[(p, line, d)].append(ef)
    for tid, line, d, ef in extra:
        before = Counter(person_of(tid, ef - 2 * window, ef - 1)).most_common(1)
        after = Counter(person_of(tid, ef, ef + window)).most_common(1)
        people = [c[0][0] for c in (before, after) if c]  # whom the track mostly followed either side
        if not people:
            cause = "false or merged box"
        elif len(set(people)) > 1:
            cause = "taken over"
        elif len(counted_people[(people[0], line, d)]) > 1:
            cause = "double count"
        else:
            cause = "anchor off the person"  # one person, no such passage: its boxes' bottom strays
        out.append({"kind": "extra", "line": line, "direction": d, "frame": ef, "track": tid, "cause": cause})
    return sorted(out, key=lambda e: (e["line"], e["direction"], e["frame"]))


# --------------------------------------------------------------------------- settings and the grid


def split_setting(setting: dict[str, Any]) -> tuple[dict[str, Any], CameraParams]:
    """Detection settings (with defaults) and the camera params of one grid point: the tracking
    keys go through ``TrackingSettings``, as a camera's ``tracking`` config does."""
    from models.base import SchemaError, parse
    from models.records import DetectionSettings, TrackingSettings
    from streams.detector import NMS_IOU

    camera = DetectionSettings()  # what a camera whose config says nothing gets
    det = {"imgsz": camera.imgsz or "auto", "nms_iou": camera.nms_iou or NMS_IOU, "confidence": camera.confidence}
    det.update((k, v) for k, v in setting.items() if k in DETECTION_KEYS)
    tracking = {k: v for k, v in setting.items() if k not in DETECTION_KEYS}
    try:
        return det, parse(TrackingSettings, tracking).camera_params()
    except SchemaError as exc:
        raise SystemExit(f"grid: {exc} (keys: {DETECTION_KEYS}, TrackerParams or CountingParams fields)") from exc


def parse_value(text: str) -> Any:
    if text in ("auto",):
        return text
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


def grid(specs: list[str]) -> list[dict[str, Any]]:
    axes = []
    for spec in specs:
        key, _, values = spec.partition("=")
        if not values:
            raise SystemExit(f"grid axis {spec!r}: write key=v1,v2")
        axes.append([(key, parse_value(v)) for v in values.split(",")])
    return [dict(point) for point in itertools.product(*axes)] if axes else [{}]


def evaluate(
    seqs: list[Sequence],
    truths: dict[str, list],
    setting: dict[str, Any],
    use_cache: bool,
    causes: bool,
    motion: Any = None,
) -> dict[str, Any]:
    """One grid point over every sequence; ``motion`` (``streams.motion.MotionParams``) gates the
    frames as the grabber does, None detects every frame."""
    det, params = split_setting({k: v for k, v in setting.items() if k != "motion_gating"})  # a label only
    result: dict[str, Any] = {"setting": setting, "sequences": {}}
    err = exp = 0
    for seq in seqs:
        imgsz = auto_imgsz(seq.width, seq.height) if det["imgsz"] == "auto" else int(det["imgsz"])
        boxes = detections(seq, imgsz, float(det["nms_iou"]), use_cache)
        gating: dict[str, Any] = {}
        if motion is not None:
            runs, gate_ms = gate_frames(seq, motion)
            boxes = gated_boxes(boxes, runs)
            gating = {"gated_ratio": round(1 - sum(runs) / max(len(runs), 1), 3), "gate_ms": round(gate_ms, 3)}
        run = run_core(seq, boxes, float(det["confidence"]), params)
        counts = tally(run.crossings, seq.expected)
        e, n = errors(counts, seq.expected), total(seq.expected)
        err, exp = err + e, exp + n
        entry: dict[str, Any] = {"imgsz": imgsz, "accuracy": round(1 - e / n, 3), "counts": counts, **gating}
        if causes:
            why = explain(seq, run, truths[seq.name])
            entry["errors"] = why
            entry["causes"] = dict(Counter(f"{w['kind']}: {w['cause']}" for w in why).most_common())
        result["sequences"][seq.name] = entry
    result["pooled"] = {"accuracy": round(1 - err / exp, 3), "errors": err, "crossings": exp}
    return result


def table(rows: list[dict[str, Any]], names: list[str]) -> str:
    head = ["setting"] + names + ["pooled"]
    lines = ["  ".join(f"{h:>12}" if i else f"{h:<72}" for i, h in enumerate(head))]
    for row in rows:
        label = " ".join(f"{k}={v}" for k, v in row["setting"].items()) or "(defaults)"
        cells = [f"{row['sequences'][n]['accuracy']:>12.3f}" for n in names] + [f"{row['pooled']['accuracy']:>12.3f}"]
        lines.append(f"{label:<72}  " + "  ".join(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", nargs="*", default=[], help="axes key=v1,v2 (see the module docstring)")
    parser.add_argument("--sequences", nargs="*", help="only these folders of the assets")
    parser.add_argument("--assets", type=Path, default=ASSETS)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="detect again instead of reading the cache")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--backend",
        default="torch",
        help="detector backend: torch (default), onnx, openvino, auto (streams/backends.py)",
    )
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"), help="detector precision")
    parser.add_argument(
        "--calibration",
        choices=("default", "sequence"),
        default="default",
        help="INT8 calibration frames: streams.backends' clip (default) or each sequence's own video",
    )
    parser.add_argument(
        "--motion-gating",
        choices=("on", "off", "both"),
        default="on",
        help="gate frames with streams.motion as the grabber does (default on, the grabber's default); "
        "both: also the defaults without gating, on the same detections",
    )
    parser.add_argument(
        "--lines",
        choices=("files", "grid"),
        default="files",
        help="files: each sequence's lines.json and expected_crossings.json (default); grid: those lines plus "
        "grid_lines(), expected counts from gt.txt by the reference rule (many more crossings; the gate's region "
        "of interest grows with them)",
    )
    parser.add_argument("--motion-threshold", type=float, help="the gate's min_fraction (default MotionParams')")
    args = parser.parse_args()
    global BACKEND, PRECISION, CALIBRATION
    BACKEND, PRECISION, CALIBRATION = args.backend, args.precision, args.calibration
    motion = None
    if args.motion_gating in ("on", "both"):
        from dataclasses import replace

        from streams.motion import DEFAULT_MOTION

        motion = DEFAULT_MOTION
        if args.motion_threshold is not None:
            motion = replace(motion, min_fraction=args.motion_threshold)
    seqs = sequences(args.assets, args.sequences)
    if not seqs:
        print(json.dumps({"error": f"no sequence with ground truth under {args.assets}"}))
        return 1
    names = [s.name for s in seqs]
    truths, check = {}, {}
    for seq in seqs:
        truths[seq.name] = rule_crossings(seq.gt, seq.lines)
        check[seq.name] = errors(tally(truths[seq.name], seq.expected), seq.expected)
        if args.lines == "grid":
            seq.lines = {**grid_lines(seq.width, seq.height), **seq.lines}
            truths[seq.name] = rule_crossings(seq.gt, seq.lines)
            seq.expected = expected_from(truths[seq.name], seq.lines)
    use_cache = not args.no_cache
    defaults = evaluate(seqs, truths, {}, use_cache, causes=True, motion=motion)
    out: dict[str, Any] = {
        "benchmark": "accuracy",
        "sequences": {
            s.name: {"crossings": total(s.expected), "fps": s.fps, "size": [s.width, s.height]} for s in seqs
        },
        # the reference rule applied to gt.txt here vs expected_crossings.json (0 = reproduced)
        "ground_truth_rule_differences": check,
        "pooled": defaults["pooled"],
        "detector": {"backend": BACKEND, "precision": PRECISION, "calibration": CALIBRATION},
        "lines": args.lines,
        "motion_gating": None
        if motion is None
        else {"min_fraction": motion.min_fraction, "max_skip_s": motion.max_skip_s},
        "defaults": defaults,
    }
    rows = [defaults]
    if args.motion_gating == "both":
        out["without_gating"] = evaluate(seqs, truths, {"motion_gating": "off"}, use_cache, causes=True)
        rows.append(out["without_gating"])
    if not args.no_peer:
        err = exp = 0
        peer: dict[str, Any] = {"setting": {"peer": "ultralytics model.track (ByteTrack defaults)"}, "sequences": {}}
        for seq in seqs:
            run = run_peer(seq, use_cache)
            counts = tally(run.crossings, seq.expected)
            e, n = errors(counts, seq.expected), total(seq.expected)
            err, exp = err + e, exp + n
            peer["sequences"][seq.name] = {"accuracy": round(1 - e / n, 3), "counts": counts}
        peer["pooled"] = {"accuracy": round(1 - err / exp, 3), "errors": err, "crossings": exp}
        out["peer"] = peer
        rows.append(peer)
    if args.grid:
        out["grid"] = [
            evaluate(seqs, truths, point, use_cache, causes=False, motion=motion) for point in grid(args.grid)
        ]
        rows += out["grid"]
    print(table(rows, names), file=sys.stderr)
    for name in names:
        print(f"{name} defaults: {defaults['sequences'][name]['causes']}", file=sys.stderr)
        if motion is not None:
            entry = defaults["sequences"][name]
            print(
                f"{name} gated {entry['gated_ratio']:.3f} of frames, gate {entry['gate_ms']:.2f} ms/frame",
                file=sys.stderr,
            )
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
