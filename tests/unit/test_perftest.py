"""The performance self-test's pure parts: camera schedules per type, bounds, percentiles, the
comparison with the simulator's truth, the aggregate refresh windows; request validation and auth
through the app (answered before any service is touched)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from api import perftest
from api.app import create_app
from api.perftest import MAX_CAMERAS, PerfTestRequest, cameras_at, peak_cameras, plan
from core.settings import Settings


def test_load_is_steady_n_cameras_for_the_whole_run():
    tranches = plan("load", 30, 7)
    assert len(tranches) == 1
    assert [cameras_at(tranches, t) for t in (0, 10, 29.9)] == [7, 7, 7]
    assert cameras_at(tranches, 30) == 0


def test_spike_is_a_tenfold_burst_in_the_middle():
    tranches = plan("spike", 100, 3)
    base, burst = tranches
    assert (base.start_s, base.duration_s, base.cameras) == (0, 100, 3)
    assert burst.cameras == 27 and burst.start_s == 40 and burst.end_s == 60  # centred, 20 % of the run
    assert cameras_at(tranches, 10) == 3 and cameras_at(tranches, 50) == 30 and cameras_at(tranches, 70) == 3
    assert peak_cameras(tranches) == 30
    assert plan("spike", 10, 1)[1].duration_s == 5.0  # never shorter than 5 s


@pytest.mark.parametrize("duration,cameras", [(30, 50), (300, 50), (10, 1), (45, 7), (300, 3)])
def test_stress_ramps_up_to_the_ceiling_and_never_past_it(duration, cameras):
    tranches = plan("stress", duration, cameras)
    counts = [cameras_at(tranches, t) for t in range(0, duration)]
    assert counts == sorted(counts), "a ramp only goes up"
    assert counts[-1] == cameras == peak_cameras(tranches)
    assert all(t.end_s == duration for t in tranches)
    assert len({t.name for t in tranches}) == len(tranches)  # distinct camera ids per tranche
    assert len(tranches) == 1 or counts[0] < cameras


@pytest.mark.parametrize("kind", perftest.TEST_TYPES)
def test_every_plan_stays_within_the_bounds(kind):
    for duration in (10, 37, 300):
        for cameras in (1, 5) if kind == "spike" else (1, 13, MAX_CAMERAS):
            tranches = plan(kind, duration, cameras)
            assert peak_cameras(tranches) <= MAX_CAMERAS
            assert max(t.end_s for t in tranches) <= duration
            ids = [c for t in tranches for c in perftest.camera_ids("abc123", t)]
            assert len(ids) == len(set(ids)) and all(c.startswith("perf-abc123-") for c in ids)


def test_plan_refuses_out_of_bounds():
    bad = [("soak", 30, 1), ("load", 5, 1), ("load", 301, 1), ("load", 30, 0), ("load", 30, 51), ("spike", 30, 6)]
    for args in bad:
        with pytest.raises(ValueError):
            plan(*args)


def test_camera_ids_match_the_simulator():
    from streams.simulator import Simulation

    t = plan("load", 30, 3)[0]
    sim = Simulation(cameras=3, camera_prefix=perftest.tranche_prefix("f00d", t))
    assert perftest.camera_ids("f00d", t) == sim.camera_ids


def test_request_validation():
    assert PerfTestRequest(type="load", duration=30).camera_count == perftest.DEFAULT_CAMERAS["load"]
    assert PerfTestRequest(type="spike", duration=30, cameras=5).camera_count == 5
    bad = [
        {"type": "soak", "duration": 30},
        {"type": "load", "duration": 301},
        {"type": "load", "duration": 1},
        {"type": "load", "duration": 30, "cameras": MAX_CAMERAS + 1},
        {"type": "load", "duration": 30, "cameras": 0},
        {"type": "spike", "duration": 30, "cameras": 6},
        {"type": "load", "duration": 30, "fps": 100},
        {"duration": 30},
    ]
    for body in bad:
        with pytest.raises(ValidationError):
            PerfTestRequest(**body)


def test_percentiles_and_latency_summary():
    assert perftest.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert perftest.percentile(list(map(float, range(101))), 99) == 99.0
    s = perftest.latency_summary([0.1, 0.2, 0.3])
    assert s == {"n": 3, "p50_ms": 200.0, "p99_ms": 298.0, "max_ms": 300.0}
    assert perftest.latency_summary([])["p99_ms"] is None


def test_compare_counts_flags_lines_off_by_more_than_their_slack():
    doc = {
        "lines": {"c1": {"l1": {"in": 10, "out": 5}}, "c2": {"l1": {"in": 2, "out": 0}}},
        "under_way": {"c1": {"l1": {"at_start": 1, "at_end": 0}}},
    }
    ok = perftest.compare_counts([doc], {("c1", "l1", "in"): 9, ("c1", "l1", "out"): 5, ("c2", "l1", "in"): 2})
    assert ok["within_slack"] and ok["expected"] == 17 and ok["counted"] == 16
    off = perftest.compare_counts([doc], {("c1", "l1", "in"): 10, ("c1", "l1", "out"): 5, ("c3", "l9", "in"): 1})
    assert not off["within_slack"] and off["lines_off"] == ["c2/l1", "c3/l9"]


def test_refresh_windows_cover_the_test_but_never_the_current_bucket():
    start = datetime(2026, 3, 1, 10, 58, 30, tzinfo=UTC)
    now = start + timedelta(minutes=3)
    got = {v: (a, b) for v, a, b in perftest.refresh_windows(start, now, now)}
    assert got["crossings_1m"] == (start.replace(second=0), now.replace(second=0))
    assert got["crossings_1h"] == (start.replace(minute=0, second=0), now.replace(minute=0, second=0))
    assert "crossings_1d" not in got  # still the current day: real-time aggregation covers it
    order = [v for v, _, _ in perftest.refresh_windows(start, now, now)]
    assert order.index("crossings_1m") < order.index("crossings_1h")


@pytest.fixture
def client():
    return TestClient(create_app(Settings(api_token=SecretStr("t"))), raise_server_exceptions=False)


def test_post_needs_the_token_and_a_valid_body(client):
    body = {"type": "load", "duration": 30}
    assert client.post("/api/v1/performance/test", json=body).status_code == 401
    wrong = client.post("/api/v1/performance/test", json=body, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    auth = {"Authorization": "Bearer t"}
    r = client.post("/api/v1/performance/test", json={"type": "load", "duration": 3000}, headers=auth)
    assert r.status_code == 422 and "duration" in r.json()["detail"]
    r = client.post("/api/v1/performance/test", json={"type": "spike", "duration": 30, "cameras": 9}, headers=auth)
    assert r.status_code == 422 and "cameras" in r.json()["detail"]
    r = client.post("/api/v1/performance/test", json={"type": "chaos", "duration": 30}, headers=auth)
    assert r.status_code == 422 and "type" in r.json()["detail"]
    spec = client.get("/openapi.json").json()["paths"]
    assert spec["/api/v1/performance/test"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "/api/v1/performance/test/{test_id}" in spec
