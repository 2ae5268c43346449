"""The alerting API on the real stack: rule CRUD (validated, stored, published to the compacted
alert-rules topic), the built-in rules published at start, and people's actions on alerts
(checked against the stored status, published to alert-events)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from agents_helpers import drain, values
from api_helpers import AUTH, api_env

pytestmark = pytest.mark.integration

RULE = {
    "metric": "camera_offline_s",
    "comparison": ">",
    "threshold": 120,
    "severity": "critical",
    "channels": ["webhook:https://ops.example.org/hooks/abc", "email:ops@example.org"],
}


@pytest.fixture(scope="module")
def env(stack, db):
    client = redis.Redis(host=stack.redis_host, port=stack.redis_port)
    with api_env(stack, db, client) as e:
        db.execute("INSERT INTO tenants (tenant_id) VALUES (%s)", (e.tenant,))
        yield e
    client.close()


def topic(env, name: str) -> str:
    return f"{env.prefix}.{name}.v1"


def test_builtin_rules_are_listed_and_published_at_start(env, stack):
    rules = {r["rule_id"]: r for r in env.client.get("/api/v1/alert-rules").json()["rules"]}
    builtins = {"camera_offline", "poor_stream_quality", "high_processing_latency", "zone_over_capacity",
                "ai_model_drift", "database_high_connections", "count_anomaly"}  # fmt: skip
    assert builtins <= set(rules)
    assert rules["camera_offline"]["threshold"] == 300 and rules["camera_offline"]["severity"] == "critical"
    assert env.client.get("/api/v1/alert-rules/camera_offline").json()["metric"] == "camera_offline_s"
    published = drain(stack.bootstrap, topic(env, "alert-rules"), until=lambda m: len(m) >= 4, timeout_s=30)
    assert {"camera_offline", "zone_over_capacity"} <= {m.key().decode() for m in published}


def test_rule_crud_publishes_every_change(env, stack):
    rid = f"{env.tenant}-offline"
    body = {**RULE, "rule_id": rid, "tenant": env.tenant}
    assert env.client.post("/api/v1/alert-rules", json=body, headers={"Authorization": ""}).status_code == 401  # no key
    r = env.client.post("/api/v1/alert-rules", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["threshold"] == 120 and r.json()["channels"] == RULE["channels"]
    assert env.client.post("/api/v1/alert-rules", json=body, headers=AUTH).status_code == 409
    r = env.client.put(f"/api/v1/alert-rules/{rid}", json={**RULE, "tenant": env.tenant, "threshold": 60}, headers=AUTH)
    assert r.status_code == 200 and r.json()["threshold"] == 60
    assert env.client.get("/api/v1/alert-rules", params={"tenant": env.tenant}).json()["rules"][0]["threshold"] == 60
    assert env.client.delete(f"/api/v1/alert-rules/{rid}", headers=AUTH).status_code == 204
    assert env.client.get(f"/api/v1/alert-rules/{rid}").status_code == 404
    assert env.client.delete(f"/api/v1/alert-rules/{rid}", headers=AUTH).status_code == 404

    mine = [m for m in drain(stack.bootstrap, topic(env, "alert-rules"), idle_s=3) if m.key().decode() == rid]
    assert [json.loads(m.value())["threshold"] if m.value() else None for m in mine] == [120, 60, None]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"threshold": None}, "threshold"),
        ({"metric": "vibes"}, "metric"),
        ({"comparison": "~"}, "comparison"),
        ({"resolve_threshold": 500}, "resolve_threshold"),
        ({"channels": ["webhook:ftp://example.org/x"]}, "channels[0]"),
        ({"channels": ["pager:42"]}, "channels[0]"),
        ({"escalation_delay_s": 60}, "escalation_channels"),
        ({"message": "{camera}"}, "message"),
        ({"zone_id": "hall"}, "zone_id"),
        ({"severity": "fatal"}, "severity"),
    ],
)
def test_a_bad_rule_is_a_422_naming_the_field(env, change, field):
    body = {**RULE, "rule_id": f"{env.tenant}-bad", "tenant": env.tenant, **change}
    r = env.client.post("/api/v1/alert-rules", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json().get("field") == field, r.json()


def test_actions_follow_the_lifecycle(env, db, stack):
    cam = env.camera_id()
    alert_id = f"camera_offline|{cam}@{int(time.time() * 1000)}"
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO alerts (triggered_at, alert_id, rule, camera_id, severity, status, title, updated_at) "
        "VALUES (%s, %s, 'camera_offline', %s, 'critical', 'active', 'Camera offline', %s)",
        (now - timedelta(minutes=1), alert_id, cam, now),
    )
    try:
        url = f"/api/v1/alerts/{alert_id}"
        assert env.client.get(url).json()["status"] == "active"
        assert (
            env.client.post(f"{url}/acknowledge", json={"by": "alice"}, headers={"Authorization": ""}).status_code
            == 401
        )
        assert env.client.post(f"{url}/close", json={"by": "alice"}, headers=AUTH).status_code == 409
        r = env.client.post(f"{url}/acknowledge", json={"by": "alice", "note": "looking"}, headers=AUTH)
        assert r.status_code == 202 and r.json()["status"] == "acknowledged"
        assert env.client.post(f"{url}/notes", json={"by": "bob", "note": "cable"}, headers=AUTH).status_code == 202
        assert env.client.post("/api/v1/alerts/nope/acknowledge", json={}, headers=AUTH).status_code == 404
        events = values(drain(stack.bootstrap, topic(env, "alert-events"), until=lambda m: len(m) >= 2))
        assert [(e["alert_id"], e["kind"], e["by"], e["note"]) for e in events] == [
            (alert_id, "acknowledge", "alice", "looking"),
            (alert_id, "note", "bob", "cable"),
        ]
        listed = env.client.get("/api/v1/alerts", params={"camera_id": cam, "rule": "camera_offline"}).json()
        assert [a["id"] for a in listed["alerts"]] == [alert_id]
        assert env.client.get("/api/v1/alerts", params={"status": "closed", "camera_id": cam}).json()["alerts"] == []
    finally:
        db.execute("DELETE FROM alerts WHERE camera_id = %s", (cam,))


def test_rule_ids_never_leak_channel_secrets_in_errors(env):
    body = {**RULE, "rule_id": f"{env.tenant}-{uuid.uuid4().hex[:4]}", "tenant": env.tenant,
            "channels": ["slack:https://hooks.slack.com/services/T000/B000/SECRETTOKEN", "webhook:nope"]}  # fmt: skip
    r = env.client.post("/api/v1/alert-rules", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["field"] == "channels[1]"
    assert "SECRETTOKEN" not in r.text


def test_prometheus_metrics_count_requests_by_route_template(env):
    env.client.get("/api/v1/alert-rules/camera_offline")
    env.client.get(f"/api/v1/alert-rules/{uuid.uuid4().hex}")  # a 404, same route template
    text = env.client.get("/metrics").text
    assert 'footfall_api_requests_total{method="GET",route="/api/v1/alert-rules/{rule_id}",status="2xx"}' in text
    assert 'footfall_api_requests_total{method="GET",route="/api/v1/alert-rules/{rule_id}",status="4xx"}' in text
    assert "footfall_api_request_duration_seconds_bucket" in text
