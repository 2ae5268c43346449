"""The counting agents through the real broker: a worker subprocess (``faust -A agents.app worker``)
on a scratch topic prefix; hand-made detections in, crossings / window counts / dead letters out;
config changes without restart; live views from the owner and from a second worker."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from agents_helpers import (
    Scratch,
    Worker,
    drain,
    final_window_counts,
    line_config,
    produce,
    values,
    walkers,
)

from models.base import parse
from models.records import CameraConfig, CountingLine

pytestmark = pytest.mark.integration

T0 = 1_700_000_040.0  # a minute boundary
ID = re.compile(r"^(?P<cam>.+):(?P<line>[^:]+):(?P<track>\d+):(?P<dir>in|out):(?P<seq>\d+)$")


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    scratch = Scratch(stack.bootstrap)
    worker = Worker(scratch, tmp_path_factory.mktemp("agents"))
    try:
        worker.start().wait_ready()
        yield scratch, worker
    finally:
        worker.stop()
        print(worker.tail(30))
        scratch.close()


def cam(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def publish_config(scratch: Scratch, worker: Worker, config: CameraConfig, expect_line: str) -> None:
    produce(scratch.bootstrap, scratch.topic("camera-config"), [(config.camera_id, config.to_json())])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, body = worker.get("/footfall/configs/")
        if expect_line in body["configs"].get(config.camera_id, {}).get("lines", []):
            return
        time.sleep(0.2)
    raise AssertionError(f"config of {config.camera_id} not applied:\n{worker.tail()}")


def of_camera(rows, camera_id):
    return [r for r in rows if r["camera_id"] == camera_id]


def wait_processed(worker: Worker, camera_id: str, last_seq: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = worker.get(f"/footfall/cameras/{camera_id}/")
        if status == 200 and body["last_frame_seq"] >= last_seq:
            time.sleep(1.5)  # a flush (0.5 s) queues the window counts
            return
        time.sleep(0.2)
    raise AssertionError(f"{camera_id} not processed up to {last_seq}:\n{worker.tail()}")


def test_two_cameras_crossings_and_window_counts(env):
    scratch, worker = env
    a, b = cam("a"), cam("b")
    publish_config(scratch, worker, line_config(a), "door")
    publish_config(scratch, worker, line_config(b), "door")
    frames_a = list(walkers(a, [(100, 100, 0), (560, -100, 1)], T0, duration_s=8))
    # b: three people left to right crossing at ~2.2 s, ~32.2 s (window T0) and ~60.2 s (next window);
    # 95 s of frames so that the watermark (newest - 30 s grace) closes window T0.
    frames_b = list(walkers(b, [(100, 100, 0), (100, 100, 30), (100, 100, 58)], T0, duration_s=95))
    produce(scratch.bootstrap, scratch.topic("detections"), [(f.camera_id, f.to_json()) for f in frames_a + frames_b])
    wait_processed(worker, a, frames_a[-1].frame_seq)
    wait_processed(worker, b, frames_b[-1].frame_seq)

    msgs = drain(scratch.bootstrap, scratch.topic("crossings"), idle_s=1.5)
    rows = values(msgs)
    got = {c: sorted((r["line_id"], r["direction"]) for r in of_camera(rows, c)) for c in (a, b)}
    assert got == {a: [("door", "in"), ("door", "out")], b: [("door", "out")] * 3}
    ids = [r["event_id"] for r in rows if r["camera_id"] in (a, b)]
    assert len(ids) == len(set(ids)) == 5
    by_seq = {(f.camera_id, f.frame_seq): f.captured_at for f in frames_a + frames_b}
    for r in of_camera(rows, a) + of_camera(rows, b):
        m = ID.match(r["event_id"])
        assert m and m["cam"] == r["camera_id"] and m["dir"] == r["direction"] and int(m["seq"]) == r["frame_seq"]
        assert r["occurred_at"] == by_seq[(r["camera_id"], r["frame_seq"])]  # event time = capture time
        assert r["processed_at"] >= r["occurred_at"]
    # outputs are co-partitioned with the camera's detections
    det_parts = {
        m.key().decode(): m.partition() for m in drain(scratch.bootstrap, scratch.topic("detections"), idle_s=1)
    }
    assert all(m.partition() == det_parts[m.key().decode()] for m in msgs if m.key().decode() in (a, b))

    counts = values(drain(scratch.bootstrap, scratch.topic("window-counts"), idle_s=1.5))
    final = {k: v for k, v in final_window_counts(counts).items() if k[0] in (a, b)}
    assert final == {
        (a, "door", "in", T0): 1,
        (a, "door", "out", T0): 1,
        (b, "door", "out", T0): 2,
        (b, "door", "out", T0 + 60): 1,
    }
    closed = [r for r in of_camera(counts, b) if r["window_start"] == T0 and r["final"]]
    assert closed and closed[-1]["count"] == 2 and closed[-1]["window_end"] == T0 + 60


def test_malformed_messages_are_dead_lettered_and_the_stream_goes_on(env):
    scratch, worker = env
    d = cam("d")
    publish_config(scratch, worker, line_config(d), "door")
    frames = list(walkers(d, [(100, 100, 0)], T0, duration_s=5))  # crosses at ~2.2 s, after the bad ones
    bad_box = json.loads(frames[11].to_json())
    bad_box["frame_seq"] = frames[10].frame_seq * 1000  # would be a valid seq, but the box is not
    bad_box["boxes"] = [[10, 10, 50, 90, 2.0]]
    items = [(d, f.to_json()) for f in frames[:10]]
    items += [(d, b"{not json"), (d, json.dumps(bad_box).encode())]
    items += [(d, f.to_json()) for f in frames[10:]]
    produce(scratch.bootstrap, scratch.topic("detections"), items)
    wait_processed(worker, d, frames[-1].frame_seq)

    dead = [r for r in values(drain(scratch.bootstrap, scratch.topic("dead-letter"), idle_s=1)) if r["key"] == d]
    assert [r["value"] for r in dead] == ["{not json", json.dumps(bad_box)]
    assert "not valid JSON" in dead[0]["error"]
    assert dead[1]["error"].startswith("FrameDetections.boxes[0]: confidence must be within 0..1")
    assert all(r["source_topic"] == scratch.topic("detections") for r in dead)
    assert dead[1]["offset"] == dead[0]["offset"] + 1
    crossings = of_camera(values(drain(scratch.bootstrap, scratch.topic("crossings"), idle_s=1)), d)
    assert [(r["line_id"], r["direction"]) for r in crossings] == [("door", "out")]
    assert "dead letter" in worker.log_path.read_text()


def test_config_change_takes_effect_without_restart(env):
    scratch, worker = env
    e = cam("e")
    publish_config(scratch, worker, line_config(e), "door")
    # person 1 crosses x=320 at ~2.2 s; person 2 starts at 6 s, passes x=320 at ~8.2 s, x=480 at ~9.8 s
    frames = list(walkers(e, [(100, 100, 0), (100, 100, 6)], T0, duration_s=12))
    produce(scratch.bootstrap, scratch.topic("detections"), [(e, f.to_json()) for f in frames[:50]])
    wait_processed(worker, e, frames[49].frame_seq)
    new = CameraConfig(camera_id=e, lines=[CountingLine(line_id="exit", start=[480, 0], end=[480, 360])])
    publish_config(scratch, worker, new, "exit")
    produce(scratch.bootstrap, scratch.topic("detections"), [(e, f.to_json()) for f in frames[50:]])
    wait_processed(worker, e, frames[-1].frame_seq)
    crossings = of_camera(values(drain(scratch.bootstrap, scratch.topic("crossings"), idle_s=1)), e)
    assert [(r["line_id"], r["direction"]) for r in crossings] == [("door", "out"), ("exit", "out")]
    assert crossings[1]["occurred_at"] >= T0 + 9.5
    _, summary = worker.get(f"/footfall/cameras/{e}/")
    assert summary["lines"] == ["exit"] and summary["configured"] is True


def test_changed_tracking_params_restart_the_tracks_without_restart(env):
    scratch, worker = env
    t = cam("t")
    publish_config(scratch, worker, line_config(t), "door")
    # one person crossing x=320 at ~2.2 s; the camera's tracking params change at 1.5 s
    frames = list(walkers(t, [(100, 100, 0)], T0, duration_s=5))
    produce(scratch.bootstrap, scratch.topic("detections"), [(t, f.to_json()) for f in frames[:15]])
    wait_processed(worker, t, frames[14].frame_seq)
    changed = parse(
        CameraConfig, {**json.loads(line_config(t).to_json()), "tracking": {"min_hits": 3}, "updated_at": T0}
    )
    produce(scratch.bootstrap, scratch.topic("camera-config"), [(t, changed.to_json())])
    deadline = time.monotonic() + 30
    while worker.get("/footfall/configs/")[1]["configs"].get(t, {}).get("updated_at") != T0:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.2)
    produce(scratch.bootstrap, scratch.topic("detections"), [(t, f.to_json()) for f in frames[15:]])
    wait_processed(worker, t, frames[-1].frame_seq)
    crossings = of_camera(values(drain(scratch.bootstrap, scratch.topic("crossings"), idle_s=1)), t)
    # counted once, by the track started after the change: the old track (id 1) was dropped, ids go on
    assert [(r["line_id"], r["direction"], r["track_id"]) for r in crossings] == [("door", "out", 2)]
    assert f"camera {t}: tracking parameters changed" in worker.tail(100_000)


def test_live_views_answer_from_the_owner_and_from_another_worker(env, tmp_path, stack):
    scratch, worker = env
    f = cam("f")
    publish_config(scratch, worker, line_config(f, zone=True, capacity=4), "door")
    frames = list(walkers(f, [(100, 100, 0), (560, -40, 1), (200, 0.0, 0)], T0, duration_s=8))  # one stays left
    produce(scratch.bootstrap, scratch.topic("detections"), [(f_.camera_id, f_.to_json()) for f_ in frames])
    wait_processed(worker, f, frames[-1].frame_seq)

    status, counts = worker.get(f"/footfall/cameras/{f}/counts/")
    assert status == 200
    assert counts["window"] == {"start": T0, "end": T0 + 60, "final": False, "counts": {"door": {"in": 1, "out": 1}}}
    assert counts["rolling"]["end"] == T0 + 60 and counts["rolling"]["start"] == T0 + 60 - 900
    assert counts["rolling"]["counts"] == {"door": {"in": 1, "out": 1}}
    assert counts["served_by"] == worker.url
    status, occ = worker.get(f"/footfall/cameras/{f}/occupancy/")
    assert status == 200
    (zone,) = occ["zones"]
    assert zone["zone_id"] == "left" and zone["count"] == 2 and zone["capacity_pct"] == 50.0  # standing + in-walker
    assert zone["trend"] in ("increasing", "decreasing", "stable")
    _, owned = worker.get("/footfall/cameras/")
    mine = [c for c in owned["cameras"] if c["camera_id"] == f]
    assert mine and mine[0]["last_frame_time"] == frames[-1].captured_at and mine[0]["lag_s"] > 0

    # a second worker joins: partitions are split; both answer for f (one locally, one routed)
    second = Worker(scratch, tmp_path, name="w2")
    try:
        second.start().wait_ready()
        deadline = time.monotonic() + 60
        answers: list = []
        expected = {k: v for k, v in counts.items() if k != "served_by"}

        def same(answer):
            status, body = answer
            return status == 200 and {k: v for k, v in body.items() if k != "served_by"} == expected

        while time.monotonic() < deadline:
            answers = [w.get(f"/footfall/cameras/{f}/counts/") for w in (worker, second)]
            if all(same(a) for a in answers) and answers[0][1]["served_by"] == answers[1][1]["served_by"]:
                break
            time.sleep(0.5)
        assert all(same(a) for a in answers), (answers, second.tail())
        # one owner answered both: the other worker routed the request to it
        assert answers[0][1]["served_by"] == answers[1][1]["served_by"] in (worker.url, second.url)
        _, owned2 = second.get("/footfall/cameras/")
        assert owned2["worker"] == second.url
        assert_views_hold_only_the_callers_tenant(stack, [worker, second], f)
    finally:
        second.stop()


def assert_views_hold_only_the_callers_tenant(stack, workers: list[Worker], camera_id: str) -> None:
    """The camera is the default tenant's: a key of another tenant never sees it, through the
    owner or routed through the other worker; no key at all is refused."""
    import psycopg
    from api_helpers import make_key

    other = f"test-tv-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as pg:
        own_key, other_key = make_key(pg, "default", "viewer"), make_key(pg, other, "viewer")
        try:
            for w in workers:
                assert w.get(f"/footfall/cameras/{camera_id}/counts/", key=own_key)[0] == 200
                assert w.get(f"/footfall/cameras/{camera_id}/counts/", key=other_key)[0] == 404
                assert w.get(f"/footfall/cameras/{camera_id}/occupancy/", key=other_key)[0] == 404
                for path in ("/footfall/cameras/", "/footfall/configs/"):
                    status, body = w.get(path, key=other_key)
                    assert status == 200 and camera_id not in json.dumps(body)
                assert w.get("/footfall/cameras/", key="")[0] == 401
        finally:
            pg.execute("DELETE FROM api_keys WHERE tenant_id IN (%s, 'default') AND name = 'test'", (other,))
            pg.execute("DELETE FROM tenants WHERE tenant_id = %s", (other,))
