"""Real footage end to end: the offline detector + tracker + line counter on TUD-Campus.

The video ``../shared/assets/tud-campus/video.mp4`` (71 frames, 25 fps, 640x480) goes through
``streams.detector.Detector`` at a camera's default detection settings
(``models.records.DetectionSettings``: imgsz 640, confidence 0.3), then through
``core.camera.process_frame`` with the default tracker and counting parameters and the lines
x200, x320, x440 of ``shared/assets/README.md``. Counting accuracy is
``1 - sum |counted - expected| / sum expected`` over lines and directions against
``expected_crossings.json`` (13 crossings). Issue 4 asks for at least 0.9.

Where it stands (measured with this test; the detections do not depend on the machine):
0.46 at confidence 0.1-0.3, 0.69 at 0.4-0.5; no setting of the tracker's thresholds gives 0.9 on
more than an isolated point (a change of 0.05 in one threshold moves the figure by up to 0.5), so
the assertion is an expected failure rather than a tuned pass. Per missed or extra crossing, at
confidence 0.3:

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
people in a crowd; an IoU tracker cannot tell these cases from real motion. The test prints the
counts and the figure (``-s``).
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.camera import CameraState, Frame, process_frame
from core.counting import Scene
from models.records import DetectionSettings

pytestmark = [pytest.mark.footage, pytest.mark.detector, pytest.mark.slow]

TUD = Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "tud-campus"
FPS = 25.0
LINES = (200, 320, 440)
REQUIRED = 0.9
MEASURED = 0.46  # at the default detection settings; see the module docstring


@pytest.fixture(scope="module")
def detections() -> list[np.ndarray]:
    """Per frame, the offline detector's person boxes at a camera's default settings."""
    video = TUD / "video.mp4"
    if not video.is_file() or not (TUD / "expected_crossings.json").is_file():
        pytest.skip(f"footage assets not found at {TUD} (they live in ../shared/assets beside the checkout)")
    if importlib.util.find_spec("ultralytics") is None or importlib.util.find_spec("cv2") is None:
        pytest.skip("ultralytics/OpenCV not installed (the grabber extra: pip install -e '.[grabber]')")
    import cv2

    from streams.detector import Detector, ModelError

    cap = cv2.VideoCapture(str(video))
    images = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    assert len(images) == 71

    settings = DetectionSettings()
    detector = Detector("", "cpu")
    try:
        detector.model("")
    except ModelError as exc:
        pytest.skip(f"no detector model available offline: {exc}")
    boxes: list[np.ndarray] = []
    for i in range(0, len(images), 8):
        batch, _ = detector.detect("", images[i : i + 8], settings.imgsz, settings.confidence)
        boxes += batch
    return boxes


def count(detections: list[np.ndarray]) -> dict[str, dict[str, int]]:
    """Feed the detections through the core; counts per line as the reference names them."""
    scene = Scene.from_config(lines=[(f"x{x}", (x, 0), (x, 480)) for x in LINES])  # arrows point down
    state = CameraState()
    crossings = []
    for seq, boxes in enumerate(detections, start=1):
        state, c, _, _ = process_frame(state, Frame("tud-campus", seq, seq / FPS, boxes), scene)
        crossings += c
    for c in crossings:
        print(f"  {c.line_id} {c.direction:>3} track {c.track_id:>2} frame {c.frame_seq}")
    n = Counter((c.line_id, c.direction) for c in crossings)
    # a downward arrow's right-hand side is the left of the frame: right_to_left is "in"
    return {f"x{x}": {"left_to_right": n[(f"x{x}", "out")], "right_to_left": n[(f"x{x}", "in")]} for x in LINES}


def accuracy(got: dict[str, dict[str, int]], expected: dict[str, dict[str, int]]) -> float:
    error = sum(abs(got[line][d] - expected[line][d]) for line in expected for d in expected[line])
    return 1.0 - error / sum(v for line in expected.values() for v in line.values())


def test_accuracy_definition():
    expected = {"a": {"left_to_right": 3, "right_to_left": 1}}
    assert accuracy({"a": {"left_to_right": 2, "right_to_left": 2}}, expected) == 0.5
    assert accuracy(expected, expected) == 1.0


@pytest.mark.xfail(
    reason=f"measured {MEASURED}: IoU tracking cannot undo this detector's merged/partial boxes in a crowd; "
    "see the module docstring for each missed and extra crossing",
    strict=False,
)
def test_counting_accuracy_on_real_footage(detections):
    expected = json.loads((TUD / "expected_crossings.json").read_text())
    got = count(detections)
    acc = accuracy(got, expected)
    print(
        f"\nTUD-Campus, offline detector at {DetectionSettings().imgsz} px, confidence {DetectionSettings().confidence}"
    )
    for line in expected:
        print(f"  {line}: counted {got[line]}, expected {expected[line]}")
    print(f"  counting accuracy {acc:.3f} (required {REQUIRED})")
    assert acc >= REQUIRED, f"counting accuracy {acc:.3f} < {REQUIRED}: counted {got}, expected {expected}"
