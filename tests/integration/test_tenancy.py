"""Tenants, roles, isolation and the audit trail against the real API, database, Kafka and Redis.

Two tenants (A and B) each get a camera with a line and a zone, counts, occupancy, stream stats,
an alert and a rule; A's rows carry a marker string that must never reach B. The matrix asks every
endpoint of the app as every role of A and as B, and a test fails if a route exists that the
matrix does not cover.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
import redis
from api_helpers import AUTH, NO_AUTH, api_env, bearer, cleanup_tenant, make_key

from streams.snapshots import SnapshotPublisher, encode_jpeg

pytestmark = pytest.mark.integration

ROLES = ("viewer", "operator", "admin")


@dataclass
class Tenant:
    name: str
    camera: str
    marker: str
    crossings: int
    keys: dict[str, str] = field(default_factory=dict)
    alert_id: str = ""
    rule_id: str = ""


def _seed(env, db, t: Tenant) -> None:
    body = {
        "tenant": t.name,
        "name": t.marker,
        "groups": [f"{t.name}-group"],
        "lines": [{"line_id": "door", "start": [320, 0], "end": [320, 360], "name": t.marker}],
        "zones": [{"zone_id": "hall", "polygon": [[0, 0], [640, 0], [640, 360]], "capacity": 20, "name": t.marker}],
    }
    r = env.client.put(f"/api/v1/cameras/{t.camera}", json=body)  # the platform token
    assert r.status_code == 201, r.text
    now = datetime.now(UTC).replace(microsecond=0)
    with db.transaction():
        for i in range(t.crossings):
            db.execute(
                "INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction, "
                "frame_seq, processed_at, x, y) VALUES (%s, %s, %s, 'door', %s, 'in', %s, %s, 1, 1)",
                (now - timedelta(minutes=5, seconds=i), f"{t.camera}:{i}", t.camera, i, i, now),
            )
        db.execute(
            "INSERT INTO occupancy_samples (at, camera_id, zone_id, count, capacity, capacity_pct) "
            "VALUES (%s, %s, 'hall', %s, 20, 10)",
            (now - timedelta(minutes=2), t.camera, t.crossings),
        )
        db.execute(
            "INSERT INTO stream_stats (at, camera_id, grabber_id, status, window_s, input_fps, processed_fps, "
            "dropped_frames, decode_errors, reconnects) VALUES (%s, %s, %s, 'online', 10, 10, 10, 0, 0, 0)",
            (now - timedelta(minutes=3), t.camera, t.marker),
        )
        t.alert_id = f"camera_offline|{t.camera}@{int(time.time() * 1000)}"
        db.execute(
            "INSERT INTO alerts (triggered_at, alert_id, rule, camera_id, tenant_id, severity, status, title, "
            "updated_at) VALUES (%s, %s, 'camera_offline', %s, %s, 'critical', 'active', %s, %s)",
            (now - timedelta(minutes=1), t.alert_id, t.camera, t.name, t.marker, now),
        )
    # Materialize the aggregates over the rows (what the worker's refresher does): another test may
    # have moved their watermark past these minutes, and real-time aggregation reads only after it.
    for view in ("crossings_1m", "crossings_1h", "crossings_1d", "occupancy_1m", "occupancy_1h", "occupancy_1d",
                 "stream_health_1h"):  # fmt: skip
        db.execute(f"CALL refresh_continuous_aggregate('{view}', %s, %s)", (now - timedelta(days=2), now))
    t.rule_id = f"{t.name}-offline"
    rule = {"tenant": t.name, "metric": "camera_offline_s", "comparison": ">", "threshold": 60,
            "severity": "critical", "name": t.marker}  # fmt: skip
    assert env.client.put(f"/api/v1/alert-rules/{t.rule_id}", json=rule).status_code == 201
    for role in ROLES:
        t.keys[role] = make_key(db, t.name, role)
    # the camera's picture, as its grabber would store it (the snapshot route needs one)
    with redis.Redis.from_url(env.settings.redis.url.get_secret_value()) as r:
        jpeg = encode_jpeg(np.zeros((36, 64, 3), np.uint8))
        SnapshotPublisher(r, env.prefix, interval_s=1, ttl_s=120).store(t.camera, jpeg, (640, 360), time.time())


@pytest.fixture(scope="module")
def world(stack, db, rds):
    run = uuid.uuid4().hex[:6]
    with api_env(stack, db, rds) as env:
        a = Tenant(f"test-ta-{run}", f"test-ta-{run}-cam", f"MARKER-A-{run}", crossings=7)
        b = Tenant(f"test-tb-{run}", f"test-tb-{run}-cam", f"MARKER-B-{run}", crossings=3)
        try:
            for t in (a, b):
                _seed(env, db, t)
            yield env, a, b
        finally:
            for t in (a, b):
                with db.transaction():
                    for table in ("crossing_events", "occupancy_samples", "stream_stats", "alerts"):
                        db.execute(f"DELETE FROM {table} WHERE camera_id = %s", (t.camera,))
                cleanup_tenant(db, t.name)


# --------------------------------------------------------------------------- the matrix

# (method, path, least role that may, body). {cam} {line} {zone} {alert} {rule} {tenant} are the
# target tenant's (always A's); own = A's keys, other = B's viewer and admin.
LINE = {"start": [10, 0], "end": [10, 100], "name": "moved"}
ZONE = {"polygon": [[0, 0], [50, 0], [50, 50]], "capacity": 5}
RULE_BODY = {"metric": "camera_offline_s", "comparison": ">", "threshold": 90, "severity": "warning"}
RECOUNT = {"line": {"start": [5, 0], "end": [5, 100]}, "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
MATRIX = [
    ("GET", "/api/v1/cameras", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}", "viewer", None),
    ("PUT", "/api/v1/cameras/{cam}/lines/{line}", "operator", LINE),
    ("PUT", "/api/v1/cameras/{cam}/zones/{zone}", "operator", ZONE),
    ("GET", "/api/v1/cameras/{cam}/counts", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/lines/{line}/counts", "viewer", None),
    ("GET", "/api/v1/counts?camera_id={cam}", "viewer", None),
    ("GET", "/api/v1/counts?group={tenant}-group", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/peak-hours", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/occupancy", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/snapshot.jpg?overlay=true", "viewer", None),
    ("GET", "/api/v1/stream-status", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/occupancy/history", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/zones/{zone}/occupancy", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/zones/{zone}/analytics?interval=minute", "viewer", None),
    ("GET", "/api/v1/zones/analytics", "viewer", None),
    ("GET", "/api/v1/metrics?metric=crossings&timeRange=1h", "viewer", None),
    ("GET", "/api/v1/metrics?metric=input_fps&timeRange=1h&camera_id={cam}", "viewer", None),
    ("GET", "/api/v1/sla/status", "viewer", None),
    ("GET", "/api/v1/alerts", "viewer", None),
    ("GET", "/api/v1/alerts/{alert}", "viewer", None),
    ("POST", "/api/v1/alerts/{alert}/notes", "operator", {"by": "tester", "note": "seen"}),
    ("GET", "/api/v1/alert-rules", "operator", None),
    ("GET", "/api/v1/alert-rules/{rule}", "operator", None),
    ("PUT", "/api/v1/alert-rules/{rule}", "admin", RULE_BODY),
    ("GET", "/api/v1/users", "admin", None),
    ("GET", "/api/v1/keys", "admin", None),
    ("GET", "/api/v1/audit", "admin", None),
    ("GET", "/api/v1/tenants/{tenant}/export", "admin", None),
    ("GET", "/api/v1/tenants", "superadmin", None),
    ("POST", "/api/v1/cameras/{cam}/snapshot", "viewer", None),
    ("POST", "/api/v1/cameras/{cam}/recount", "viewer", RECOUNT),
    ("GET", "/api/v1/cameras/{cam}/whatif", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/tracks", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/heatmap", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/flows", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/lines/{line}/versions", "viewer", None),
    ("GET", "/api/v1/cameras/{cam}/zones/{zone}/versions", "viewer", None),
]
# Routes asked elsewhere in this module (writes that destroy or create, the push, the platform's).
ELSEWHERE = {
    ("POST", "/api/v1/cameras"), ("PUT", "/api/v1/cameras/{camera_id}"), ("DELETE", "/api/v1/cameras/{camera_id}"),
    ("DELETE", "/api/v1/cameras/{camera_id}/lines/{line_id}"),
    ("DELETE", "/api/v1/cameras/{camera_id}/zones/{zone_id}"),
    ("POST", "/api/v1/alert-rules"), ("DELETE", "/api/v1/alert-rules/{rule_id}"),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"), ("POST", "/api/v1/alerts/{alert_id}/resolve"),
    ("POST", "/api/v1/alerts/{alert_id}/close"), ("POST", "/api/v1/users"), ("DELETE", "/api/v1/users/{user_id}"),
    ("POST", "/api/v1/keys"), ("DELETE", "/api/v1/keys/{key_id}"), ("POST", "/api/v1/tenants"),
    ("DELETE", "/api/v1/tenants/{tenant_id}"), ("GET", "/api/v1/live/events"), ("WS", "/api/v1/live/ws"),
    ("POST", "/api/v1/performance/test"), ("GET", "/api/v1/performance/test/{test_id}"),
    ("GET", "/api/v1/cameras/{camera_id}/whatif/{name}"), ("DELETE", "/api/v1/cameras/{camera_id}/whatif/{name}"),
}  # fmt: skip
OPEN = {"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/", "/console"}


def _path(template: str, t: Tenant) -> str:
    return template.format(cam=t.camera, line="door", zone="hall", alert=t.alert_id, rule=t.rule_id, tenant=t.name)


def test_the_matrix_covers_every_route(world):
    env, _a, _b = world
    import re

    covered = {(m, re.sub(r"\?.*", "", p)) for m, p, _r, _b in MATRIX}
    names = {"cam": "camera_id", "line": "line_id", "zone": "zone_id", "alert": "alert_id", "rule": "rule_id",
             "tenant": "tenant_id"}  # fmt: skip
    covered = {(m, re.sub(r"\{(\w+)\}", lambda g: "{" + names[g.group(1)] + "}", p)) for m, p in covered}
    for route in env.client.app.routes:
        if route.path in OPEN:
            continue
        for method in getattr(route, "methods", None) or {"WS"}:
            if method == "HEAD":
                continue
            assert (method, route.path) in covered | ELSEWHERE, f"{method} {route.path} is in no test of tenancy"


@pytest.mark.parametrize(("method", "template", "least", "body"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_endpoint_by_role_and_tenant(world, method, template, least, body):
    env, a, b = world
    path = _path(template, a)
    for role in ROLES:
        r = env.client.request(method, path, json=body, headers=bearer(a.keys[role]))
        allowed = least != "superadmin" and ROLES.index(role) >= ROLES.index(least)
        if allowed:
            assert r.status_code < 300, f"{role} of A: {method} {path} -> {r.status_code} {r.text[:300]}"
        else:
            assert r.status_code == 403, f"{role} of A: {method} {path} -> {r.status_code} {r.text[:300]}"
    for role in ("viewer", "admin"):  # B, asking for A's objects
        r = env.client.request(method, path, json=body, headers=bearer(b.keys[role]))
        assert a.marker not in r.text, f"B's {role} saw A's data: {r.text[:300]}"  # ids asked for may be echoed
        if "{" not in template or least == "superadmin":
            assert a.camera not in r.text, f"B's {role} saw A's camera: {r.text[:300]}"
            continue  # a list: B's own rows (checked below), or a refusal
        assert r.status_code in (403, 404), f"B's {role}: {method} {path} -> {r.status_code} {r.text[:200]}"
    r = env.client.request(method, path, json=body, headers=NO_AUTH)
    assert r.status_code == 401


def test_whatif_lines_are_saved_by_operators_and_seen_only_by_their_tenant(world):
    env, a, b = world
    body = {**RECOUNT, "save_as": "what-if-door"}
    path = f"/api/v1/cameras/{a.camera}/whatif/what-if-door"
    assert (
        env.client.post(f"/api/v1/cameras/{a.camera}/recount", json=body, headers=bearer(a.keys["viewer"])).status_code
        == 403
    )
    r = env.client.post(f"/api/v1/cameras/{a.camera}/recount", json=body, headers=bearer(a.keys["operator"]))
    assert r.status_code == 200, r.text
    assert env.client.get(path, headers=bearer(a.keys["viewer"])).status_code == 200
    for role in ("viewer", "admin"):  # B cannot see or remove A's what-if (RLS: as if it were not there)
        assert env.client.get(path, headers=bearer(b.keys[role])).status_code == 404
        assert env.client.delete(path, headers=bearer(b.keys[role])).status_code in (403, 404)
        assert env.client.get(f"/api/v1/cameras/{a.camera}/whatif", headers=bearer(b.keys[role])).status_code == 404
    assert env.client.delete(path, headers=bearer(a.keys["viewer"])).status_code == 403
    assert env.client.delete(path, headers=bearer(a.keys["operator"])).status_code == 204


def test_lists_and_aggregates_hold_only_the_callers_rows(world):
    env, a, b = world
    for t, other in ((a, b), (b, a)):
        h = bearer(t.keys["admin"])
        for path in ("/api/v1/cameras", "/api/v1/alerts", "/api/v1/alert-rules", "/api/v1/keys", "/api/v1/audit",
                     "/api/v1/sla/status", "/api/v1/users"):  # fmt: skip
            r = env.client.get(path, headers=h)
            assert r.status_code == 200 and other.marker not in r.text and other.camera not in r.text, path
        cams = env.client.get("/api/v1/cameras", headers=h).json()["cameras"]
        assert [c["camera_id"] for c in cams] == [t.camera]
        total = env.client.get("/api/v1/metrics?metric=crossings&timeRange=1h&interval=1h", headers=h).json()
        assert sum(d["value"] or 0 for d in total["data"]) == t.crossings  # the other's crossings are not summed
        alerts = env.client.get("/api/v1/alerts", headers=h).json()["alerts"]
        assert {al["id"] for al in alerts} == {t.alert_id}


def test_rls_holds_when_the_application_forgets_its_filter(world, db):
    _env, a, b = world
    with db.transaction():
        db.execute("SET LOCAL ROLE footfall_api")
        db.execute("SELECT set_config('app.tenant_id', %s, true), set_config('search_path', 'scoped, public', true)",
                   (a.name,))  # fmt: skip
        cams = {r[0] for r in db.execute("SELECT camera_id FROM crossing_events").fetchall()}
        assert cams == {a.camera}
        for table in ("cameras", "counting_lines", "zones", "alerts", "alert_rules", "api_keys", "occupancy_samples",
                      "stream_stats", "crossings_1m", "occupancy_1m", "stream_health_1h", "peak_hours"):  # fmt: skip
            text = json.dumps(db.execute(f"SELECT * FROM {table}").fetchall(), default=str)
            assert b.camera not in text and b.name not in text, table
    with db.transaction():  # Grafana's per-tenant reader: the same views, read-only
        db.execute("SET LOCAL ROLE footfall_reader")
        db.execute("SELECT set_config('app.tenant_id', %s, true), set_config('search_path', 'scoped, public', true)",
                   (b.name,))  # fmt: skip
        assert {r[0] for r in db.execute("SELECT camera_id FROM crossings_1m").fetchall()} == {b.camera}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("DELETE FROM cameras")
    with db.transaction():  # the hypertable itself is out of the API role's reach
        db.execute("SET LOCAL ROLE footfall_api")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("SELECT count(*) FROM public.crossing_events")
    with db.transaction():  # no tenant set: nothing at all
        db.execute("SET LOCAL ROLE footfall_api")
        db.execute("SELECT set_config('search_path', 'scoped, public', true)")
        assert db.execute("SELECT count(*) FROM crossing_events").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM cameras").fetchone()[0] == 0


def test_a_camera_id_of_another_tenant_cannot_be_taken_over(world):
    env, a, b = world
    body = {"lines": [], "name": "takeover"}
    r = env.client.put(f"/api/v1/cameras/{a.camera}", json=body, headers=bearer(b.keys["operator"]))
    assert r.status_code == 403, r.text
    r = env.client.put(f"/api/v1/cameras/{b.camera}", json={"tenant": a.name}, headers=bearer(b.keys["operator"]))
    assert r.status_code == 403 and "tenant" in r.json()["detail"]
    assert env.client.get(f"/api/v1/cameras/{a.camera}", headers=bearer(a.keys["viewer"])).json()["name"] == a.marker


def test_audit_trail_of_cameras_lines_and_keys(world, db):
    env, a, _b = world
    h = bearer(a.keys["admin"])
    cam = f"{a.name}-audited"
    rid = f"audit-{uuid.uuid4().hex[:6]}"
    assert (
        env.client.put(f"/api/v1/cameras/{cam}", json={"lines": []}, headers={**h, "X-Request-ID": rid}).status_code
        == 201
    )
    assert env.client.put(f"/api/v1/cameras/{cam}", json={"lines": [], "name": "renamed"}, headers=h).status_code == 200
    assert env.client.put(f"/api/v1/cameras/{cam}/lines/l1", json=LINE, headers=h).status_code == 200
    assert env.client.delete(f"/api/v1/cameras/{cam}/lines/l1", headers=h).status_code == 200
    assert env.client.delete(f"/api/v1/cameras/{cam}", headers=h).status_code == 204
    made = env.client.post("/api/v1/keys", json={"role": "viewer", "name": "audited"}, headers=h).json()
    assert (
        made["key"].startswith("ffk_")
        and env.client.delete(f"/api/v1/keys/{made['key_id']}", headers=h).status_code == 200
    )
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    entries = env.client.get("/api/v1/audit", params={"since": since}, headers=h).json()["entries"]
    mine = [
        (e["action"], e["object_id"]) for e in reversed(entries) if e["object_id"] in (cam, f"{cam}/l1", made["key_id"])
    ]
    assert mine == [
        ("camera.create", cam), ("camera.update", cam), ("line.put", f"{cam}/l1"), ("line.delete", f"{cam}/l1"),
        ("camera.delete", cam), ("key.create", made["key_id"]), ("key.revoke", made["key_id"]),
    ]  # fmt: skip
    by_action = {e["action"]: e for e in entries if e["object_id"] in (cam, f"{cam}/l1")}
    assert by_action["camera.create"]["request_id"] == rid and by_action["camera.create"]["before"] is None
    assert (
        by_action["camera.update"]["before"]["name"] == "" and by_action["camera.update"]["after"]["name"] == "renamed"
    )
    assert by_action["line.put"]["after"]["start"] == LINE["start"] and by_action["line.delete"]["after"] is None
    assert all(
        e["actor"].startswith("key:") and e["actor_role"] == "admin" and e["source_ip"] for e in by_action.values()
    )
    assert made["key"] not in json.dumps(entries)  # the key itself is never in the log
    # Nobody changes the log: not the API role, not even the owner.
    for who in ("footfall_api", None):
        for statement in (
            "UPDATE audit_log SET actor = 'x' WHERE tenant_id = %s",
            "DELETE FROM audit_log WHERE tenant_id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                if who:
                    db.execute(f"SET LOCAL ROLE {who}")
                    db.execute("SELECT set_config('app.tenant_id', %s, true)", (a.name,))
                db.execute(statement, (a.name,))


def test_keys_revoked_or_expired_are_refused_at_once_and_hashes_hide_them(world, db):
    env, a, _b = world
    admin = bearer(a.keys["admin"])
    made = env.client.post("/api/v1/keys", json={"role": "operator"}, headers=admin).json()
    key, key_id = made["key"], made["key_id"]
    assert env.client.get("/api/v1/cameras", headers=bearer(key)).status_code == 200  # verified and cached
    stored = db.execute("SELECT hash FROM api_keys WHERE key_id = %s", (key_id,)).fetchone()[0]
    assert stored.startswith("$argon2id$") and key.split("_", 2)[2] not in stored and key not in stored
    assert env.client.delete(f"/api/v1/keys/{key_id}", headers=admin).status_code == 200
    r = env.client.get("/api/v1/cameras", headers=bearer(key))
    assert r.status_code == 401 and r.json()["detail"] == "key revoked"
    expired = make_key(db, a.name, "viewer", expires_at=datetime.now(UTC) + timedelta(seconds=2))
    assert env.client.get("/api/v1/cameras", headers=bearer(expired)).status_code == 200
    time.sleep(2.2)
    r = env.client.get("/api/v1/cameras", headers=bearer(expired))
    assert r.status_code == 401 and r.json()["detail"] == "key expired"
    # A disabled user's keys go with them; a key never outranks its user.
    uid = f"{a.name}-user"
    assert env.client.post("/api/v1/users", json={"user_id": uid, "role": "viewer"}, headers=admin).status_code == 201
    r = env.client.post("/api/v1/keys", json={"role": "operator", "user_id": uid}, headers=admin)
    assert r.status_code == 422
    ukey = env.client.post("/api/v1/keys", json={"role": "viewer", "user_id": uid}, headers=admin).json()["key"]
    assert env.client.get("/api/v1/cameras", headers=bearer(ukey)).status_code == 200
    assert env.client.delete(f"/api/v1/users/{uid}", headers=admin).status_code == 200
    assert env.client.get("/api/v1/cameras", headers=bearer(ukey)).json()["detail"] == "user disabled"
    # An admin cannot mint a superadmin.
    assert env.client.post("/api/v1/keys", json={"role": "superadmin"}, headers=admin).status_code == 403
    # Failed authentications are audited, with the tenant when the key id is known.
    rows = db.execute(
        "SELECT after->>'reason' FROM audit_log WHERE action = 'auth.failure' AND object_id = %s", (key_id,)
    ).fetchall()
    assert ("key revoked",) in rows


def test_wrong_keys_are_rate_limited(world, db):
    env, a, _b = world
    right = make_key(db, a.name, "viewer")  # its own key: the block outlives this test
    key_id = right.split("_")[1]
    assert env.client.get("/api/v1/cameras", headers=bearer(right)).status_code == 200  # verified once
    wrong = f"ffk_{key_id}_{'x' * 43}"
    codes = [env.client.get("/api/v1/cameras", headers=bearer(wrong)).status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    r = env.client.get("/api/v1/cameras", headers=bearer(wrong))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # Its holder, verified before, goes on: a stranger's guesses do not lock the owner out.
    assert env.client.get("/api/v1/cameras", headers=bearer(right)).status_code == 200
    # A right key not verified yet under the block waits like the guesses (no argon2 for a blocked id).
    env.client.app.state.auth.cache._entries.clear()
    assert env.client.get("/api/v1/cameras", headers=bearer(right)).status_code == 429
    assert env.client.get("/api/v1/cameras", headers=bearer(a.keys["viewer"])).status_code == 200  # others go on


def test_live_push_carries_nothing_of_another_tenant(world, rds):
    from api.live import publish_alert, publish_crossing
    from models.records import Alert, CrossingEvent

    env, a, b = world
    from starlette.websockets import WebSocketDisconnect

    for url, key in ((f"/api/v1/live/ws?camera_id={a.camera}", b.keys["viewer"]),
                     (f"/api/v1/live/ws?group={a.name}-group", b.keys["viewer"]),
                     (f"/api/v1/live/ws?camera_id={a.camera}", "ffk_000000000000_" + "x" * 43)):  # fmt: skip
        with pytest.raises(WebSocketDisconnect) as refused, env.client.websocket_connect(url, headers=bearer(key)):
            pass
        assert refused.value.code == 1008
    r = env.client.get(f"/api/v1/live/events?camera_id={a.camera}", headers=bearer(b.keys["viewer"]))
    assert r.status_code == 422 and a.marker not in r.text
    with env.client.websocket_connect("/api/v1/live/ws?alerts=true", headers=bearer(b.keys["viewer"])) as ws:
        assert json.loads(ws.receive_text())["type"] == "hello"
        alert_a = Alert(alert_id="x|a@1", rule="r", camera_id=a.camera, tenant=a.name, severity="info",
                        status="active", title=a.marker, triggered_at=time.time(), updated_at=time.time())  # fmt: skip
        alert_b = Alert(alert_id="x|b@1", rule="r", camera_id=b.camera, tenant=b.name, severity="info",
                        status="active", title="for B", triggered_at=time.time(), updated_at=time.time())  # fmt: skip
        ev = CrossingEvent(event_id="e1", camera_id=a.camera, line_id="door", track_id=1, direction="in", frame_seq=1,
                           occurred_at=time.time(), processed_at=time.time(), x=1.0, y=1.0)  # fmt: skip

        async def publish() -> None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(env.settings.redis.url.get_secret_value())
            await publish_alert(client, env.prefix, alert_a)
            await publish_crossing(client, env.prefix, ev)
            await publish_alert(client, env.prefix, alert_b)
            await client.aclose()

        time.sleep(0.3)
        asyncio.run(publish())
        got = json.loads(ws.receive_text())
        assert got["data"]["title"] == "for B"  # A's alert and crossing never arrived before it
    with env.client.websocket_connect(f"/api/v1/live/ws?camera_id={a.camera}", headers=bearer(a.keys["viewer"])) as ws:
        assert json.loads(ws.receive_text())["type"] == "hello"  # the owner is served


def test_superadmin_spans_tenants_and_creates_one(world, db):
    env, a, b = world
    cams = {c["camera_id"] for c in env.client.get("/api/v1/cameras?limit=1000", headers=AUTH).json()["cameras"]}
    assert {a.camera, b.camera} <= cams
    new = f"test-tc-{uuid.uuid4().hex[:6]}"
    try:
        r = env.client.post("/api/v1/tenants", json={"tenant_id": new, "name": "City"}, headers=AUTH)
        assert r.status_code == 201 and f"{new}.camera_offline" in r.json()["alert_rules"]
        key = make_key(db, new, "admin")
        rules = env.client.get("/api/v1/alert-rules", headers=bearer(key)).json()["rules"]
        assert {r["tenant"] for r in rules} == {new} and len(rules) >= 5
    finally:
        cleanup_tenant(db, new)


def test_anonymous_reads_only_with_a_demo_tenant(stack, db, rds):
    from api_helpers import settings_for
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = settings_for(f"test-{uuid.uuid4().hex[:12]}")
    settings.auth.demo_tenant = "default"
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/cameras").status_code == 200
        r = client.put("/api/v1/cameras/demo-x", json={"lines": []})
        assert r.status_code == 403  # a viewer


def test_erasure_through_the_api_leaves_nothing_of_the_camera_or_the_tenant(world, db, rds):
    from datetime import UTC as utc

    from lifecycle_helpers import camera_rows, seed_tenant, tenant_rows

    from api.live import snapshot_key

    env, a, _b = world
    run = uuid.uuid4().hex[:6]
    tenant, cams = f"test-te-{run}", [f"test-te-{run}-c1", f"test-te-{run}-c2"]
    seed_tenant(db, tenant, cams, datetime.now(utc).replace(second=0, microsecond=0) - timedelta(hours=2), n=20)
    db.execute("UPDATE cameras SET alert_thresholds = '{}' WHERE tenant_id = %s", (tenant,))  # as the API writes
    for cam in cams:
        rds.hset(snapshot_key(env.prefix, cam), "hall", "{}")
    admin, operator = bearer(make_key(db, tenant, "admin")), bearer(make_key(db, tenant, "operator"))
    try:
        assert env.client.delete(f"/api/v1/cameras/{cams[0]}?erase=true", headers=operator).status_code == 403
        assert (
            env.client.delete(f"/api/v1/cameras/{cams[0]}?erase=true", headers=bearer(a.keys["admin"])).status_code
            == 404
        )
        assert env.client.delete(f"/api/v1/cameras/{cams[0]}?erase=true", headers=admin).status_code == 204
        assert set(camera_rows(db, [cams[0]]).values()) == {0}, camera_rows(db, [cams[0]])
        assert not rds.exists(snapshot_key(env.prefix, cams[0]))
        left = camera_rows(db, [cams[1]])
        assert left["crossing_events"] == 20 and left["crossings_1m"] > 0  # the other camera is untouched
        entry = env.client.get("/api/v1/audit?action=camera.erase", headers=admin).json()["entries"][0]
        assert entry["object_id"] == cams[0] and entry["before"]["camera_id"] == cams[0]

        assert env.client.delete(f"/api/v1/tenants/{tenant}?erase=true", headers=admin).status_code == 403
        assert env.client.delete(f"/api/v1/tenants/{tenant}", headers=AUTH).status_code == 422  # erase=true needed
        assert env.client.delete(f"/api/v1/tenants/{tenant}?erase=true", headers=AUTH).status_code == 204
        remaining = {k: v for k, v in tenant_rows(db, tenant).items() if v and k != "audit_log"}
        assert remaining == {}
        assert not rds.exists(snapshot_key(env.prefix, cams[1]))
        assert env.client.get("/api/v1/cameras", headers=admin).status_code == 401  # its keys went with it
    finally:
        cleanup_tenant(db, tenant)


def test_export_is_the_callers_tenant_as_parquet(world):
    import io
    import zipfile

    import pyarrow.parquet as pq

    env, a, b = world
    r = env.client.get(f"/api/v1/tenants/{a.name}/export", headers=bearer(a.keys["admin"]))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(r.content))
    tables = {name: pq.read_table(io.BytesIO(files.read(name))) for name in files.namelist()}
    crossings = next(t for n, t in tables.items() if "crossing_events" in n)
    assert crossings.num_rows == a.crossings and set(crossings.column("camera_id").to_pylist()) == {a.camera}
    assert all(b.camera not in str(t.to_pydict()) for t in tables.values())
    assert env.client.get(f"/api/v1/tenants/{b.name}/export", headers=bearer(a.keys["admin"])).status_code == 403
