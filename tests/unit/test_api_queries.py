"""Pure rules of the API: durations, ranges, aggregate choice, SLA, config <-> rows, auth, views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from api import queries
from api.auth import token_matches
from api.queries import INTERVALS, METRICS, ParamError
from api.routes.live import subscription
from core.camera import DEFAULT_CAMERA
from models.base import parse
from models.records import CameraConfig

NOW = datetime(2026, 5, 6, 13, 45, 10, tzinfo=UTC)


@pytest.mark.parametrize("text,expected", [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("2w", 1209600)])
def test_parse_duration(text, expected):
    assert queries.parse_duration(text).total_seconds() == expected


@pytest.mark.parametrize("text", ["", "24", "1y", "-1h", "0h", "1.5h", "9999999d", "h"])
def test_parse_duration_refuses_with_the_parameter_name(text):
    with pytest.raises(ParamError, match="^timeRange: "):
        queries.parse_duration(text, "timeRange")


def test_time_range_defaults_align_and_limits():
    hour = INTERVALS["hour"]
    start, end = queries.time_range(None, None, hour.default_span, hour.step, NOW)
    assert end == NOW and start == datetime(2026, 5, 5, 13, tzinfo=UTC)  # back to the bucket start
    start, _ = queries.time_range(datetime(2026, 5, 1, 7, 30), NOW, hour.default_span, timedelta(days=1), NOW)
    assert start == datetime(2026, 5, 1, tzinfo=UTC)  # naive = UTC, floored to the day
    with pytest.raises(ParamError, match="^from: must be before to"):
        queries.time_range(NOW, NOW - timedelta(hours=1), hour.default_span, hour.step, NOW)
    with pytest.raises(ParamError, match="^interval: .* buckets"):
        queries.time_range(NOW - timedelta(days=30), NOW, hour.default_span, timedelta(minutes=1), NOW)


def test_counts_and_occupancy_read_the_continuous_aggregates():
    assert "FROM crossings_1h" in queries.counts_sql(INTERVALS["hour"], "line", False)
    assert "AND line_id = %(line_id)s" in queries.counts_sql(INTERVALS["minute"], "line", True)
    assert "FROM crossings_1d" in queries.counts_sql(INTERVALS["day"], "camera", False)
    sql = queries.occupancy_sql(INTERVALS["day"], True)
    assert "FROM occupancy_1d" in sql and "sum(count_sum)::double precision / nullif(sum(samples), 0)" in sql


def test_metric_source_by_interval():
    m = METRICS["processed_fps"]
    assert queries.metric_source(m, timedelta(hours=1))[0] == "stream_health_1h"
    assert queries.metric_source(m, timedelta(minutes=5))[0] == "stream_stats"
    assert queries.metric_source(METRICS["crossings"], timedelta(days=1))[0] == "crossings_1d"
    assert queries.metric_source(METRICS["occupancy"], timedelta(hours=3))[0] == "occupancy_1h"
    assert queries.metric_source(METRICS["crossings"], timedelta(minutes=5))[0] == "crossings_1m"
    with pytest.raises(ParamError, match="whole hours"):
        queries.metric_source(METRICS["reconnects"], timedelta(minutes=5))
    assert "count(*)" in queries.metrics_sql(m, "count", timedelta(hours=1), False)
    assert "AND camera_id = %(camera_id)s" in queries.metrics_sql(m, "max", timedelta(hours=1), True)


def test_totals_and_summary():
    rows = [
        {"line_id": "a", "entries": 3, "exits": 1},
        {"line_id": "b", "entries": 2, "exits": 0},
        {"line_id": "a", "entries": 5, "exits": 0},
    ]
    t = queries.totals(rows, "line_id")
    assert t["*"] == {"in": 10, "out": 1, "total": 11} and t["a"] == {"in": 8, "out": 1, "total": 9}
    assert queries.totals([], "line_id") == {"*": {"in": 0, "out": 0, "total": 0}}
    assert queries.summary([1.0, None, 3.0]) == {"min": 1.0, "max": 3.0, "avg": 2.0}
    assert queries.summary([]) == {"min": None, "max": None, "avg": None}


@pytest.mark.parametrize(
    "uptime,response,errors,samples,status",
    [
        (100.0, 50.0, 0.0, 5, "healthy"),
        (99.0, 50.0, 0.0, 5, "critical"),
        (100.0, 50.0, 0.06, 5, "critical"),
        (100.0, 1500.0, 0.0, 5, "warning"),
        (100.0, 50.0, 0.02, 5, "warning"),
        (None, None, None, 0, "unknown"),
    ],
)
def test_sla_status(uptime, response, errors, samples, status):
    assert queries.sla_status(uptime, response, errors, samples) == status


def test_sla_figures_weight_by_samples():
    rows = [
        {"samples": 3, "online_samples": 3, "response_ms": 100.0, "frames_in": 100.0, "frame_errors": 1},
        {"samples": 1, "online_samples": 0, "response_ms": 500.0, "frames_in": 0.0, "frame_errors": 0},
    ]
    f = queries.sla_figures(rows)
    assert f["uptime"] == 75.0 and f["responseTime"] == 200.0 and f["errorRate"] == 0.01
    assert f["status"] == "critical" and f["samples"] == 4


def _config() -> CameraConfig:
    return parse(
        CameraConfig,
        {
            "camera_id": "cam-1",
            "name": "Door",
            "tenant": "t1",
            "location": "hq",
            "groups": ["lobby", "floor-1"],
            "timezone": "Europe/Paris",
            "stream": {"url": "rtsp://viewer@cam/s", "username": "viewer", "target_fps": 12.5},
            "detection": {"imgsz": 480, "confidence": 0.3, "nms_iou": 0.45, "region": [[0, 0], [10, 0], [10, 10]]},
            "tracking": {"min_hits": 3, "hysteresis_px": 4.5, "count_touching": False},
            "lines": [{"line_id": "door", "start": [1, 2], "end": [3, 4], "count": "in_only"}],
            "zones": [
                {"zone_id": "hall", "polygon": [[0, 0], [5, 0], [5, 5]], "capacity": 9, "alert_threshold_pct": 0.7}
            ],
            "updated_at": 1_700_000_000.25,
        },
    )


def _as_db(row: dict) -> dict:
    """What reading the row back gives: jsonb decoded, reals rounded to float4."""
    import struct

    out = dict(row)
    for k in ("detection_region", "alert_thresholds", "polygon", "tracking"):
        if isinstance(out.get(k), str):
            out[k] = json.loads(out[k])
    for k in (
        "detection_confidence",
        "detection_nms_iou",
        "stream_timeout_s",
        "stream_retry_interval_s",
        "target_fps",
        "alert_threshold_pct",
    ):
        if out.get(k) is not None:
            out[k] = struct.unpack("f", struct.pack("f", out[k]))[0]
    return out


def test_config_rows_round_trip():
    cfg = queries.normalise(_config())
    cam = _as_db(queries.camera_row(cfg))
    back = queries.config_from_rows(
        cam, [_as_db(r) for r in queries.line_rows(cfg)], [_as_db(r) for r in queries.zone_rows(cfg)], cfg.groups
    )
    assert json.loads(back.to_json()) == {**json.loads(cfg.to_json()), "groups": ["floor-1", "lobby"]}


def test_config_rows_keep_defaults_open():
    """No imgsz (follow the stream), no NMS IoU, no tracking overrides: stored as NULLs and read
    back as such, so the defaults of the running release apply."""
    cfg = queries.normalise(parse(CameraConfig, {"camera_id": "cam-2", "tracking": {}}))
    row = queries.camera_row(cfg)
    assert (row["detection_imgsz"], row["detection_nms_iou"], row["tracking"]) == (None, None, "{}")
    back = queries.config_from_rows(_as_db(row), [], [], [])
    assert json.loads(back.to_json()) == json.loads(cfg.to_json())
    assert back.detection.imgsz is None and back.tracking.camera_params() == DEFAULT_CAMERA
    row = queries.camera_row(queries.normalise(parse(CameraConfig, {"camera_id": "cam-3"})))
    assert row["tracking"] is None


def test_camera_view_never_carries_a_password():
    view = queries.camera_view(_config(), has_password=True)
    assert view["stream"]["has_password"] is True
    assert "password" not in json.dumps(view).replace("has_password", "")
    assert "schema_version" not in json.dumps(view)


def test_token_comparison():
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd") and not token_matches("abc", "")
    assert not token_matches("abc", "ä")  # non-ASCII input does not raise


def test_live_subscription():
    assert subscription("p", ["b", "a", "a"], ["g"]) == ["p:live:camera:a", "p:live:camera:b", "p:live:group:g"]
    with pytest.raises(ParamError, match="at least one"):
        subscription("p", [], [])
    with pytest.raises(ParamError, match="^group: "):
        subscription("p", [], ["bad id"])
    with pytest.raises(ParamError, match="at most"):
        subscription("p", [f"c{i}" for i in range(101)], [])
