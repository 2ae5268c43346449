"""Store and forward through a real broker that is SIGKILLed and restarted (issue 14).

Every test here runs its own single-node Kafka (``private_kafka``: own ports and data, the shared
stack's jars) and kills that one; the shared stack's broker is never touched. The database is the
shared stack's (rows of this test's cameras only, deleted afterwards).

- ``test_broker_killed_for_120_s_loses_no_count``: a worker (sinks on) counts a real-time
  simulator while the broker is down for 120 s; the stored crossings and window counts equal those
  of an uninterrupted run of the same seed (the counting agent's own code over the same frames, in
  process), each crossing once, and the simulator reports zero failed frames.
- ``test_a_simulator_killed_during_the_outage_delivers_its_spool_after_restart``: the publisher
  is SIGKILLed 6 s into the broker's outage and another process with the same spool takes over
  before the broker is back: every frame the killed one published (but possibly those of its last
  second) arrives once, in order per camera.
- ``test_a_full_spool_drops_the_oldest_and_counts_them``: beyond the spool's byte bound the oldest
  frames go, counted; the newer ones still arrive in order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime

import pytest
from agents_helpers import Scratch, Worker, drain
from private_kafka import PrivateKafka

from agents import state as st
from core.camera import Scene
from core.settings import PROJECT_ROOT, get_settings
from core.windows import Windowing
from models.records import FrameDetections
from streams.publisher import KafkaPublisher
from streams.simulator import Simulation
from streams.spool import FIRST_SEGMENT, Spool, SpoolConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FPS = 10.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory, stack):
    """One private broker for the module; each test finds it up and may kill and restart it."""
    kafka = PrivateKafka(tmp_path_factory.mktemp("private-kafka")).start()
    yield kafka
    kafka.stop()


@pytest.fixture
def up(broker):
    if broker.pid is None:
        broker.start()
    return broker


def simulate(bootstrap: str, prefix: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "FOOTFALL_KAFKA__TOPIC_PREFIX": prefix}
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "simulate", "--bootstrap", bootstrap, "--realtime", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def frames_by_camera(messages) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in messages:
        d = json.loads(m.value())
        out.setdefault(d["camera_id"], []).append(d["frame_seq"])
    return out


def assert_in_order_once(by_cam: dict[str, list[int]]) -> None:
    for cam, seqs in by_cam.items():
        assert len(seqs) == len(set(seqs)), f"{cam}: {len(seqs) - len(set(seqs))} frames twice"
        assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False)), f"{cam}: frames out of order"


# --------------------------------------------------------------------------- 120 s outage, end to end


def reference(sim: Simulation, duration_s: float) -> tuple[dict[str, float], dict[tuple, tuple[int, bool]]]:
    """What an uninterrupted worker computes for these frames: the counting agent's own step over
    each camera's frames in order. Crossing ids with capture times; each window's last emission."""
    s = get_settings().worker
    windowing = Windowing(size_s=s.window_s, grace_s=s.grace_s, rolling_s=s.rolling_s)
    configs = {c.camera_id: c for c in sim.configs()}
    rts: dict[str, st.CameraRuntime] = {}
    scenes = {cid: (Scene.from_config(c.lines, c.zones), st.camera_params(c)) for cid, c in configs.items()}
    crossings: dict[str, float] = {}
    for frame in sim.frames(duration_s):
        rt = rts.setdefault(frame.camera_id, st.CameraRuntime(frame.camera_id, 0))
        scene, params = scenes[frame.camera_id]
        for topic, rec in st.step(rt, frame, scene, frame.captured_at, windowing=windowing, params=params):
            if topic == st.CROSSINGS:
                crossings[rec.event_id] = rec.occurred_at
    windows = {}
    for rt in rts.values():
        for _, w in st.window_outputs(rt, 0.0, windowing):
            windows[(w.camera_id, w.line_id, w.direction, w.window_start)] = (w.count, w.final)
    return crossings, windows


def stored(dsn: str, cams: str) -> tuple[list[tuple[str, float]], dict[tuple, tuple[int, bool]]]:
    import psycopg

    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        crossings = conn.execute(
            "SELECT event_id, extract(epoch FROM occurred_at)::float8 FROM crossing_events WHERE camera_id LIKE %s",
            (cams + "%",),
        ).fetchall()
        rows = conn.execute(
            "SELECT camera_id, line_id, direction, extract(epoch FROM bucket)::float8, count, final "
            "FROM line_counts_1m WHERE camera_id LIKE %s",
            (cams + "%",),
        ).fetchall()
    return crossings, {(c, ln, d, b): (n, f) for c, ln, d, b, n, f in rows}


def spool_stats_rows(dsn: str, cams: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        return conn.execute(
            "SELECT camera_id, spooled_messages, spool_oldest_age_s, spool_dropped FROM stream_stats "
            "WHERE camera_id LIKE %s ORDER BY at",
            (cams + "%",),
        ).fetchall()


def cleanup_db(dsn: str, cams: str) -> None:
    import contextlib

    import psycopg

    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        for table in (
            "crossing_events",
            "zone_events",
            "line_counts_1m",
            "occupancy_samples",
            "stream_stats",
            "cameras",
        ):
            with contextlib.suppress(psycopg.Error):
                conn.execute(f"DELETE FROM {table} WHERE camera_id LIKE %s", (cams + "%",))


def test_broker_killed_for_120_s_loses_no_count(up, stack, tmp_path):
    from sql.migrate import migrate

    migrate(stack.db_dsn, target=5)  # stream_stats' spool columns (a no-op where `make up` ran)
    cameras, seed, before_s, down_s, after_s = 6, 14, 20.0, 120.0, 25.0
    cams = f"out-{uuid.uuid4().hex[:6]}"
    scratch = Scratch(up.bootstrap)
    sink_env = {"FOOTFALL_WORKER__SINKS": "true", "FOOTFALL_WORKER__CAGG_REFRESH": "false"}
    worker = Worker(scratch, tmp_path, name="outage", env=sink_env)
    sim_proc = None
    try:
        worker.start().wait_ready()
        start = time.time() + 2.0
        # the broker's restart takes 10-20 s: frames go on meanwhile, so the run ends after_s after it
        duration = before_s + down_s + 20.0 + after_s
        truth = tmp_path / "truth.json"
        sim_proc = simulate(
            up.bootstrap,
            scratch.prefix,
            *("--cameras", str(cameras), "--fps", str(FPS), "--seed", str(seed), "--camera-prefix", cams),
            *("--start", str(start), "--duration", str(duration), "--truth", str(truth), "--stats-every", "5"),
            *("--spool-dir", str(tmp_path / "spool"), "--spool-memory-mb", "0.25"),  # most of it on disk
        )
        time.sleep(max(0.0, start + before_s - time.time()))
        up.kill()
        killed_at = time.time() - start
        time.sleep(down_s)
        up.start()
        back_at = time.time() - start
        out, err = sim_proc.communicate(timeout=duration + 120)
        assert sim_proc.returncode == 0, err[-3000:]
        assert "failed 0, dropped 0, spooled 0" in out, out
        doc = json.loads(truth.read_text())
        assert doc["publisher"]["failed"] == 0 and doc["publisher"]["dropped"] == 0
        assert "kafka unreachable" in err and "kafka reachable again" in err

        sim = Simulation(cameras=cameras, fps=FPS, seed=seed, start=start, camera_prefix=cams)
        ref_crossings, ref_windows = reference(sim, duration)
        assert doc["frames"] == sim.frames_generated  # the simulator published every frame of its run
        assert len(ref_crossings) > 30

        deadline = time.monotonic() + 180
        got_crossings, got_windows = [], {}
        while time.monotonic() < deadline:
            got_crossings, got_windows = stored(stack.db_dsn, cams)
            if len(got_crossings) >= len(ref_crossings) and got_windows == ref_windows:
                break
            time.sleep(2)
        ids = [e for e, _ in got_crossings]
        print(
            f"killed at {killed_at:.0f} s, back at {back_at:.0f} s; frames {doc['frames']}; "
            f"crossings {len(ids)} (reference {len(ref_crossings)}); windows {len(got_windows)}"
        )
        assert len(ids) == len(set(ids))  # each crossing once
        assert set(ids) == set(ref_crossings)
        assert all(abs(t - ref_crossings[e]) < 1e-3 for e, t in got_crossings)  # capture time kept
        assert got_windows == ref_windows

        # the stream-stats of the outage arrived late and say what waited in the spool
        rows = spool_stats_rows(stack.db_dsn, cams)
        assert max(r[1] for r in rows) > down_s * FPS * 0.8
        assert max(r[2] or 0 for r in rows) > down_s * 0.8 and all(r[3] == 0 for r in rows)
        # the broker has every frame once, in order per camera
        frames = drain(up.bootstrap, scratch.topic("detections"), idle_s=2.0)
        by_cam = frames_by_camera(frames)
        assert sum(len(v) for v in by_cam.values()) == doc["frames"]
        assert_in_order_once(by_cam)
    finally:
        if sim_proc is not None and sim_proc.poll() is None:
            sim_proc.kill()
        worker.stop()
        if up.pid is None:
            up.start()
        scratch.close()
        cleanup_db(stack.db_dsn, cams)


# --------------------------------------------------------------------------- restart during the outage


def test_a_simulator_killed_during_the_outage_delivers_its_spool_after_restart(up, tmp_path):
    """Simulator a runs, the broker is SIGKILLed, and 6 s into the outage a is SIGKILLed too (no
    close, no summary); simulator b starts on the same spool before the broker is back.

    What a published is derived from its deterministic frames (frame_seq is the capture time in us)
    and from the spool it left (copied before b starts). Proven: everything a spooled arrives; what
    arrives of a's is, per camera, a gap-free prefix of a's frames (nothing lost in the middle,
    nothing a did not produce), then b's frames; in order per camera; nothing twice. Only frames
    published in the last ~1 s before the kill may be missing (a realtime simulator may publish a
    little behind capture time (it starts its clock once connected), so the bound is checked on what a
    had spooled: its newest spooled frame was published less than 1 s before the kill; it prints the
    gap). A frame in flight
    at the instant the broker died could be stored without an ack and then be sent again (at least
    once: the counting worker skips it by frame_seq); the test allows that for the copies the
    outage took from librdkafka and says so."""
    scratch = Scratch(up.bootstrap)
    cams = f"rs-{uuid.uuid4().hex[:6]}"
    spool = tmp_path / "spool"
    common = ("--cameras", "4", "--fps", str(FPS), "--camera-prefix", cams, "--spool-dir", str(spool))
    common += ("--stats-every", "0")  # the default memory tier (4 MiB, 2 s): skipped during the outage
    start_a = time.time() + 1.0
    truth_b = tmp_path / "b.json"
    a = simulate(up.bootstrap, scratch.prefix, *common, "--seed", "1", "--start", str(start_a))
    b = None
    try:
        time.sleep(4.0)
        up.kill()
        time.sleep(6.0)
        os.kill(a.pid, signal.SIGKILL)  # killed while the broker is down: no close(), no summary
        killed_at = time.time()
        _, err_a = a.communicate(timeout=60)
        assert a.returncode == -signal.SIGKILL, err_a[-2000:]
        assert "kafka unreachable" in err_a

        copy = tmp_path / "spool-copy"  # what a left, read from a copy (b consumes the original)
        shutil.copytree(spool, copy)
        left = Spool(SpoolConfig(directory=copy))
        spooled: list[int] = []
        heads = {int(p.stem) for p in copy.glob("*.seg") if int(p.stem) < FIRST_SEGMENT}
        head_seqs: set[int] = set()
        while (item := left.take()) is not None:
            spooled.append(json.loads(item.value)["frame_seq"])
            if item.ack is not None and item.ack[0][0] in heads:
                head_seqs.add(spooled[-1])
            left.done(item)
        left.close()
        assert len(spooled) > 150 and len(spooled) == len(set(spooled))
        # a publishes each frame at its capture time relative to its first frame, from when it began
        # (after connecting): the log line says when; published-at = captured-at + that lag
        began = re.search(r"^(\S+ \S+) INFO streams\.simulate: simulating", err_a, re.M)
        assert began, err_a[-2000:]
        lag_s = max(0.0, datetime.strptime(began.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - start_a)
        gap_s = killed_at - (max(spooled) / 1e6 + lag_s)
        assert gap_s < 1.0, f"a's newest spooled frame was published {gap_s:.1f} s before the kill"

        start_b = max(time.time(), killed_at + 1.0)  # b's frames come after a's
        args_b = ("--seed", "2", "--start", str(start_b), "--truth", str(truth_b), "--no-configs")
        b = simulate(up.bootstrap, scratch.prefix, *common, *args_b, "--duration", "600")
        time.sleep(3.0)
        up.start()  # the broker is back while b runs: b delivers a's spool, then its own frames
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = len(drain(up.bootstrap, scratch.topic("detections"), idle_s=1.0, timeout_s=10))
            if n >= len(spooled) + 40:
                break
        b.send_signal(signal.SIGTERM)
        out_b, err_b = b.communicate(timeout=60)
        assert b.returncode == 0, err_b[-2000:]
        assert "left by an earlier run will be delivered first" in err_b
        doc_b = json.loads(truth_b.read_text())
        assert doc_b["publisher"]["spooled_at_exit"] == 0 and doc_b["publisher"]["failed"] == 0

        messages = drain(up.bootstrap, scratch.topic("detections"), idle_s=2.0)
        by_cam = frames_by_camera(messages)
        twice = {s for seqs in by_cam.values() for s, c in Counter(seqs).items() if c > 1}
        assert twice <= head_seqs, f"{len(twice - head_seqs)} frames twice"  # see the docstring
        assert_in_order_once({c: list(dict.fromkeys(seqs)) for c, seqs in by_cam.items()})
        got = {s for seqs in by_cam.values() for s in seqs}
        assert set(spooled) <= got  # everything a spooled arrived
        sim_a = Simulation(cameras=4, fps=FPS, seed=1, start=start_a, camera_prefix=cams)
        produced_a: dict[str, list[int]] = {}
        for f in sim_a.frames(None):
            if f.captured_at > killed_at:
                break
            produced_a.setdefault(f.camera_id, []).append(f.frame_seq)
        for cam, seqs in produced_a.items():  # a gap-free prefix of each camera's frames
            mine = [s for s in dict.fromkeys(by_cam.get(cam, [])) if s < start_b * 1e6]
            assert mine == seqs[: len(mine)], f"{cam}: a's frames arrived with a gap"
        sim_b = Simulation(cameras=4, fps=FPS, seed=2, start=start_b, camera_prefix=cams)
        want_b = [f.frame_seq for _, f in zip(range(doc_b["frames"]), sim_b.frames(None), strict=False)]
        assert sorted(s for s in got if s >= start_b * 1e6) == sorted(want_b)
        got_a = sum(1 for s in got if s < start_b * 1e6)
        print(
            f"a: {got_a} frames delivered ({len(spooled)} from its spool, {len(head_seqs)} of them copied from "
            f"librdkafka), newest published {gap_s:.2f} s before the kill; {len(twice)} twice; "
            f"b: {doc_b['frames']} frames"
        )
        assert not spool.exists()  # delivered: the spool directory is gone
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
        if up.pid is None:
            up.start()
        scratch.close()


# --------------------------------------------------------------------------- the bound


def detections(cam: str, i: int, t0: float) -> FrameDetections:
    return FrameDetections(
        camera_id=cam,
        frame_seq=i,
        captured_at=t0 + i / FPS,
        frame_width=640,
        frame_height=360,
        boxes=[[1.0, 2.0, 30.0, 40.0, 0.9]],
        model_name="m",
        model_version="v",
        inference_ms=5.0,
        published_at=t0 + i / FPS,
    )


def test_a_full_spool_drops_the_oldest_and_counts_them(up, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="streams.spool")
    scratch = Scratch(up.bootstrap)
    topic = scratch.topic("detections")
    size = len(detections("c", 0, 0.0).to_json())
    spool = SpoolConfig(directory=tmp_path / "spool", memory_bytes=0, max_bytes=400 * (size + 60), segment_bytes=8192)
    pub = KafkaPublisher(up.bootstrap, {FrameDetections: topic}, stall_s=1.0, spool=spool)
    t0 = time.time()
    cams = [f"full-{i}" for i in range(4)]
    frames = [detections(cams[i % 4], i, t0) for i in range(3200)]
    try:
        for f in frames[:200]:
            pub.publish(f)
        assert pub.flush(30) == 0
        up.kill()
        deadline = time.monotonic() + 30
        while not pub.failing() and time.monotonic() < deadline:
            pub.poll(0.1)
        for f in frames[200:]:
            pub.publish(f)
            pub.poll(0)
        dropped = pub.stats.dropped
        assert dropped > 2000 and pub.stats.failed == 0
        assert sum(pub.spool_stats(c).dropped for c in cams) == dropped == sum(pub.stats.lost_by_key.values())
        assert "spool full" in caplog.text and "oldest messages" in caplog.text
        up.start()
        assert pub.flush(60) == 0
    finally:
        pub.close(5)
        if up.pid is None:
            up.start()
    messages = drain(up.bootstrap, topic, idle_s=2.0)
    scratch.close()
    seqs = [json.loads(m.value())["frame_seq"] for m in messages]
    assert len(seqs) == len(frames) - dropped and len(set(seqs)) == len(seqs)
    assert_in_order_once(frames_by_camera(messages))
    # what is missing is one block of the oldest spooled frames: newer ones all arrived
    missing = sorted(set(range(len(frames))) - set(seqs))
    assert missing == list(range(missing[0], missing[0] + dropped)) and missing[0] >= 200
    assert max(seqs) == len(frames) - 1  # the newest arrived
    print(f"dropped {dropped} oldest of {len(frames) - 200} spooled; {len(seqs)} delivered in order")
