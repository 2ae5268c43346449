"""API contract tests against the real stack: cameras (DB + config topic, no clear password),
auth on writes, counts/peaks/occupancy equal to the rows inserted and refreshed, seed 002
endpoints, errors, health, OpenAPI."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import AUTH, NO_AUTH, SECRET_KEY, api_env, settings_for

from api.app import create_app
from sql.credentials import decrypt_password

pytestmark = pytest.mark.integration

CAMERA = {
    "name": "Front door",
    "location": None,
    "groups": ["lobby"],
    "timezone": "Europe/Paris",
    "stream": {"url": "rtsp://viewer@10.0.0.5:554/stream1", "password": "hunter2-secret"},
    "lines": [{"line_id": "door", "start": [320, 0], "end": [320, 360], "name": "Door"}],
    "zones": [{"zone_id": "hall", "polygon": [[0, 0], [640, 0], [640, 360]], "capacity": 20}],
}


@pytest.fixture(scope="module")
def env(stack, db, rds):
    with api_env(stack, db, rds) as e:
        yield e


def _camera_body(env, **changes):
    body = json.loads(json.dumps(CAMERA))
    body["tenant"] = env.tenant
    body["groups"] = [f"{env.tenant}-lobby"]
    body.update(changes)
    return body


def _consume_config(kafka_bootstrap: str, topic: str, camera_id: str, want: int, timeout_s: float = 20.0):
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < want and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.key() == camera_id.encode():
                got.append(msg)
    finally:
        c.close()
    return got


def test_health_openapi_docs(env):
    r = env.client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok", r.json()
    assert set(r.json()["checks"]) == {"database", "redis", "kafka"}
    spec = env.client.get("/openapi.json").json()
    for path in ("/api/v1/metrics", "/api/v1/sla/status", "/api/v1/alerts", "/api/v1/cameras/{camera_id}/counts"):
        assert path in spec["paths"]
    assert "bearer" in json.dumps(spec["components"]["securitySchemes"]).lower()
    assert env.client.get("/docs").status_code == 200


def test_every_request_needs_a_key(env):
    cam = env.camera_id()
    body = _camera_body(env)
    assert env.client.put(f"/api/v1/cameras/{cam}", json=body, headers=NO_AUTH).status_code == 401
    r = env.client.put(f"/api/v1/cameras/{cam}", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    assert env.client.get(f"/api/v1/cameras/{cam}").status_code == 404  # nothing stored
    assert env.client.get(f"/api/v1/cameras/{cam}", headers=NO_AUTH).status_code == 401  # reads too
    assert env.client.delete(f"/api/v1/cameras/{cam}", headers=NO_AUTH).status_code == 401


def test_platform_token_refused_when_not_configured(stack, db, rds):
    with api_env(stack, db, rds, token=None) as e:
        r = e.client.put(f"/api/v1/cameras/{e.camera_id()}", json=_camera_body(e), headers=AUTH)
        assert r.status_code == 401 and "not valid" in r.json()["detail"]


def test_camera_lifecycle_db_topic_and_no_clear_password(env, db, stack):
    cam = env.camera_id()
    r = env.client.put(f"/api/v1/cameras/{cam}", json=_camera_body(env), headers=AUTH)
    assert r.status_code == 201, r.text
    view = r.json()
    assert "hunter2-secret" not in r.text and "password" not in json.dumps(view).replace("has_password", "")
    assert view["stream"]["has_password"] is True
    assert view["groups"] == [f"{env.tenant}-lobby"] and view["lines"][0]["line_id"] == "door"

    row = db.execute("SELECT stream_password_enc, tenant_id FROM cameras WHERE camera_id = %s", (cam,)).fetchone()
    assert row[1] == env.tenant
    assert b"hunter2-secret" not in bytes(row[0])
    assert decrypt_password(row[0], SECRET_KEY) == "hunter2-secret"
    assert db.execute("SELECT count(*) FROM counting_lines WHERE camera_id = %s", (cam,)).fetchone()[0] == 1

    # A line and a zone added, a line removed: each a full config on the topic.
    r = env.client.put(f"/api/v1/cameras/{cam}/lines/exit", json={"start": [0, 200], "end": [640, 200]}, headers=AUTH)
    assert r.status_code == 200 and [ln["line_id"] for ln in r.json()["lines"]] == ["door", "exit"]
    zone = {"polygon": [[10, 10], [100, 10], [100, 100]], "capacity": 5, "area_sqm": 12.5}
    r = env.client.put(f"/api/v1/cameras/{cam}/zones/queue", json=zone, headers=AUTH)
    assert r.status_code == 200 and [z["zone_id"] for z in r.json()["zones"]] == ["hall", "queue"]
    r = env.client.delete(f"/api/v1/cameras/{cam}/lines/door", headers=AUTH)
    assert r.status_code == 200 and [ln["line_id"] for ln in r.json()["lines"]] == ["exit"]
    assert env.client.delete(f"/api/v1/cameras/{cam}/lines/door", headers=AUTH).status_code == 404
    assert r.json()["stream"]["has_password"] is True  # edits keep the stored password

    got = env.client.get(f"/api/v1/cameras/{cam}").json()
    assert got == r.json()
    listed = env.client.get("/api/v1/cameras", params={"tenant": env.tenant}).json()["cameras"]
    assert [c["camera_id"] for c in listed] == [cam]

    msgs = _consume_config(stack.bootstrap, env.config_topic, cam, want=4)
    assert len(msgs) == 4
    for m in msgs:
        assert b"hunter2-secret" not in m.value() and b"password" not in m.value()
    from models.base import parse
    from models.records import CameraConfig

    last = parse(CameraConfig, msgs[-1].value())
    assert [ln.line_id for ln in last.lines] == ["exit"] and [z.zone_id for z in last.zones] == ["hall", "queue"]
    assert last.stream.url == CAMERA["stream"]["url"] and last.groups == [f"{env.tenant}-lobby"]

    # Delete: row gone, tombstone published.
    assert env.client.delete(f"/api/v1/cameras/{cam}", headers=AUTH).status_code == 204
    assert env.client.get(f"/api/v1/cameras/{cam}").status_code == 404
    msgs = _consume_config(stack.bootstrap, env.config_topic, cam, want=5)
    assert msgs[-1].value() is None


def test_post_conflict_and_validation_errors_name_the_field(env):
    cam = env.camera_id()
    body = {"camera_id": cam, **_camera_body(env)}
    assert env.client.post("/api/v1/cameras", json=body, headers=AUTH).status_code == 201
    r = env.client.post("/api/v1/cameras", json=body, headers=AUTH)
    assert r.status_code == 409 and "PUT" in r.json()["detail"]

    bad_line = _camera_body(env, lines=[{"line_id": "a", "start": [1, 1], "end": [1, 1]}])
    r = env.client.put(f"/api/v1/cameras/{cam}", json=bad_line, headers=AUTH)
    assert r.status_code == 422 and "lines[0].end" in r.json()["detail"]
    dup = _camera_body(env, lines=[CAMERA["lines"][0], CAMERA["lines"][0]])
    r = env.client.put(f"/api/v1/cameras/{cam}", json=dup, headers=AUTH)
    assert r.status_code == 422 and "duplicate line_id" in r.json()["detail"]
    r = env.client.put(f"/api/v1/cameras/{cam}", json=_camera_body(env, timezone="Mars/Olympus"), headers=AUTH)
    assert r.status_code == 422 and "timezone" in r.json()["detail"]
    with_pw_url = _camera_body(env, stream={"url": "rtsp://u:pw@host/s"})
    r = env.client.put(f"/api/v1/cameras/{cam}", json=with_pw_url, headers=AUTH)
    assert r.status_code == 422 and "stream.url" in r.json()["detail"]
    r = env.client.put(f"/api/v1/cameras/{cam}", json={**_camera_body(env), "colour": "red"}, headers=AUTH)
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    # None of these changed the stored camera.
    assert env.client.get(f"/api/v1/cameras/{cam}").json()["lines"][0]["line_id"] == "door"

    assert env.client.get("/api/v1/cameras/nope-" + uuid.uuid4().hex[:6] + "/counts").status_code == 404
    r = env.client.get(f"/api/v1/cameras/{cam}/counts", params={"interval": "week"})
    assert r.status_code == 422 and "interval" in r.json()["detail"]
    r = env.client.get(f"/api/v1/cameras/{cam}/counts", params={"from": "2026-01-02", "to": "2026-01-01"})
    assert r.status_code == 422 and "from" in r.json()["detail"]
    two_months = {"from": "2025-01-01", "to": "2025-03-01", "interval": "minute"}
    r = env.client.get(f"/api/v1/cameras/{cam}/counts", params=two_months)
    assert r.status_code == 422 and "buckets" in r.json()["detail"]
    r = env.client.get("/api/v1/metrics", params={"metric": "bogus"})
    assert r.status_code == 422 and "processed_fps" in r.json()["detail"]
    r = env.client.get("/api/v1/metrics", params={"metric": "reconnects", "interval": "5m"})
    assert r.status_code == 422 and "whole hours" in r.json()["detail"]
    r = env.client.get("/api/v1/alerts", params={"timeRange": "forever"})
    assert r.status_code == 422 and "timeRange" in r.json()["detail"]


def test_tracking_and_detection_settings_are_stored_published_and_checked(env, db, stack):
    cam = env.camera_id()
    body = _camera_body(
        env,
        detection={"confidence": 0.4, "nms_iou": 0.5},  # no imgsz: follow the stream
        tracking={"min_hits": 3, "hysteresis_px": 5},
    )
    r = env.client.put(f"/api/v1/cameras/{cam}", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["detection"]["imgsz"] is None and view["detection"]["nms_iou"] == 0.5
    assert view["tracking"]["min_hits"] == 3 and view["tracking"]["hysteresis_px"] == 5
    assert view["tracking"]["high_conf"] is None and "schema_version" not in view["tracking"]
    assert env.client.get(f"/api/v1/cameras/{cam}").json() == view
    row = db.execute("SELECT detection_imgsz, tracking FROM cameras WHERE camera_id = %s", (cam,)).fetchone()
    assert row[0] is None and row[1] == {"min_hits": 3, "hysteresis_px": 5}  # only what the camera sets

    from agents.state import camera_params
    from models.base import parse
    from models.records import CameraConfig

    published = parse(CameraConfig, _consume_config(stack.bootstrap, env.config_topic, cam, want=1)[-1].value())
    assert camera_params(published).tracker.min_hits == 3 and published.detection.nms_iou == 0.5

    for tracking, field in (
        ({"low_conf": 0.9, "high_conf": 0.2}, "tracking.low_conf"),  # the core's rule: low_conf <= high_conf
        ({"min_hits": 0}, "tracking.min_hits"),
    ):
        r = env.client.put(f"/api/v1/cameras/{cam}", json=_camera_body(env, tracking=tracking), headers=AUTH)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = env.client.post(
        "/api/v1/cameras",
        json={"camera_id": env.camera_id(), **_camera_body(env, tracking={"high_conf": 2})},
        headers=AUTH,
    )
    assert r.status_code == 422 and "tracking.high_conf" in r.json()["detail"]
    for bad, where in (
        ({"tracking": {"min_hits": 2.5}}, "tracking.min_hits"),  # a type: the request schema says so
        ({"tracking": {"iou": 0.3}}, "tracking.iou"),
        ({"detection": {"nms_iou": 0}}, "detection.nms_iou"),
    ):
        r = env.client.put(f"/api/v1/cameras/{cam}", json=_camera_body(env, **bad), headers=AUTH)
        assert r.status_code == 422 and where in r.json()["detail"], r.text
    assert env.client.get(f"/api/v1/cameras/{cam}").json() == view  # nothing changed


def _insert_camera(db, tenant: str, camera_id: str) -> None:
    db.execute("INSERT INTO tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
    db.execute("INSERT INTO cameras (camera_id, tenant_id) VALUES (%s, %s)", (camera_id, tenant))


def _refresh(db, start: datetime, end: datetime, *views: str) -> None:
    for view in views:
        db.execute(f"CALL refresh_continuous_aggregate('{view}', %s::timestamptz, %s::timestamptz)", (start, end))


def test_counts_peaks_and_occupancy_equal_the_rows(env, db):
    cam = env.camera_id()
    _insert_camera(db, env.tenant, cam)
    day = datetime(2025, 3, 4, tzinfo=UTC)  # far from live data; refreshed and cleaned up below
    # (hour offset, line, direction, how many)
    plan = [(9, "a", "in", 3), (9, "a", "out", 1), (9, "b", "in", 2), (10, "a", "in", 5), (26, "b", "out", 4)]
    events = []
    for h, line, direction, n in plan:
        for k in range(n):
            t = day + timedelta(hours=h, minutes=k * 7)
            events.append((t, f"{cam}:{h}:{line}:{direction}:{k}", cam, line, k, direction, k, t, 1.0, 1.0))
    occ = [(day + timedelta(hours=9, minutes=m), cam, "z", c) for m, c in [(0, 2), (1, 4), (30, 9), (61, 1)]]
    views = ("crossings_1m", "crossings_1h", "crossings_1d", "occupancy_1m", "occupancy_1h", "occupancy_1d")
    try:
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction, "
                "frame_seq, processed_at, x, y) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                events,
            )
            cur.executemany(
                "INSERT INTO occupancy_samples (at, camera_id, zone_id, count) VALUES (%s, %s, %s, %s)", occ
            )
        _refresh(db, day - timedelta(days=1), day + timedelta(days=3), *views)

        q = {"from": day.isoformat(), "to": (day + timedelta(days=2)).isoformat()}
        r = env.client.get(f"/api/v1/cameras/{cam}/counts", params={**q, "interval": "hour"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "crossings_1h"
        assert body["totals"] == {"in": 10, "out": 5, "total": 15}
        assert body["lines"]["a"] == {"in": 8, "out": 1, "total": 9}
        nine = [b for b in body["buckets"] if b["bucket"].startswith("2025-03-04T09")]
        assert {(b["line_id"], b["in"], b["out"]) for b in nine} == {("a", 3, 1), ("b", 2, 0)}

        days = env.client.get(f"/api/v1/cameras/{cam}/counts", params={**q, "interval": "day"}).json()
        assert [(b["bucket"][:10], b["line_id"], b["total"]) for b in days["buckets"]] == [
            ("2025-03-04", "a", 9),
            ("2025-03-04", "b", 2),
            ("2025-03-05", "b", 4),
        ]
        minutes = env.client.get(
            f"/api/v1/cameras/{cam}/lines/a/counts",
            params={
                "from": (day + timedelta(hours=9)).isoformat(),
                "to": (day + timedelta(hours=10)).isoformat(),
                "interval": "minute",
            },  # fmt: skip
        ).json()
        assert minutes["totals"] == {"in": 3, "out": 1, "total": 4} and len(minutes["buckets"]) == 3

        many = env.client.get("/api/v1/counts", params={"camera_id": cam, **q, "interval": "day"}).json()
        assert many["by_camera"][cam]["total"] == 15

        peaks = env.client.get(f"/api/v1/cameras/{cam}/peak-hours", params=q).json()["days"]
        assert [(p["day"][:10], p["peak_hour"][11:13], p["crossings"], p["in"], p["out"]) for p in peaks] == [
            ("2025-03-04", "09", 6, 5, 1),
            ("2025-03-05", "02", 4, 0, 4),
        ]

        hist = env.client.get(f"/api/v1/cameras/{cam}/occupancy/history", params={**q, "interval": "hour"}).json()
        assert [(b["bucket"][11:13], b["samples"], b["avg"], b["max"], b["min"]) for b in hist["buckets"]] == [
            ("09", 3, 5.0, 9, 2),
            ("10", 1, 1.0, 1, 1),
        ]
        zone = env.client.get(f"/api/v1/cameras/{cam}/zones/z/occupancy", params={**q, "interval": "day"}).json()
        assert zone["buckets"][0]["avg"] == pytest.approx(16 / 4)

        crossings = env.client.get(
            "/api/v1/metrics", params={"metric": "crossings", "camera_id": cam, "interval": "1d", "timeRange": "1000d"}
        ).json()
        assert sum(d["value"] for d in crossings["data"]) == 15 and crossings["source"] == "crossings_1d"
    finally:
        db.execute("DELETE FROM crossing_events WHERE camera_id = %s", (cam,))
        db.execute("DELETE FROM occupancy_samples WHERE camera_id = %s", (cam,))
        _refresh(db, day - timedelta(days=1), day + timedelta(days=3), *views)


def test_occupancy_now_from_redis_then_database(env, db, rds):
    import asyncio

    import redis.asyncio as aioredis

    from api.live import publish_occupancy
    from models.records import OccupancySample

    cam = env.camera_id()
    _insert_camera(db, env.tenant, cam)
    now = datetime.now(UTC)
    try:
        db.execute(
            "INSERT INTO occupancy_samples (at, camera_id, zone_id, count) VALUES (%s, %s, 'z', 3), (%s, %s, 'z', 7)",
            (now - timedelta(minutes=2), cam, now - timedelta(minutes=1), cam),
        )
        r = env.client.get(f"/api/v1/cameras/{cam}/occupancy").json()
        assert r["source"] == "database" and [(z["zone_id"], z["count"]) for z in r["zones"]] == [("z", 7)]

        async def push():
            client = aioredis.Redis(
                host=rds.connection_pool.connection_kwargs["host"], port=rds.connection_pool.connection_kwargs["port"]
            )
            try:
                await publish_occupancy(
                    client, env.prefix, OccupancySample(camera_id=cam, zone_id="z", at=time.time(), count=11)
                )
            finally:
                await client.aclose()

        asyncio.run(push())
        r = env.client.get(f"/api/v1/cameras/{cam}/occupancy").json()
        assert r["source"] == "redis" and [(z["zone_id"], z["count"]) for z in r["zones"]] == [("z", 11)]
    finally:
        db.execute("DELETE FROM occupancy_samples WHERE camera_id = %s", (cam,))


def test_seed_002_metrics_sla_alerts(env, db):
    cam = env.camera_id()
    _insert_camera(db, env.tenant, cam)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    stats = [
        (hour + timedelta(minutes=m), cam, "g1", status, 10.0, 10.0, fps, dropped, 0, 0, 40.0)
        for m, status, fps, dropped in [(0, "online", 9.0, 0), (10, "online", 7.0, 10), (20, "offline", 0.0, 10)]
    ]
    alert_id = f"{cam}:offline"
    try:
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO stream_stats (at, camera_id, grabber_id, status, window_s, input_fps, processed_fps, "
                "dropped_frames, decode_errors, reconnects, latency_ms_p50) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                stats,
            )
            cur.execute(
                "INSERT INTO alerts (triggered_at, alert_id, rule, camera_id, severity, status, title, updated_at) "
                "VALUES (%s, %s, 'camera_offline', %s, 'critical', 'active', 'Camera offline', %s)",
                (now - timedelta(minutes=5), alert_id, cam, now),
            )
        # rows two hours back may sit below the aggregate's watermark on a long-lived database (a
        # worker's refresher ran): materialise their hour as a refresh policy would
        _refresh(db, hour, hour + timedelta(hours=1), "stream_health_1h")
        r = env.client.get("/api/v1/metrics", params={"metric": "processed_fps", "camera_id": cam, "timeRange": "6h",
                                                      "interval": "1h"})  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "stream_health_1h" and len(body["data"]) == 1
        assert body["data"][0]["value"] == pytest.approx(16 / 3)
        assert body["summary"]["max"] == pytest.approx(16 / 3)
        raw = env.client.get(
            "/api/v1/metrics",
            params={
                "metric": "processed_fps",
                "camera_id": cam,
                "timeRange": "6h",
                "interval": "10m",
                "aggregation": "max",
            },
        ).json()
        assert raw["source"] == "stream_stats" and [d["value"] for d in raw["data"]] == [9.0, 7.0, 0.0]

        sla = env.client.get("/api/v1/sla/status", params={"service": cam, "timeRange": "6h"}).json()
        assert sla["uptime"] == pytest.approx(200 / 3) and sla["status"] == "critical"
        assert sla["responseTime"] == pytest.approx(40.0) and sla["samples"] == 3
        assert sla["errorRate"] == pytest.approx(10 / 300)
        fleet = env.client.get("/api/v1/sla/status", params={"timeRange": "6h"}).json()
        assert cam in [c["camera_id"] for c in fleet["cameras"]]
        assert (
            env.client.get("/api/v1/sla/status", params={"service": "nope-" + uuid.uuid4().hex[:6]}).status_code == 404
        )

        alerts = env.client.get("/api/v1/alerts", params={"camera_id": cam, "status": "active"}).json()["alerts"]
        assert [(a["id"], a["severity"], a["status"]) for a in alerts] == [(alert_id, "critical", "active")]
        assert env.client.get("/api/v1/alerts", params={"camera_id": cam, "status": "resolved"}).json()["alerts"] == []
        assert env.client.get("/api/v1/alerts", params={"severity": "fatal"}).status_code == 422
    finally:
        db.execute("DELETE FROM stream_stats WHERE camera_id = %s", (cam,))
        db.execute("DELETE FROM alerts WHERE camera_id = %s", (cam,))


def test_unreachable_kafka_stores_nothing(stack, db, rds):
    settings = settings_for(f"test-{uuid.uuid4().hex[:12]}")
    settings.kafka.bootstrap = "127.0.0.1:1"  # nothing listens there
    tenant = f"test-api-{uuid.uuid4().hex[:6]}"
    from api_helpers import cleanup_tenant
    from fastapi.testclient import TestClient

    try:
        with TestClient(create_app(settings, publish_timeout_s=2.0), headers=AUTH) as client:
            cam = f"{tenant}-cam"
            body = {"tenant": tenant, "lines": []}
            r = client.put(f"/api/v1/cameras/{cam}", json=body, headers=AUTH)
            assert r.status_code == 503 and "nothing was stored" in r.json()["detail"]
            assert client.get(f"/api/v1/cameras/{cam}").status_code == 404
            assert client.get("/health").json()["checks"]["kafka"]["ok"] is False
    finally:
        cleanup_tenant(db, tenant)
