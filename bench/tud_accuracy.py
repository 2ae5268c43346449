"""Counting accuracy on real footage: the offline detector + tracker + line counter on TUD-Campus.

The video ``../shared/assets/tud-campus/video.mp4`` (71 frames, 25 fps, 640x480) goes through
``streams.detector.Detector`` (image size, NMS IoU and confidence as given), then through
``core.camera.process_frame`` with the default tracker and counting parameters and the lines
x200, x320, x440 of ``shared/assets/README.md``. Counting accuracy is
``1 - sum |counted - expected| / sum expected`` over lines and directions against
``expected_crossings.json`` (13 crossings). Issue 4 asks for at least 0.9.

Where it stands (``--imgsz 640 736 800 960 --nms-iou 0.7 0.5 --confidence 0.3 0.5``; the
detections do not depend on the machine; each crossing is 0.077 of the figure):

    imgsz  NMS IoU   conf 0.3  conf 0.5
    640    0.7       0.462     0.692      (Ultralytics' and a camera's defaults)
    640    0.5       0.769     0.846
    736    0.7/0.5   0.846     0.769/0.846
    800    0.7       0.692     0.923
    800    0.5       0.923     0.923      (tests/integration/test_tud_campus_detector.py)
    960    0.7/0.5   0.769/0.615

NMS IoU 0.5 removes many of the partial and duplicate boxes that take over a neighbour's track,
and 800 px helps with the small people of this VGA clip; 0.923 is one error there: one of the two
x200 left_to_right passages of persons 5 and 6 (below) is still missed. The spread over image
sizes says this is one short clip, not a tuned optimum. The analysis of each error at the
defaults (640 px, NMS 0.7, confidence 0.3):

* x200 left_to_right, persons 5 and 6 missed: neither is ever born. Person 6's detections before
  and at its crossing score 0.57 and 0.54, under ByteTrack's ``new_track_conf`` 0.6; person 5's
  score 0.25-0.48 and it then crosses x200 fully hidden behind person 3 (no detection in frames
  7-21). The offline model scores partly hidden people at 0.3-0.5, and scores its own partial
  and two-person boxes at 0.4-0.6, so no birth threshold separates the two.
* x200 right_to_left, person 2 missed and x320/x440 left_to_right extra: as person 2 walks
  behind person 3 (frames 15-16, before reaching x200), its track is taken over by person 3's
  partial boxes (enough IoU with its prediction) and follows person 3 across x320 and x440.
* x440 left_to_right extra and right_to_left extra: persons 5 and 8 walk side by side from frame
  47 on, and the detector often returns one box around both; person 8's track moves onto that
  box (anchor 439 -> 451, frame 66) and onto another merged box on the last frame (467 -> 421).
* x440 left_to_right, person 8 missed: it crosses on the very last frame, and the detector puts
  its anchor 1 px past the line (441), inside the hysteresis band, so it is not yet confirmed.
* x440 left_to_right, person 3: counted here and correct, but not in the reference: its
  ground-truth anchor lands exactly on x=440 (an integer box), which the reference's proper-
  intersection rule does not count (see ``tests/unit/test_tud_campus.py``).

All but the last need appearance (re-identification) or a detector that does not merge and split
people in a crowd; an IoU tracker cannot tell these cases from real motion.

Prints one JSON object: the accuracy with the ground-truth boxes as detections (the baseline, 1.0
with the reference's own rule) and with the detector at each confidence given.

    .venv/bin/python bench/tud_accuracy.py [--imgsz 640 800] [--nms-iou 0.7 0.5] [--confidence 0.3 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.camera import CameraParams, CameraState, Frame, process_frame  # noqa: E402
from core.counting import CountingParams, Scene  # noqa: E402

TUD = Path(__file__).resolve().parents[2] / "shared" / "assets" / "tud-campus"
FPS = 25.0
LINES = (200, 320, 440)
REQUIRED = 0.9


def count(detections: list, params: CameraParams = CameraParams()) -> dict[str, dict[str, int]]:  # noqa: B008
    """Feed per-frame boxes through the core; counts per line as the reference names them."""
    scene = Scene.from_config(lines=[(f"x{x}", (x, 0), (x, 480)) for x in LINES])  # arrows point down
    state, crossings = CameraState(), []
    for seq, boxes in enumerate(detections, start=1):
        state, c, _, _ = process_frame(state, Frame("tud-campus", seq, seq / FPS, boxes), scene, params)
        crossings += c
    n = Counter((c.line_id, c.direction) for c in crossings)
    # a downward arrow's right-hand side is the left of the frame: right_to_left is "in"
    return {f"x{x}": {"left_to_right": n[(f"x{x}", "out")], "right_to_left": n[(f"x{x}", "in")]} for x in LINES}


def accuracy(got: dict[str, dict[str, int]], expected: dict[str, dict[str, int]]) -> float:
    error = sum(abs(got[line][d] - expected[line][d]) for line in expected for d in expected[line])
    return 1.0 - error / sum(v for line in expected.values() for v in line.values())


def ground_truth_boxes() -> list[list[list[float]]]:
    rows = np.loadtxt(TUD / "gt.txt", delimiter=",", ndmin=2)
    frames: list[list[list[float]]] = [[] for _ in range(int(rows[:, 0].max()))]
    for frame, _id, x, y, w, h in rows[:, :6]:
        frames[int(frame) - 1].append([x, y, x + w, y + h, 1.0])
    return frames


def detector_boxes(imgsz: int, confidence: float, nms_iou: float) -> list[np.ndarray]:
    import cv2

    from streams.detector import Detector

    cap = cv2.VideoCapture(str(TUD / "video.mp4"))
    images = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    detector = Detector("", "cpu", nms_iou=nms_iou)
    boxes: list[np.ndarray] = []
    for i in range(0, len(images), 8):
        batch, _ = detector.detect("", images[i : i + 8], imgsz, confidence)
        boxes += batch
    return boxes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640, 800])
    parser.add_argument("--nms-iou", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.3, 0.5])
    args = parser.parse_args()
    if not (TUD / "expected_crossings.json").is_file():
        print(json.dumps({"error": f"footage not found at {TUD}"}))
        return 1
    expected = json.loads((TUD / "expected_crossings.json").read_text())
    reference = CameraParams(counting=CountingParams(count_touching=False))
    gt = count(ground_truth_boxes(), reference)
    out = {
        "benchmark": "tud_accuracy",
        "required": REQUIRED,
        "expected": expected,
        "baseline_ground_truth_boxes": {"counts": gt, "accuracy": round(accuracy(gt, expected), 3)},
        "detector": [],
    }
    for imgsz in args.imgsz:
        for iou in args.nms_iou:
            for conf in args.confidence:
                got = count(detector_boxes(imgsz, conf, iou))
                out["detector"].append(
                    {
                        "imgsz": imgsz,
                        "nms_iou": iou,
                        "confidence": conf,
                        "counts": got,
                        "accuracy": round(accuracy(got, expected), 3),
                    }
                )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
