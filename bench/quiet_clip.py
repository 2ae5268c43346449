"""A synthetic quiet scene: a still street with one real person walking across every ~10 s.

What most cameras see most of the time, for the motion gate (``streams/motion.py``) and detector
cost benchmarks. Built from ``../shared/assets/crosswalk-640x360.mp4``:

* background: per pixel, the mean of the crosswalk clip's frames in which that pixel is *still*
  (its blurred grey level within 3 of the frames 4 and 8 before and after): the walking crowd
  leaves only faint smears. A plain median leaves ghosts of the dense crowd that the detector
  scores as people (0.64, on the line), static false positives that confuse the count; in this
  one the strongest scores 0.37 at imgsz 320 (below the tracker's ``new_track_conf``, 0.4) and
  none reaches 0.2 at 640. Nothing in it moves;
* the walker: one real person cut from the clip's first frame (the grey-haired man on the left,
  ``PERSON_BOX``), pasted with a feathered edge at his own height in the frame (feet at y 280),
  walking across at ``speed_px_s`` (200 px/s, ~1.4 m/s at his ~1.7 m = 246 px), one every
  ``period_s`` (10 s) from ``first_s`` (3 s), alternately left to right and right to left
  (mirrored so he faces where he goes), bobbing 2 px with his steps;
* mild sensor noise (Gaussian, sigma ``noise`` = 2 grey levels, fresh every frame), then the
  mp4v encoder's own artefacts.

The ground truth is exact by construction: a walker's anchor (bottom centre) passes the vertical
line ``middle`` (x 320, full height, drawn downwards as in ``shared/assets``) once per walk.

    from bench.quiet_clip import quiet_clip
    video = quiet_clip(Path("/tmp/quiet.mp4"), seconds=60, fps=10)
    truth = json.loads(video.with_suffix(".json").read_text())
    truth["lines"]               # {"middle": {"start": [320, 0], "end": [320, 360]}}
    truth["expected_crossings"]  # {"middle": {"left_to_right": 3, "right_to_left": 3}}

or ``python bench/quiet_clip.py OUT.mp4 --seconds 60 --fps 10``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CROSSWALK = ROOT.parent / "shared" / "assets" / "crosswalk-640x360.mp4"
PERSON_BOX = (62, 34, 152, 280)  # x1, y1, x2, y2 of the walker in the crosswalk clip's first frame
FEATHER_PX = 6
STILL_FRAMES, STILL_LEVELS = 8, 3  # a background pixel: within 3 grey levels 4 and 8 frames either side


def _source(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """The still background (median) and the person crop of ``source``."""
    import cv2

    if not source.is_file():
        raise FileNotFoundError(f"{source} not found (the crosswalk clip lives in ../shared/assets)")
    cap = cv2.VideoCapture(str(source))
    frames = []
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(image)
    finally:
        cap.release()
    if len(frames) < 2 * STILL_FRAMES + 1:
        raise ValueError(f"{source}: too few frames for a background")
    grey = [cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (5, 5), 0).astype(np.int16) for f in frames]
    total = np.zeros(frames[0].shape, dtype=np.float64)
    count = np.zeros(frames[0].shape[:2], dtype=np.float64)
    for i in range(STILL_FRAMES, len(frames) - STILL_FRAMES, 2):
        still = np.ones(grey[i].shape, dtype=bool)
        for d in (-STILL_FRAMES, -STILL_FRAMES // 2, STILL_FRAMES // 2, STILL_FRAMES):
            still &= np.abs(grey[i] - grey[i + d]) < STILL_LEVELS
        total[still] += frames[i][still]
        count += still
    median = np.median(np.stack(frames[::6]), axis=0)  # where a pixel was never still (6 % of them)
    background = np.where(count[:, :, None] >= 3, total / np.maximum(count, 1)[:, :, None], median).astype(np.uint8)
    x1, y1, x2, y2 = PERSON_BOX
    return background, frames[0][y1:y2, x1:x2].copy()


def _alpha(h: int, w: int) -> np.ndarray:
    ramp_y = np.minimum(np.arange(h), np.arange(h)[::-1]) / FEATHER_PX
    ramp_x = np.minimum(np.arange(w), np.arange(w)[::-1]) / FEATHER_PX
    return np.clip(np.minimum.outer(ramp_y, ramp_x), 0.0, 1.0)[:, :, None]


def _paste(frame: np.ndarray, crop: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Blend ``crop`` into ``frame`` with its top-left at (x, y), clipped to the frame."""
    h, w = crop.shape[:2]
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, fw), min(y + h, fh)
    if x1 >= x2 or y1 >= y2:
        return
    c = crop[y1 - y : y2 - y, x1 - x : x2 - x].astype(np.float32)
    a = alpha[y1 - y : y2 - y, x1 - x : x2 - x]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = np.clip(a * c + (1 - a) * region, 0, 255).astype(np.uint8)


