"""Alerting end to end on a real broker: rules on the compacted topic, a Faust worker evaluating
them, a local webhook receiver (signatures verified) and a local SMTP server.

Each test scopes its rules to its own cameras, so the tests share one worker (one start-up) and
stay apart; the SIGKILL test has its own worker. Cameras "send" stream-stats from a heartbeat
thread while they are listed in ``Heartbeat.live``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from agents_helpers import Scratch, Worker, drain, produce, values
from alert_helpers import SECRET, Mailbox, Receiver, rule, stats, wait_for

from models.records import AlertEvent, CameraConfig, FrameDetections, OccupancySample, WindowCount, Zone

pytestmark = pytest.mark.integration


class Heartbeat:
    """Stream-stats every 0.3 s for the cameras in ``live`` (a camera left out goes silent)."""

    def __init__(self, scratch: Scratch) -> None:
        self.scratch, self.live = scratch, set[str]()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.scratch.bootstrap, "linger.ms": 5})
        topic = self.scratch.topic("stream-stats")
        while not self.stop.is_set():
            now = time.time()
            for cam in list(self.live):
                p.produce(topic, key=cam.encode(), value=stats(cam, now).to_json())
            p.poll(0)
            time.sleep(0.3)
        p.flush(10)


@dataclass
class Stage:
    """What the alerting tests run against: scratch topics, the webhook receiver, the SMTP server,
    the heartbeat, and the workers started with :meth:`worker` (all stopped by :func:`stage`)."""

    scratch: Scratch
    receiver: Receiver
    mailbox: Mailbox
    beat: Heartbeat
    workdir: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def worker(self, name: str = "w1") -> Worker:
        w = Worker(self.scratch, self.workdir, name=name, env=self.env).start()
        self.workers.append(w)
        w.wait_ready()
        return w


@contextlib.contextmanager
def stage(stack, workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stage]:
    scratch = Scratch(stack.bootstrap)
    receiver, mailbox = Receiver().start(), Mailbox().start()
    beat = Heartbeat(scratch)
    beat.thread.start()
    st = Stage(scratch, receiver, mailbox, beat, workdir, alerting_env(mailbox) | (extra_env or {}))
    try:
        yield st
    finally:
        beat.stop.set()
        for w in st.workers:
            w.stop()
        receiver.stop()
        mailbox.stop()
        scratch.close()


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with stage(stack, tmp_path_factory.mktemp("alerting")) as st:
        yield st.scratch, st.receiver, st.mailbox, st.beat, st.worker()


def alerting_env(mailbox: Mailbox) -> dict[str, str]:
    return {
        "FOOTFALL_ALERTING__STARTUP_GRACE_S": "0",
        "FOOTFALL_ALERTING__TICK_S": "0.25",
        "FOOTFALL_ALERTING__WEBHOOK_SECRET": SECRET,
        "FOOTFALL_ALERTING__SMTP_PORT": str(mailbox.port),
        "FOOTFALL_ALERTING__BACKOFF_BASE_S": "0.2",
        "FOOTFALL_ALERTING__BACKOFF_CAP_S": "0.5",
        "FOOTFALL_ALERTING__DELIVERY_ATTEMPTS": "5",
        "FOOTFALL_ALERTING__DRIFT_MIN_DETECTIONS": "200",
    }


def publish_rule(scratch: Scratch, r) -> None:
    produce(scratch.bootstrap, scratch.topic("alert-rules"), [(r.rule_id, r.to_json())])


def alerts_of(scratch: Scratch, camera: str) -> dict[str, dict]:
    """The newest record per alert id of one camera, from the alerts topic."""
    out: dict[str, dict] = {}
    for a in values(drain(scratch.bootstrap, scratch.topic("alerts"), idle_s=3, timeout_s=20)):
        if a.get("camera_id") == camera:
            out[a["alert_id"]] = a
    return out


def cam_id() -> str:
    return f"cam-{uuid.uuid4().hex[:8]}"


def test_offline_camera_fires_once_delivers_once_and_resolves_by_itself(world):
    scratch, receiver, mailbox, beat, worker = world
    cam = cam_id()
    hook = f"/offline/{cam}"
    publish_rule(scratch, rule(f"off-{cam}", cam, channels=[f"webhook:{receiver.url(hook)}", "email:ops@example.org"]))
    beat.live.add(cam)
    time.sleep(2.0)
    assert receiver.delivered(hook) == []  # online: nothing
    beat.live.discard(cam)  # the camera stops sending anything at all
    silent_at = time.time()
    wait_for("the offline alert", lambda: receiver.delivered(hook), timeout=30, tail=worker.tail)
    assert time.time() - silent_at >= 3.0  # not before the rule's window
    time.sleep(2.0)  # more evaluations: still one alert
    fired = receiver.delivered(hook)
    assert len(fired) == 1 and fired[0].signed_ok
    assert fired[0].body["event"] == "fired" and fired[0].body["alert"]["camera_id"] == cam
    alert_id = fired[0].body["alert"]["alert_id"]
    assert fired[0].headers["Idempotency-Key"] == f"{alert_id}:fired"
    wait_for("the e-mail", lambda: f"{alert_id}:fired" in mailbox.idempotency_keys(), tail=worker.tail)

    beat.live.add(cam)  # back
    wait_for("the resolution", lambda: len(receiver.delivered(hook)) == 2, tail=worker.tail)
    wait_for("the resolution e-mail", lambda: f"{alert_id}:resolved" in mailbox.idempotency_keys(), tail=worker.tail)
    time.sleep(1.5)
    assert receiver.keys(hook) == [f"{alert_id}:fired", f"{alert_id}:resolved"]
    mails = Counter(mailbox.idempotency_keys())
    assert mails[f"{alert_id}:fired"] == 1 and mails[f"{alert_id}:resolved"] == 1
    alerts = wait_for("the resolved alert", lambda: (a := alerts_of(scratch, cam)) and
                      next(iter(a.values()))["status"] == "resolved" and a)  # fmt: skip
    assert list(alerts) == [alert_id]
    [a] = alerts.values()
    assert a["severity"] == "critical" and a["title"] == f"Camera {cam} is offline"
    assert [e["action"] for e in a["log"]] == ["fired", "resolved"]

    health = [h for h in values(drain(scratch.bootstrap, scratch.topic("camera-health"), idle_s=3, timeout_s=20))
              if h["camera_id"] == cam]  # fmt: skip
    assert health and all(h["stream_quality_score"] == 1.0 and h["offline_s"] == 0.0 for h in health)

    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:  # Prometheus text format
        text = resp.read().decode()
    assert 'footfall_alert_transitions_total{kind="fired"}' in text
    assert 'footfall_alert_deliveries_total{event="resolved",outcome="delivered"}' in text
    assert f'footfall_camera_stream_quality{{camera_id="{cam}"}} 1.0' in text
    assert "footfall_worker_frames_total" in text


def test_failing_webhook_is_retried_dead_lettered_and_does_not_stop_evaluation(world):
    scratch, receiver, _mailbox, beat, worker = world
    flaky, dead, good = cam_id(), cam_id(), cam_id()
    receiver.fail[f"/flaky/{flaky}"] = 3  # fails 3 times, then succeeds
    receiver.fail[f"/dead/{dead}"] = -1  # never succeeds
    for cam, path in ((flaky, "/flaky/"), (dead, "/dead/"), (good, "/good/")):
        publish_rule(scratch, rule(f"off-{cam}", cam, channels=[f"webhook:{receiver.url(path + cam)}"]))
        beat.live.add(cam)
    time.sleep(1.5)
    for cam in (flaky, dead, good):
        beat.live.discard(cam)
    wait_for("the good camera's alert", lambda: receiver.delivered(f"/good/{good}"), tail=worker.tail)
    wait_for("the flaky webhook's alert", lambda: receiver.delivered(f"/flaky/{flaky}"), tail=worker.tail)
    time.sleep(1.0)
    assert len(receiver.delivered(f"/flaky/{flaky}")) == 1
    assert len([h for h in receiver.hits if h.path == f"/flaky/{flaky}"]) == 4

    def dead_letters():
        msgs = values(drain(scratch.bootstrap, scratch.topic("dead-letter"), idle_s=3, timeout_s=20))
        return [d for d in msgs if d.get("key", "").startswith(f"off-{dead}|{dead}@")]

    [dl] = wait_for("the dead letter", dead_letters, timeout=30, tail=worker.tail)
    assert "500" in dl["error"] and "5 attempt" in dl["error"]
    assert len([h for h in receiver.hits if h.path == f"/dead/{dead}"]) == 5


def test_escalation_after_the_delay_unless_acknowledged(world):
    scratch, receiver, _mailbox, beat, worker = world
    lonely, watched = cam_id(), cam_id()
    for cam in (lonely, watched):
        publish_rule(
            scratch,
            rule(f"off-{cam}", cam, channels=[f"webhook:{receiver.url('/first/' + cam)}"], escalation_delay_s=3.0,
                 escalation_channels=[f"webhook:{receiver.url('/escalate/' + cam)}"]),
        )  # fmt: skip
        beat.live.add(cam)
    time.sleep(1.5)
    beat.live.discard(lonely)
    beat.live.discard(watched)
    fired = wait_for("the watched camera's alert", lambda: receiver.delivered(f"/first/{watched}"), tail=worker.tail)
    alert_id = fired[0].body["alert"]["alert_id"]
    ack = AlertEvent(alert_id=alert_id, kind="acknowledge", at=time.time(), by="alice", note="on my way")
    produce(scratch.bootstrap, scratch.topic("alert-events"), [(alert_id, ack.to_json())])
    wait_for("the escalation", lambda: receiver.delivered(f"/escalate/{lonely}"), timeout=30, tail=worker.tail)
    time.sleep(3.0)
    assert receiver.delivered(f"/escalate/{watched}") == []
    [esc] = receiver.delivered(f"/escalate/{lonely}")
    assert esc.body["event"] == "escalated"
    a = wait_for("the acknowledged alert", lambda: alerts_of(scratch, watched).get(alert_id, {}).get("acknowledged_by"))
    assert a == "alice"


def test_rule_changed_through_the_api_applies_without_restart(world, stack):
    """The rule is created and then changed with PUT /api/v1/alert-rules/{id} (an API on the same
    topic prefix): the running worker applies the change at its next evaluation."""
    import psycopg
    from api_helpers import AUTH, settings_for
    from fastapi.testclient import TestClient

    from api.app import create_app

    scratch, receiver, _mailbox, beat, worker = world
    cam = cam_id()
    hook = f"/change/{cam}"
    body = {"metric": "camera_offline_s", "comparison": ">", "threshold": 3600, "eval_interval_s": 0.5,
            "cooldown_s": 0, "camera_id": cam, "channels": [f"webhook:{receiver.url(hook)}"]}  # fmt: skip
    rid = f"off-{cam}"
    try:
        with TestClient(create_app(settings_for(scratch.prefix)), headers=AUTH) as api:
            assert api.put(f"/api/v1/alert-rules/{rid}", json=body, headers=AUTH).status_code == 201
            beat.live.add(cam)
            time.sleep(1.0)
            beat.live.discard(cam)
            time.sleep(5.0)
            assert receiver.delivered(hook) == []  # an hour's threshold: not yet
            r = api.put(f"/api/v1/alert-rules/{rid}", json={**body, "threshold": 2}, headers=AUTH)
            assert r.status_code == 200, r.text
            wait_for("the alert under the changed rule", lambda: receiver.delivered(hook), timeout=20,
                     tail=worker.tail)  # fmt: skip
    finally:
        with psycopg.connect(stack.db_dsn, autocommit=True) as db:
            db.execute("DELETE FROM alert_rules WHERE rule_id = %s", (rid,))


def test_zone_above_its_own_alert_threshold(world):
    """An occupancy rule without a threshold uses the zone's alert_threshold_pct (from the camera's
    config on the camera-config topic)."""
    scratch, receiver, _mailbox, _beat, worker = world
    cam = cam_id()
    hook = f"/zone/{cam}"
    config = CameraConfig(camera_id=cam, zones=[Zone(zone_id="hall", polygon=[[0, 0], [9, 0], [9, 9]], capacity=10,
                                                        alert_threshold_pct=80.0)])  # fmt: skip
    produce(scratch.bootstrap, scratch.topic("camera-config"), [(cam, config.to_json())])
    wait_for("the config", lambda: cam in worker.get("/footfall/configs/")[1].get("configs", []), tail=worker.tail)
    publish_rule(scratch, rule(f"zone-{cam}", cam, metric="occupancy_pct", comparison=">=", threshold=None,
                               channels=[f"webhook:{receiver.url(hook)}"]))  # fmt: skip
    time.sleep(1.0)

    def sample(pct: float) -> tuple[str, bytes]:
        at = time.time()
        occ = OccupancySample(camera_id=cam, zone_id="hall", at=at, count=int(pct / 10), capacity=10, capacity_pct=pct)
        return cam, occ.to_json()

    produce(scratch.bootstrap, scratch.topic("occupancy"), [sample(50.0)])
    time.sleep(1.5)
    assert receiver.delivered(hook) == []
    produce(scratch.bootstrap, scratch.topic("occupancy"), [sample(90.0)])
    [fired] = wait_for("the occupancy alert", lambda: receiver.delivered(hook), tail=worker.tail)
    assert fired.body["alert"]["zone_id"] == "hall" and fired.body["alert"]["threshold"] == 80.0
    produce(scratch.bootstrap, scratch.topic("occupancy"), [sample(70.0)])
    wait_for("the resolution", lambda: len(receiver.delivered(hook)) == 2, tail=worker.tail)
    assert receiver.delivered(hook)[1].body["event"] == "resolved"


def test_model_drift_fires_for_another_distribution_only(world):
    """Two cameras count the same kind of detections (their baseline); then one of them gets
    detections from another profile (low confidence, small boxes): its drift score passes the
    threshold and alerts, the other camera's stays low."""
    scratch, receiver, _mailbox, _beat, worker = world
    steady, drifting = cam_id(), cam_id()
    for cam in (steady, drifting):
        publish_rule(scratch, rule(f"drift-{cam}", cam, metric="model_drift_score", threshold=0.8,
                                   channels=[f"webhook:{receiver.url('/drift/' + cam)}"]))  # fmt: skip
    t0 = time.time()

    def frames(cam: str, seq0: int, conf: float, height: float) -> list[tuple[str, bytes]]:
        out = []
        for k in range(40):  # 40 frames x 5 people = 200 detections (FOOTFALL_ALERTING__DRIFT_MIN_DETECTIONS)
            boxes = [[40.0 + 100 * i, 50.0, 70.0 + 100 * i, 50.0 + height, conf] for i in range(5)]
            f = FrameDetections(camera_id=cam, frame_seq=seq0 + k, captured_at=t0 + (seq0 + k) / 10, frame_width=640,
                                frame_height=480, boxes=boxes, model_name="m", model_version="1",
                                inference_ms=1.0, published_at=t0)  # fmt: skip
            out.append((cam, f.to_json()))
        return out

    def report(cam: str, seq: int) -> tuple[str, bytes]:
        return cam, stats(cam, t0 + seq / 10, model_name="m", model_version="1").to_json()

    def counted(cam: str, seq: int) -> bool:
        _, body = worker.get(f"/footfall/cameras/{cam}/")
        return isinstance(body, dict) and body.get("last_frame_seq", -1) >= seq

    for phase, (conf, height) in enumerate(((0.85, 150.0), (0.85, 150.0), (0.3, 20.0))):
        seq0 = 1 + 40 * phase
        for cam in (steady, drifting):
            batch = frames(cam, seq0, conf, height) if cam == drifting else frames(cam, seq0, 0.85, 150.0)
            produce(scratch.bootstrap, scratch.topic("detections"), batch)
        for cam in (steady, drifting):
            wait_for("the frames counted", lambda c=cam, s=seq0: counted(c, s + 39), tail=worker.tail)
            produce(scratch.bootstrap, scratch.topic("stream-stats"), [report(cam, seq0 + 40)])
        time.sleep(1.0)
    [hit] = wait_for("the drift alert", lambda: receiver.delivered(f"/drift/{drifting}"), tail=worker.tail)
    assert hit.body["alert"]["metric"] == "model_drift_score" and hit.body["alert"]["metric_value"] > 0.8
    time.sleep(1.0)
    assert receiver.delivered(f"/drift/{steady}") == []
    health = [h for h in values(drain(scratch.bootstrap, scratch.topic("camera-health"), idle_s=3, timeout_s=20))
              if h["camera_id"] == drifting]  # fmt: skip
    assert [h["detections_per_frame"] for h in health] == [5.0, 5.0, 5.0]  # model performance per report
    assert health[-1]["mean_confidence"] == pytest.approx(0.3) and health[-1]["model_drift_score"] > 0.8


