"""Every Grafana panel's SQL runs against the real schema and returns the columns its panel needs.

Grafana cannot run here, so its Postgres macros are expanded the way its TimescaleDB-enabled
datasource does (``$__timeGroupAlias(col, 5m)`` -> ``time_bucket('300s', col) AS "time"`` ...),
the ``$camera`` variable becomes a quoted list, and each query runs against the shared database,
once over a camera with fresh rows (written here, removed after) that the main panels must show.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

GRAFANA = PROJECT_ROOT / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
INTERVAL = "1m"  # what Grafana would put in $__interval for a 6 h range on a wide panel
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(interval: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", interval.strip())
    assert m, f"unsupported interval {interval!r}"
    return int(m[1]) * UNITS[m[2]]


def expand(sql: str, cameras: list[str], start: datetime, end: datetime, zones: tuple[str, ...] = ("hall",)) -> str:
    """Grafana's macros and variables, as its postgres datasource (timescaledb on) expands them."""
    ts = lambda t: f"'{t.isoformat()}'"  # noqa: E731
    cams = ",".join(f"'{c}'" for c in cameras)
    zone_list = ",".join(f"'{z}'" for z in zones)
    sql = sql.replace("${camera}", cams).replace("$camera", cams).replace("$__interval", INTERVAL)
    sql = sql.replace("${zone}", zone_list).replace("$zone", zone_list)
    sql = re.sub(
        r"\$__timeGroupAlias\(\s*([^,]+?)\s*,\s*([^)]+?)\s*\)",
        lambda m: f"time_bucket('{_seconds(m[2])}s', {m[1]}) AS \"time\"",
        sql,
    )
    sql = re.sub(
        r"\$__timeGroup\(\s*([^,]+?)\s*,\s*([^)]+?)\s*\)", lambda m: f"time_bucket('{_seconds(m[2])}s', {m[1]})", sql
    )
    sql = re.sub(r"\$__timeFilter\(\s*([^)]+?)\s*\)", lambda m: f"{m[1]} BETWEEN {ts(start)} AND {ts(end)}", sql)
    sql = sql.replace("$__timeFrom()", ts(start)).replace("$__timeTo()", ts(end))
    assert "$" not in sql, f"unexpanded macro or variable in:\n{sql}"
    return sql


def panels():
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        for p in dash["panels"]:
            for t in p.get("targets", []):
                yield pytest.param(path.name, p, t, id=f"{path.stem}:{p['title']}")


def test_dashboards_exist_and_use_the_provisioned_datasource():
    assert {p.name for p in DASHBOARDS} >= {
        "footfall-live.json",
        "footfall-trends.json",
        "footfall-camera-health.json",
        "footfall-monitoring.json",
        "footfall-zones.json",
    }
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "timescaledb.yml").read_text())["datasources"][0]
    assert ds["jsonData"]["timescaledb"] is True and "$FOOTFALL_DB_PASSWORD" in ds["secureJsonData"]["password"]
    uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] not in uids
        uids.add(dash["uid"])
        for p in dash["panels"]:
            assert p["datasource"]["uid"] == ds["uid"], p["title"]
            assert all(t["datasource"]["uid"] == ds["uid"] for t in p["targets"])
        for var in dash["templating"]["list"]:
            assert var["datasource"]["uid"] == ds["uid"]
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = " ".join(compose["volumes"])
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning" in mounts
    assert "./infra/grafana/dashboards:/var/lib/grafana/dashboards" in mounts