def quiet_clip(
    path: Path,
    seconds: float = 60,
    fps: int = 10,
    *,
    period_s: float = 10.0,
    first_s: float = 3.0,
    speed_px_s: float = 200.0,
    noise: float = 2.0,
    seed: int = 0,
    source: Path = CROSSWALK,
) -> Path:
    """Write the quiet clip to ``path`` (mp4v) and its truth to ``path.with_suffix('.json')``;
    returns ``path``. See the module docstring."""
    import cv2

    path = Path(path)
    background, person = _source(Path(source))
    fh, fw = background.shape[:2]
    ph, pw = person.shape[:2]
    alpha = _alpha(ph, pw)
    foot_y = PERSON_BOX[3]
    line_x = fw // 2
    rng = np.random.default_rng(seed)
    travel_s = (fw + pw) / speed_px_s
    walkers = []
    k = 0
    while first_s + k * period_s + travel_s <= seconds:
        start = first_s + k * period_s
        direction = "left_to_right" if k % 2 == 0 else "right_to_left"
        walkers.append(
            {"enter_s": round(start, 3), "exit_s": round(start + travel_s, 3), "direction": direction,
             "cross_s": round(start + (line_x + pw / 2) / speed_px_s, 3)}
        )  # fmt: skip
        k += 1
    n = int(round(seconds * fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (fw, fh))
    if not writer.isOpened():
        raise OSError(f"cannot write {path} (OpenCV mp4v)")
    mirrored = person[:, ::-1].copy()
    try:
        for i in range(n):
            t = i / fps
            frame = background.copy()
            for w in walkers:
                if w["enter_s"] <= t <= w["exit_s"]:
                    dx = (t - w["enter_s"]) * speed_px_s  # left edge from -pw to fw
                    bob = int(round(2 * abs(np.sin(np.pi * dx / 60.0))))
                    if w["direction"] == "left_to_right":
                        _paste(frame, person, alpha, int(round(-pw + dx)), foot_y - ph - bob)
                    else:
                        _paste(frame, mirrored, alpha, int(round(fw - dx)), foot_y - ph - bob)
            if noise > 0:
                frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
            writer.write(frame)
    finally:
        writer.release()
    expected = {"left_to_right": 0, "right_to_left": 0}
    for w in walkers:
        expected[w["direction"]] += 1
    truth = {
        "video": path.name,
        "fps": fps,
        "frames": n,
        "size": [fw, fh],
        "lines": {"middle": {"start": [line_x, 0], "end": [line_x, fh]}},
        "expected_crossings": {"middle": expected},
        "walkers": walkers,
        "source": str(source.name),
    }
    path.with_suffix(".json").write_text(json.dumps(truth, indent=1))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fps", type=int, default=10)
    args = parser.parse_args()
    path = quiet_clip(args.out, args.seconds, args.fps)
    print(path.with_suffix(".json").read_text())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