def test_count_anomaly_against_the_hour_of_day_baseline(world):
    """A line counts ~100 people between 10:00 and 11:00 for a week, then 5: the hour is judged when
    the next hour's first window arrives, and its count is far below the baseline for 10:00."""
    scratch, receiver, _mailbox, _beat, worker = world
    cam = cam_id()
    hook = f"/anomaly/{cam}"
    publish_rule(scratch, rule(f"anomaly-{cam}", cam, metric="count_anomaly_z", threshold=4.0,
                               message="{line} of {camera_id}: {value} sigma",
                               channels=[f"webhook:{receiver.url(hook)}"]))  # fmt: skip
    time.sleep(1.0)
    day0 = (int(time.time()) // 86400 - 9) * 86400 + 10 * 3600  # 10:00 UTC, nine days ago

    def window(start: float, count: int) -> tuple[str, bytes]:
        w = WindowCount(camera_id=cam, line_id="door", direction="in", window_start=start, window_end=start + 60,
                        count=count, updated_at=start + 90, final=True)  # fmt: skip
        return cam, w.to_json()

    items = []
    for day in range(8):  # 7 days of baseline, then the odd one
        at = day0 + day * 86400
        items += [window(at, 60 if day < 7 else 3), window(at + 1800, 40 if day < 7 else 2), window(at + 3600, 1)]
    produce(scratch.bootstrap, scratch.topic("window-counts"), items)
    [hit] = wait_for("the anomaly alert", lambda: receiver.delivered(hook), tail=worker.tail)
    assert hit.body["alert"]["title"].startswith(f"door:in of {cam}:")
    assert hit.body["alert"]["metric_value"] > 4.0
    assert hit.body["alert"]["alert_id"].startswith(f"anomaly-{cam}|{cam}/door:in@")


def test_sigkill_between_firing_and_delivery_sends_one_notification(stack, tmp_path):
    """The webhook keeps failing while the worker has fired; the worker is killed with kill -9,
    restarted, and the webhook recovers: one alert, one delivered key, nothing lost."""
    slow = {"FOOTFALL_ALERTING__BACKOFF_BASE_S": "1", "FOOTFALL_ALERTING__BACKOFF_CAP_S": "1"}
    with stage(stack, tmp_path, slow) as st:
        scratch, receiver, beat = st.scratch, st.receiver, st.beat
        worker = st.worker()
        cam = cam_id()
        hook = f"/kill/{cam}"
        publish_rule(scratch, rule(f"off-{cam}", cam, channels=[f"webhook:{receiver.url(hook)}"]))
        receiver.fail[hook] = -1
        beat.live.add(cam)
        time.sleep(1.5)
        beat.live.discard(cam)
        wait_for("a first delivery attempt", lambda: [h for h in receiver.hits if h.path == hook], tail=worker.tail)
        worker.kill()  # fired, not delivered
        receiver.fail[hook] = 0
        time.sleep(1.0)
        worker = st.worker("w2")
        wait_for("the delivery after the restart", lambda: receiver.delivered(hook), timeout=60, tail=worker.tail)
        time.sleep(2.0)
        worker.kill()  # between two evaluations, with the alert open
        worker = st.worker("w3")
        time.sleep(4.0)
        keys = set(receiver.keys(hook))
        assert len(keys) == 1 and next(iter(keys)).endswith(":fired"), receiver.keys(hook)
        events = values(drain(stack.bootstrap, scratch.topic("alert-events"), idle_s=3, timeout_s=20))
        assert len({e["alert_id"] for e in events if e["kind"] == "fired"}) == 1
        assert list(alerts_of(scratch, cam)) == [next(iter(keys)).rsplit(":", 1)[0]]
