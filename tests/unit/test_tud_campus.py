"""Real footage: MOTChallenge TUD-Campus ground truth through tracker + counting.

The ground-truth boxes of every frame are fed as detections (confidence 1.0, 25 fps) through
``core.camera.process_frame`` with the counting lines x200, x320 and x440 of
``shared/assets/README.md`` (vertical, full height). The reference
``expected_crossings.json`` counts every *proper* intersection of the segment between two
consecutive ground-truth anchors with a line.

Parameters, and why the result is exact:

* The lines are drawn from (x, 0) down to (x, 480). By the ``CountingLine`` rule (in = moving
  onto the right-hand side of the arrow as seen on screen) a downward arrow's right-hand side is
  the left of the frame, so ``right_to_left`` is ``in`` and ``left_to_right`` is ``out``. The same
  lines drawn upwards swap the two; both are checked.
* The tracker runs with its defaults and reproduces the ground-truth identities one to one
  (checked below), so each track's anchors are exactly the ground-truth anchors (a track's box is
  the detection it matched).
* Hysteresis runs with its defaults (band max(3 px, 2 % of box height)). The tightest cases in
  this sequence are track 8, which crosses x440 on the very last frame and ends 5.0 px beyond it
  (band 3.3 px), and track 2, first seen 8.0 px right of x320 (band 3.6 px); every other crossing
  goes well beyond. A band wider than 5 px would (correctly, by its rule) leave track 8 unconfirmed
  because the clip ends.
* The reference counts proper intersections only. Track 3's anchor lands exactly on x440 at
  frame 40 (430.5 -> 440.0 -> 448.0) and so is not in the reference. The reference's own rule is
  ``CountingParams(count_touching=False)``, which reproduces it exactly; with the default
  (``count_touching=True``: an anchor on the line is on its ``out`` side) that passage counts
  once, and the only difference is x440 left_to_right 4 instead of 3.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.camera import CameraParams, CameraState, Frame, process_frame
from core.counting import CountingParams, Scene

pytestmark = pytest.mark.footage

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
TUD = ASSETS / "tud-campus"
FPS = 25.0
LINES = (200, 320, 440)
REFERENCE = CameraParams(counting=CountingParams(count_touching=False))


@pytest.fixture(scope="module")
def ground_truth() -> tuple[dict[int, list[list[float]]], dict[int, dict[tuple[float, ...], int]], dict]:
    """Boxes per frame, the ground-truth id of each box (as the tracker stores it, float32), and
    the reference counts."""
    if not (TUD / "gt.txt").is_file() or not (TUD / "expected_crossings.json").is_file():
        pytest.skip(f"footage assets not found at {TUD} (they live in ../shared/assets beside the checkout)")
    rows = np.loadtxt(TUD / "gt.txt", delimiter=",", ndmin=2)
    frames: dict[int, list[list[float]]] = defaultdict(list)
    identity: dict[int, dict[tuple[float, ...], int]] = defaultdict(dict)
    for frame, gt_id, x, y, w, h in rows[:, :6]:
        box = [x, y, x + w, y + h]
        frames[int(frame)].append([*box, 1.0])
        identity[int(frame)][tuple(np.float32(box).tolist())] = int(gt_id)
    expected = json.loads((TUD / "expected_crossings.json").read_text())
    return frames, identity, expected


def count(ground_truth, params: CameraParams, downward: bool = True):
    """Run the sequence; return the crossings and, per track, the ground-truth ids it matched."""
    frames, identity, _ = ground_truth
    ends = [((x, 0), (x, 480)) if downward else ((x, 480), (x, 0)) for x in LINES]
    scene = Scene.from_config(lines=[(f"x{x}", a, b) for x, (a, b) in zip(LINES, ends, strict=True)])
    state = CameraState()
    crossings = []
    track_to_gt: dict[int, set[int]] = defaultdict(set)
    for seq in range(1, max(frames) + 1):
        state, c, _, _ = process_frame(state, Frame("tud-campus", seq, seq / FPS, frames.get(seq, [])), scene, params)
        crossings += c
        for t in state.tracker.view():
            if t.time_since_update == 0:
                track_to_gt[t.track_id].add(identity[seq][t.box])
    return crossings, track_to_gt


def as_reference(crossings, downward: bool = True) -> dict[str, dict[str, int]]:
    counts = Counter((c.line_id, c.direction) for c in crossings)
    l2r, r2l = ("out", "in") if downward else ("in", "out")
    return {f"x{x}": {"left_to_right": counts[(f"x{x}", l2r)], "right_to_left": counts[(f"x{x}", r2l)]} for x in LINES}


@pytest.mark.parametrize("downward", [True, False], ids=["arrows-down", "arrows-up"])
def test_reference_crossings_exactly(ground_truth, downward):
    expected = ground_truth[2]
    crossings, _ = count(ground_truth, REFERENCE, downward)
    assert as_reference(crossings, downward) == expected
    assert sum(sum(v.values()) for v in expected.values()) == len(crossings) == 13


def test_tracker_reproduces_ground_truth_identities(ground_truth):
    crossings, track_to_gt = count(ground_truth, REFERENCE)
    assert all(len(gt) == 1 for gt in track_to_gt.values())  # no track ever switches person
    gt_of = {track: next(iter(gt)) for track, gt in track_to_gt.items()}
    assert sorted(gt_of.values()) == sorted(set(gt_of.values())) == list(range(1, 9))  # one track per person
    # each crossing belongs to the person the reference counts it for
    assert sorted((c.line_id, gt_of[c.track_id]) for c in crossings) == sorted(
        [("x200", 2), ("x200", 3), ("x200", 5), ("x200", 6), ("x200", 7)]
        + [("x320", 2), ("x320", 3), ("x320", 4), ("x320", 5), ("x320", 7)]
        + [("x440", 4), ("x440", 5), ("x440", 8)]
    )


def test_default_parameters_also_count_the_passage_via_the_line(ground_truth):
    expected = ground_truth[2]
    crossings, track_to_gt = count(ground_truth, CameraParams())
    got = as_reference(crossings)
    assert got["x200"] == expected["x200"] and got["x320"] == expected["x320"]
    assert got["x440"] == {"left_to_right": expected["x440"]["left_to_right"] + 1, "right_to_left": 0}
    extra = [c for c in crossings if c.line_id == "x440" and track_to_gt[c.track_id] == {3}]
    assert [(c.direction, c.frame_seq) for c in extra] == [("out", 41)]  # 440.0 at frame 40, 448.0 at 41


def test_without_hysteresis_the_result_is_the_same(ground_truth):
    expected = ground_truth[2]
    params = CameraParams(counting=CountingParams(hysteresis_px=0.0, hysteresis_frac=0.0, count_touching=False))
    crossings, _ = count(ground_truth, params)
    assert as_reference(crossings) == expected