@pytest.fixture(scope="module")
def seeded(stack):
    """A camera with a little of everything in the last hour."""
    import psycopg

    cam = f"gf-{uuid.uuid4().hex[:10]}"
    now = time.time()
    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as conn:
        for i in range(20):
            t = now - 60 * i
            conn.execute(
                "INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction,"
                " frame_seq, processed_at, x, y) VALUES (to_timestamp(%s), %s, %s, 'door', %s, %s, %s,"
                " to_timestamp(%s), 1, 1)",
                (t, f"{cam}:{i}", cam, i, "in" if i % 3 else "out", i, t),
            )
            conn.execute(
                "INSERT INTO occupancy_samples (at, camera_id, zone_id, count, capacity, capacity_pct)"
                " VALUES (to_timestamp(%s), %s, 'hall', %s, 20, %s)",
                (t, cam, i % 7, 5.0 * (i % 7)),
            )
            for kind, dwell in (("enter", None), ("exit", 30.0 + 20 * i)):
                conn.execute(
                    "INSERT INTO zone_events (occurred_at, event_id, camera_id, zone_id, track_id, kind, frame_seq,"
                    " processed_at, dwell_s) VALUES (to_timestamp(%s), %s, %s, 'hall', %s, %s, %s, to_timestamp(%s),"
                    " %s)",
                    (t, f"{cam}:{kind}{i}", cam, i, kind, i, t, dwell),
                )
            conn.execute(
                "INSERT INTO stream_stats (at, camera_id, grabber_id, status, window_s, input_fps, processed_fps,"
                " dropped_frames, decode_errors, reconnects, latency_ms_p95, inference_ms_p95, model_name,"
                " model_version) VALUES (to_timestamp(%s), %s, 'g1', 'online', 60, 10, 9.5, %s, 0, 0, 120, 60,"
                " 'yolov8s', '8.3')",
                (t, cam, 20 - i),
            )
            conn.execute(
                "INSERT INTO line_counts_1m (bucket, camera_id, line_id, direction, count, updated_at)"
                " VALUES (time_bucket('1 minute', to_timestamp(%s)), %s, 'door', 'in', %s, now())",
                (t, cam, i),
            )
            conn.execute(
                "INSERT INTO camera_health (at, camera_id, status, stream_quality_score, frame_drop_pct, offline_s,"
                " processing_lag_ms) VALUES (to_timestamp(%s), %s, %s, %s, %s, 0, %s)",
                (t, cam, "degraded" if i % 5 == 0 else "online", 0.6 + 0.02 * i, 0.5 * (i % 4), 200 + 20 * i),
            )
        # An alert at each step of its lifecycle, so open alerts and resolution times have rows.
        for i, (status, severity) in enumerate(
            [("active", "critical"), ("acknowledged", "warning"), ("resolved", "error"), ("closed", "warning")]
        ):
            t = now - 600 * (i + 1)
            ack = t + 60 if status != "active" else None
            res = t + 300 if status in ("resolved", "closed") else None
            closed = t + 400 if status == "closed" else None
            conn.execute(
                "INSERT INTO alerts (triggered_at, alert_id, rule, camera_id, severity, status, title, updated_at,"
                " acknowledged_at, acknowledged_by, resolved_at, closed_at) VALUES (to_timestamp(%s), %s,"
                " 'poor_stream_quality', %s, %s, %s, 'test alert', to_timestamp(%s), to_timestamp(%s), %s,"
                " to_timestamp(%s), to_timestamp(%s))",
                (t, f"{cam}:a{i}", cam, severity, status, closed or res or ack or t, ack, ack and "gf", res, closed),
            )
        yield cam
        tables = ("crossing_events", "zone_events", "occupancy_samples", "stream_stats", "line_counts_1m",
                  "camera_health", "alerts")  # fmt: skip
        for table in tables:
            conn.execute(f"DELETE FROM {table} WHERE camera_id = %s", (cam,))


# Panels that must show the seeded camera (the rest may legitimately be empty, e.g. an hour or a
# day that the caggs have not seen for a fresh camera is still answered by real-time aggregation).
MUST_HAVE_ROWS = {
    "Occupancy now",
    "Capacity use now",
    "Occupancy over time",
    "In / out per line",
    "In / out per line in range",
    "Crossings in the last 15 minutes",
    "Live per-minute counts (window counts)",
    "Entries and exits per hour",
    "Entries and exits per day",
    "Peak hour per camera and day",
    "Busiest hours of the day",
    "Peak occupancy per day",
    "Cameras now",
    "Processed frames per second",
    "Uptime per hour",
    "Model inference p95",
    "Camera health now",
    "Stream quality score",
    "Processing lag",
    "Frame drop %",
    "Model performance: inference p95 by model",
    "Active alerts",
    "Alerts per hour by severity",
    "Alert resolution times",
    "Zone entries and exits per hour",
    "Zone entries and exits per day",
    "Dwell time median and p90 per hour",
    "Occupancy peak vs capacity per hour",
    "Zones in range",
    "Occupancy peak per day and when",
}


@pytest.mark.parametrize(("dashboard", "panel", "target"), list(panels()))
def test_panel_sql_runs_with_expected_columns(pg, seeded, dashboard, panel, target):
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(days=2)
    sql = expand(target["rawSql"], [seeded], start, end)
    cur = pg.execute(sql)
    cols = [d.name for d in cur.description]
    rows = cur.fetchall()
    if target["format"] == "time_series":
        assert cols[0] == "time", cols
        assert "metric" in cols and len(cols) >= 3, cols
    else:
        assert cols and len(set(cols)) == len(cols), cols
    if panel["title"] in MUST_HAVE_ROWS:
        assert rows, f"{dashboard}: {panel['title']} shows nothing for a camera with fresh data"
        if "camera_id" in cols:
            assert seeded in {r[cols.index("camera_id")] for r in rows}, f"{dashboard}: {panel['title']}"


def test_camera_variable_lists_the_seeded_camera(pg, seeded):
    for path in DASHBOARDS:
        (var,) = [v for v in json.loads(path.read_text())["templating"]["list"] if v["name"] == "camera"]
        cams = {r[0] for r in pg.execute(var["query"]).fetchall()}
        assert seeded in cams, path.name


def test_expand():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    got = expand("SELECT $__timeGroupAlias(at, $__interval) WHERE $__timeFilter(at) AND c IN ($camera)", ["a"], t0, t0)
    assert got == (
        "SELECT time_bucket('60s', at) AS \"time\" WHERE at BETWEEN '2026-01-01T00:00:00+00:00' AND "
        "'2026-01-01T00:00:00+00:00' AND c IN ('a')"
    )


def test_dashboard_json_is_tidy():
    for path in DASHBOARDS:
        text = Path(path).read_text()
        assert text.endswith("\n") and json.loads(text)
