"""The app without services: OpenAPI document, auth refusals (which answer before any database
access), and the live message shapes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.live import camera_channel, group_channel, message_for_crossing, message_for_occupancy, snapshot_key
from core.settings import Settings
from models.records import CrossingEvent, OccupancySample


@pytest.fixture
def client_for():
    def make(token: str | None) -> TestClient:
        settings = Settings(api_token=SecretStr(token) if token else None)
        return TestClient(create_app(settings), raise_server_exceptions=False)  # no lifespan: no services

    return make


def test_openapi_lists_the_endpoints_and_bearer_auth(client_for):
    spec = client_for("t").get("/openapi.json").json()
    paths = spec["paths"]
    for p in ("/api/v1/metrics", "/api/v1/sla/status", "/api/v1/alerts", "/health", "/api/v1/cameras/{camera_id}"):
        assert p in paths
    assert {"from", "to", "interval", "line_id"} <= {
        p["name"] for p in paths["/api/v1/cameras/{camera_id}/counts"]["get"]["parameters"]
    }
    assert {"metric", "timeRange", "aggregation", "interval"} <= {
        p["name"] for p in paths["/api/v1/metrics"]["get"]["parameters"]
    }
    assert paths["/api/v1/cameras/{camera_id}"]["put"]["security"] == [{"HTTPBearer": []}]
    assert paths["/api/v1/cameras/{camera_id}"]["get"]["security"] == [{"HTTPBearer": []}]  # reads too
    assert "security" not in paths["/health"]["get"]
    assert "password" in json.dumps(spec["components"]["schemas"]["StreamIn"])


def test_openapi_shows_detection_and_tracking_settings(client_for):
    from core.tracking import TrackerParams
    from models.records import TrackingSettings

    schemas = client_for("t").get("/openapi.json").json()["components"]["schemas"]
    assert {"imgsz", "confidence", "nms_iou", "region"} <= set(schemas["DetectionIn"]["properties"])
    tracking = schemas["TrackingIn"]["properties"]
    assert set(tracking) == set(TrackingSettings._options.fields) - {"schema_version"}
    assert f"null = the default ({TrackerParams().high_conf!r})" in tracking["high_conf"]["description"]


def test_requests_without_a_key_are_refused_with_how_to(client_for):
    r = client_for(None).get("/api/v1/cameras")
    assert r.status_code == 401 and "python -m api keys create" in r.json()["detail"]
    r = client_for(None).put("/api/v1/cameras/cam-1", json={}, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401 and r.json()["detail"] == "the API key is not valid"


def test_writes_need_the_right_bearer_token(client_for):
    c = client_for("sekret")
    r = c.delete("/api/v1/cameras/cam-1")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.delete("/api/v1/cameras/cam-1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert (
        c.put("/api/v1/cameras/cam-1/lines/a", json={}, headers={"Authorization": "Basic c2VrcmV0"}).status_code == 401
    )


def test_live_messages():
    ev = CrossingEvent(event_id="e", camera_id="c", line_id="l", track_id=1, direction="out", frame_seq=2,
                       occurred_at=5.0, processed_at=6.0, x=1.0, y=2.0)  # fmt: skip
    m = message_for_crossing(ev)
    assert m["type"] == "crossing" and m["at"] == 5.0 and m["data"]["direction"] == "out"
    assert "schema_version" not in m["data"]
    o = message_for_occupancy(OccupancySample(camera_id="c", zone_id="z", at=7.0, count=3))
    assert (o["type"], o["zone_id"], o["data"]["count"]) == ("occupancy", "z", 3)
    assert camera_channel("p", "c") != group_channel("p", "c") and snapshot_key("p", "c").startswith("p:")
