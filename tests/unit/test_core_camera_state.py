"""core.camera: the whole step is pure and deterministic; its state is compact, survives a
to_bytes/from_bytes round trip and resumes identically; replayed frames are skipped."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera import CameraState, Frame, already_processed, process_frame
from core.counting import Scene

SCENE = Scene.from_config(
    lines=[("door", (320, 480), (320, 0)), ("hall", (0, 300), (640, 300), "in_only")],
    zones=[("queue", [(40, 200), (280, 200), (280, 460), (40, 460)]), ("desk", [(400, 100), (600, 100), (500, 400)])],
)


def frames(n_frames: int = 160, seed: int = 11) -> list[Frame]:
    """Six people wandering, with detector noise, a missed detection now and then and one
    low-confidence box per frame."""
    rng = np.random.default_rng(seed)
    pos = np.column_stack([rng.uniform(60, 580, 6), rng.uniform(180, 420, 6)])
    vel = rng.uniform(-5, 5, (6, 2))
    out = []
    for seq in range(n_frames):
        pos += vel
        vel[(pos < [20, 120]) | (pos > [620, 470])] *= -1
        boxes = []
        for k, (x, y) in enumerate(pos):
            if rng.random() < 0.05:
                continue  # missed
            conf = 0.3 if k == seq % 6 else 0.9
            b = [x - 25, y - 140, x + 25, y] + rng.normal(0, 1.0, 4)
            boxes.append([*b.tolist(), conf])
        out.append(Frame("cam-7", seq, 1.7e9 + seq / 25, boxes))
    return out


def run(fs, state=None):
    state = state or CameraState()
    outputs = []
    for f in fs:
        state, c, z, o = process_frame(state, f, SCENE)
        outputs.append((c, z, o))
    return state, outputs


def test_the_sequence_produces_events():
    state, outputs = run(frames())
    assert sum(len(c) for c, _, _ in outputs) >= 3
    assert sum(len(z) for _, z, _ in outputs) >= 3


def test_same_input_same_output():
    s1, o1 = run(frames())
    s2, o2 = run(frames())
    assert s1 == s2 and s1.to_bytes() == s2.to_bytes() and o1 == o2


@pytest.mark.parametrize("split", [1, 40, 77, 133])
def test_split_with_a_round_trip_resumes_identically(split):
    fs = frames()
    straight, out_straight = run(fs)
    half, out_a = run(fs[:split])
    blob = half.to_bytes()
    restored = CameraState.from_bytes(blob)
    assert restored == half and restored.to_bytes() == blob
    resumed, out_b = run(fs[split:], restored)
    assert out_a + out_b == out_straight
    assert resumed.to_bytes() == straight.to_bytes()


def test_replayed_frames_are_skipped():
    fs = frames(60)
    state, _ = run(fs)
    assert state.last_frame_seq == 59 and state.last_frame_time == fs[-1].captured_at
    for f in fs[50:]:  # a replay after a crash re-delivers frames already folded in
        assert already_processed(state, f)
        result = process_frame(state, f, SCENE)
        assert result.state is state and result.crossings == [] and result.zone_events == []


def test_input_state_is_not_modified():
    fs = frames(60)
    state, _ = run(fs[:30])
    before = state.to_bytes()
    run(fs[30:], state)
    assert state.to_bytes() == before


def test_state_size():
    empty = CameraState().to_bytes()
    assert len(empty) == 26
    state, _ = run(frames(40))
    n = len(state.tracker)
    ids = sum(1 + len(i) for i in SCENE.line_ids + SCENE.zone_ids)
    assert len(state.to_bytes()) == 26 + ids + 88 * n + 2 * 2 * n + 9 * 2 * n


def test_bad_bytes_are_rejected():
    blob = run(frames(20))[0].to_bytes()
    with pytest.raises(ValueError, match="expected"):
        CameraState.from_bytes(blob + b"x")
    with pytest.raises(ValueError, match="version"):
        CameraState.from_bytes(b"\x07" + blob[1:])


def test_to_dict_is_json_friendly():
    import json

    state, _ = run(frames(30))
    d = json.loads(json.dumps(state.to_dict()))
    assert d["last_frame_seq"] == 29 and d["lines"]["line_ids"] == ["door", "hall"]


def test_accepts_the_wire_record_directly():
    from models.records import FrameDetections

    state = CameraState()
    for seq in range(8):
        x = 280.0 + 10 * seq
        record = FrameDetections(
            camera_id="cam-9",
            frame_seq=seq,
            captured_at=1.7e9 + seq / 10,
            frame_width=640,
            frame_height=480,
            boxes=[[x - 20, 200.0, x + 20, 330.0, 0.8]],
            model_name="yolov8s",
            model_version="8.3",
            inference_ms=50.0,
            published_at=1.7e9 + seq / 10 + 0.05,
        )
        state, crossings, _, _ = process_frame(state, record, SCENE)
        if crossings:
            assert [(c.camera_id, c.line_id, c.direction) for c in crossings] == [("cam-9", "door", "in")]
            break
    else:
        pytest.fail("the walker was not counted")
