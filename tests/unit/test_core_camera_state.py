"""core.camera: the whole step is pure and deterministic; its state is compact, survives a
to_bytes/from_bytes round trip and resumes identically; replayed frames are skipped; a change of
params restarts the tracks once (ids go on, zone stays are closed), also in a replay."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera import DEFAULT_CAMERA, CameraParams, CameraState, Frame, already_processed, process_frame
from core.counting import CountingParams, Scene
from core.tracking import TrackerParams, step

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
    assert len(empty) == 34
    state, _ = run(frames(40))
    n = len(state.tracker)
    ids = sum(1 + len(i) for i in SCENE.line_ids + SCENE.zone_ids)
    assert len(state.to_bytes()) == 34 + ids + 88 * n + 2 * 2 * n + 9 * 2 * n


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


# --------------------------------------------------------------------------- per-camera params

OTHER = CameraParams(tracker=TrackerParams(min_hits=3), counting=CountingParams(hysteresis_px=4.0))


def test_params_digest_identifies_the_values():
    assert DEFAULT_CAMERA.digest == CameraParams().digest != 0
    assert CameraParams(counting=CountingParams(hysteresis_px=3)).digest == DEFAULT_CAMERA.digest  # 3 == 3.0
    assert OTHER.digest != DEFAULT_CAMERA.digest
    assert CameraParams(tracker=TrackerParams(min_hits=3)).digest not in (DEFAULT_CAMERA.digest, OTHER.digest)


def test_the_state_records_its_params_and_keeps_them_through_bytes():
    fs = frames(30)
    state, _ = run(fs)
    assert CameraState().params_digest == 0 and state.params_digest == DEFAULT_CAMERA.digest
    back = CameraState.from_bytes(state.to_bytes())
    assert back == state and back.params_digest == state.params_digest
    state2 = process_frame(state, frames(31)[30], SCENE, OTHER).state
    assert CameraState.from_bytes(state2.to_bytes()).params_digest == OTHER.digest


def test_changed_params_drop_the_tracks_keep_ids_and_close_zone_stays():
    fs = frames(160)
    state, _ = run(fs[:100])
    inside = [
        (t.track_id, zone_id)
        for i, t in enumerate(state.tracker.view())
        for j, zone_id in enumerate(SCENE.zone_ids)
        if state.zones.inside[i, j] == 1
    ]
    assert len(state.tracker) and inside, "the scenario needs tracks inside zones"
    next_id = state.tracker.next_id

    result = process_frame(state, fs[100], SCENE, OTHER)
    new = result.state
    assert new.params_digest == OTHER.digest and new.last_frame_seq == 100
    assert all(t.track_id >= next_id for t in new.tracker.view())  # ids never repeat
    exits = [(z.track_id, z.zone_id) for z in result.zone_events if z.kind == "exit"]
    assert sorted(exits) == sorted(inside)
    for z in result.zone_events:
        if z.kind == "exit":
            assert z.dwell_s is not None and z.dwell_s >= 0 and z.occurred_at == fs[100].captured_at
    assert new.lines.side.shape == (len(new.tracker), len(SCENE.line_ids))  # aligned with the new tracks
    assert all(o.count == 0 for o in result.occupancy)  # new tracks are tentative: in no zone yet

    # the same params again: no second reset, the tracker just steps on
    later = process_frame(new, fs[101], SCENE, OTHER).state
    assert later.tracker == step(new.tracker, fs[101].boxes, fs[101].captured_at, OTHER.tracker)[0]


def test_a_params_change_replays_identically_after_a_round_trip():
    fs = frames(120)

    def go(state, part, params_at):
        out = []
        for f in part:
            r = process_frame(state, f, SCENE, OTHER if f.frame_seq >= params_at else DEFAULT_CAMERA)
            state = r.state
            out.append(r[1:])
        return state, out

    whole, o_whole = go(CameraState(), fs, 60)
    half, o1 = go(CameraState(), fs[:70], 60)
    resumed, o2 = go(CameraState.from_bytes(half.to_bytes()), fs[70:], 60)
    assert resumed == whole and o1 + o2 == o_whole


def test_a_version_1_state_is_read_and_reset_on_its_next_frame():
    fs = frames(60)
    state, _ = run(fs[:50])
    v2 = state.to_bytes()
    v1 = b"\x01" + v2[1:11] + v2[19:]  # the old header: no digest
    old = CameraState.from_bytes(v1)
    assert old.params_digest == 0 and old.tracker == state.tracker and old.last_frame_seq == 49
    new = process_frame(old, fs[50], SCENE).state
    assert new.params_digest == DEFAULT_CAMERA.digest and new.tracker.next_id >= state.tracker.next_id
    assert not {t.track_id for t in new.tracker.view()} & {t.track_id for t in state.tracker.view()}
