"""Record -> row conversion, statement shape, in-batch de-duplication and outage bookkeeping."""

from __future__ import annotations

import doctest
import json

import pytest

import agents.rows as rows_mod
from agents.rows import (
    ALERTS,
    CAMERA_HEALTH,
    CROSSINGS,
    DB_HEALTH,
    OCCUPANCY,
    SPECS,
    STREAM_STATS,
    TRACKS,
    WINDOW_COUNTS,
    ZONE_EVENTS,
    OutageLog,
)
from models.records import (
    Alert,
    CaggLag,
    CameraHealth,
    CrossingEvent,
    DbHealth,
    HypertableHealth,
    OccupancySample,
    StreamStats,
    TrackSummary,
    WindowCount,
    ZoneEvent,
)

T = 1_763_900_000.0


def samples():
    return {
        CROSSINGS: CrossingEvent(
            event_id="e1", camera_id="c1", line_id="l1", track_id=3, direction="in", frame_seq=9,
            occurred_at=T, processed_at=T + 0.2, x=1.0, y=2.0, confidence=0.8,
        ),
        ZONE_EVENTS: ZoneEvent(
            event_id="z1", camera_id="c1", zone_id="z", track_id=3, kind="exit", frame_seq=9,
            occurred_at=T, processed_at=T + 0.2, dwell_s=4.5,
        ),
        WINDOW_COUNTS: WindowCount(
            camera_id="c1", line_id="l1", direction="out", window_start=T - 20, window_end=T + 40,
            count=7, updated_at=T + 1,
        ),
        OCCUPANCY: OccupancySample(camera_id="c1", zone_id="z", at=T, count=4, capacity=10, capacity_pct=40.0),
        STREAM_STATS: StreamStats(
            camera_id="c1", grabber_id="g", at=T, status="online", window_s=10.0, input_fps=10.0,
            processed_fps=9.5, dropped_frames=1, decode_errors=0, reconnects=0,
        ),
        CAMERA_HEALTH: CameraHealth(
            camera_id="c1", at=T, status="online", stream_quality_score=0.93, frame_drop_pct=1.5, offline_s=0.0,
            processing_lag_ms=120.0, detections_per_frame=2.5, mean_confidence=0.61, model_drift_score=0.04,
        ),
        ALERTS: Alert(
            alert_id="a1", rule="camera_offline", severity="critical", status="active", title="x",
            triggered_at=T, updated_at=T,
        ),
        DB_HEALTH: DbHealth(
            database="footfall", at=T, max_connections=100, connections=5, connections_pct=5.0, slow_queries=0,
            hypertables=[HypertableHealth(hypertable="alerts", total_bytes=8192, chunks=1)],
            caggs=[CaggLag(view="crossings_1m", watermark=T - 60, lag_s=60.0)], skipped=["x: y"],
        ),
    }  # fmt: skip


@pytest.mark.parametrize("spec", [s for s in SPECS if s is not TRACKS], ids=lambda s: s.name)
def test_row_matches_columns_and_record(spec):
    rec = samples()[spec]
    row = spec.row(rec)
    assert len(row) == len(spec.columns)
    for col, value in zip(spec.columns, row, strict=True):
        field = {"bucket": "window_start", "tenant_id": "tenant"}.get(col.name, col.name)
        expected = getattr(rec, field)
        if col.array_type == "jsonb":  # sent as JSON text
            expected = json.dumps([e.asdict() if hasattr(e, "asdict") else e for e in expected], default=str)
        assert expected == value, col.name
    params = spec.params([row, row])
    assert len(params) == len(spec.columns) and all(len(p) == 2 for p in params)
    assert spec.sql.count("%s") == len(spec.columns)
    assert f"INSERT INTO {spec.table} AS t" in spec.sql


def test_track_row_sends_the_path_as_array_literals_with_its_bounding_box():
    rec = TrackSummary(
        event_id="c1:7:0", camera_id="c1", track_id=7, segment=0, final=True, first_seen=T, last_seen=T + 2,
        path=[[0.0, 10.0, 100.0, 80.0], [1.0, 50.5, 90.0, 82.0], [2.0, 90.0, 95.0, 84.0]], tolerance_px=1.0,
        confirmed_t=0.2, mean_speed=40.0, max_speed=45.0, processed_at=T + 3, lines=[["door", "in", T + 1]],
        zones=[["hall", T + 0.5, 1.0]],
    )  # fmt: skip
    row = dict(zip([c.name for c in TRACKS.columns], TRACKS.row(rec), strict=True))
    assert row["xs"] == "{10.0,50.5,90.0}" and row["ts"] == "{0.0,1.0,2.0}" and row["hs"] == "{80.0,82.0,84.0}"
    assert (row["x_min"], row["x_max"], row["y_min"], row["y_max"]) == (10.0, 90.0, 90.0, 100.0)
    assert json.loads(row["lines"]) == [["door", "in", T + 1]] and row["first_seen"] == T
    assert "xs::real[]" in TRACKS.sql and "to_timestamp(first_seen)" in TRACKS.sql


def test_epoch_columns_are_converted_by_the_server():
    assert "to_timestamp(occurred_at)" in CROSSINGS.sql
    assert "to_timestamp(bucket)" in WINDOW_COUNTS.sql
    assert "ON CONFLICT DO NOTHING" in CROSSINGS.sql


def test_params_of_nothing():
    assert CROSSINGS.params([]) == [[] for _ in CROSSINGS.columns]


def test_window_counts_newest_emission_per_key_wins_within_a_batch():
    def wc(count, updated, line="l1"):
        return WINDOW_COUNTS.row(
            WindowCount(
                camera_id="c", line_id=line, direction="in", window_start=T, window_end=T + 60,
                count=count, updated_at=updated,
            )
        )  # fmt: skip

    rows = WINDOW_COUNTS.prepare([wc(1, T + 1), wc(3, T + 3), wc(2, T + 2), wc(5, T + 1, line="l2")])
    assert sorted((r[2], r[4]) for r in rows) == [("l1", 3), ("l2", 5)]


def test_event_tables_keep_duplicates_for_do_nothing():
    row = CROSSINGS.row(samples()[CROSSINGS])
    assert CROSSINGS.prepare([row, row]) == [row, row]


def test_outage_log_logs_once_per_state_change():
    log = OutageLog()
    assert log.recovered(1.0) is None
    assert [log.failed(t) for t in (2.0, 3.0, 4.0)] == [True, False, False]
    assert log.attempts == 3
    assert log.recovered(7.0) == 5.0
    assert log.failed(8.0) is True


def test_split_halves():
    assert rows_mod.split_halves([1, 2, 3]) == ([1], [2, 3])


def test_doctests():
    assert doctest.testmod(rows_mod).failed == 0
