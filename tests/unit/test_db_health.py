"""Database health without a database: the DbHealth record, database-scope rules, sql.health's pure
parts, the sampler's outage logging and gauges, and how a sample is judged (``agents.db_health``).
The sample against the real database is ``tests/integration/test_db_health_pipeline.py``."""

from __future__ import annotations

import asyncio
import doctest
import json
import logging
import math
from typing import Any

import psycopg
import pytest

import sql.health
from agents import db_health, metrics
from agents.alert_state import CameraAlerts, db_database, fingerprint
from agents.rows import DB_HEALTH
from core.alerting import METRICS
from models.base import SchemaError, parse
from models.records import AlertRule, CaggLag, DbHealth, HypertableHealth
from models.topics import catalogue
from sql.health import CaggLagSample, DbHealthSample, HypertableSize, cagg_lag, compression_ratio

T = 1_763_900_000.0


def health(**over: Any) -> DbHealth:
    data: dict[str, Any] = {"database": "footfall", "at": T, "max_connections": 100, "connections": 95,
                            "connections_pct": 95.0, "slow_queries": 0}  # fmt: skip
    return DbHealth(**(data | over))


# ----------------------------------------------------------------------------- the record


def test_record_round_trip_with_nested_figures():
    h = health(
        hypertables=[HypertableHealth(hypertable="crossing_events", total_bytes=10, chunks=2, compressed_chunks=1,
                                      compression_ratio=4.0)],
        caggs=[CaggLag(view="crossings_1m", watermark=T - 60, lag_s=60.0)],
        skipped=["connections: no"],
    )  # fmt: skip
    back = parse(DbHealth, h.to_json())
    assert back.hypertables[0].compression_ratio == 4.0 and back.caggs[0].lag_s == 60.0
    assert back.skipped == ["connections: no"] and back.connections_pct == 95.0


@pytest.mark.parametrize(
    ("over", "field"),
    [({"database": "bad name"}, "database"), ({"connections_pct": -1.0}, "connections_pct"),
     ({"slow_queries": -2}, "slow_queries"), ({"cagg_refresh_lag_s": -0.5}, "cagg_refresh_lag_s")],
)  # fmt: skip
def test_record_errors_name_the_field(over, field):
    with pytest.raises(SchemaError) as info:
        health(**over)
    assert info.value.field == field


def test_unknown_figures_may_be_none():
    h = DbHealth(database="footfall", at=T)
    assert h.connections_pct is None and h.hypertables == [] and h.skipped == []


def test_topic_is_keyed_by_database():
    [spec] = [t for t in catalogue("footfall", 3) if t.name == "footfall.db-health.v1"]
    assert spec.value_type is DbHealth and spec.key == "database" and not spec.compacted


# ----------------------------------------------------------------------------- database rules


def test_database_metrics_have_their_scope():
    db = {m for m, (scope, _) in METRICS.items() if scope == "database"}
    assert db == {"db_connections_pct", "db_slow_queries", "db_cagg_refresh_lag_s"}
    assert set(db_health.DB_METRICS) == db


def db_rule(**over: Any) -> AlertRule:
    data = {"rule_id": "dbconn", "metric": "db_connections_pct", "comparison": ">", "threshold": 80.0} | over
    return parse(AlertRule, data)


def test_a_database_rule():
    r = db_rule(message="{database} at {value} %")
    assert r.tenant == "default" and r.camera_id is None


@pytest.mark.parametrize(
    ("over", "field"),
    [({"camera_id": "cam-1"}, "camera_id"), ({"group": "lobby"}, "group"), ({"zone_id": "z1"}, "zone_id"),
     ({"tenant": "acme"}, "tenant"), ({"metric": "db_slow_queries", "camera_id": "c"}, "camera_id")],
)  # fmt: skip
def test_database_rules_cannot_be_narrowed(over, field):
    with pytest.raises(SchemaError) as info:
        db_rule(**over)
    assert info.value.field == field
    assert "per database" in info.value.reason


def test_camera_rules_still_take_a_camera_and_the_database_placeholder():
    r = parse(AlertRule, {"rule_id": "q", "metric": "stream_quality_score", "comparison": "<", "threshold": 0.7,
                          "camera_id": "cam-1", "message": "{camera_id} {database}"})  # fmt: skip
    assert r.camera_id == "cam-1"


def test_db_subjects():
    assert db_database("db:footfall") == "footfall" and db_database("cam-1") is None
    assert fingerprint("database_high_connections", "db:footfall") == "database_high_connections|db:footfall"


# ----------------------------------------------------------------------------- sql.health, pure parts


def test_compression_ratio_and_cagg_lag():
    assert compression_ratio(900, 300) == 3.0 and compression_ratio(0, 0) is None
    assert cagg_lag(T, T - 90) == (T - 90, 90.0)
    assert cagg_lag(T, T + 5) == (T + 5, 0.0)  # a watermark past now (real-time buckets ahead) is no lag
    assert cagg_lag(T, None) == (None, None)


def test_largest_lag_of_the_aggregates():
    s = DbHealthSample("footfall", T, caggs=[CaggLagSample("a", T - 10, 10.0), CaggLagSample("b", None, None),
                                            CaggLagSample("c", T - 70, 70.0)])  # fmt: skip
    assert s.cagg_refresh_lag_s == 70.0 and s.asdict()["cagg_refresh_lag_s"] == 70.0
    assert DbHealthSample("footfall", T).cagg_refresh_lag_s is None


def test_doctests():
    assert doctest.testmod(sql.health).failed == 0


# ----------------------------------------------------------------------------- row, gauges, sampler


def sample() -> DbHealthSample:
    return DbHealthSample(
        database="footfall", at=T, max_connections=100, connections=12, connections_pct=12.0, slow_queries=1,
        longest_query_s=2.5, database_bytes=1000,
        hypertables=[HypertableSize("crossing_events", 800, 3, 1, 5.0), HypertableSize("alerts", 100, 1, 0, None)],
        caggs=[CaggLagSample("crossings_1m", T - 120, 120.0)], skipped=[],
    )  # fmt: skip


def test_record_of_a_sample_and_its_row():
    h = db_health.record(sample())
    assert h.cagg_refresh_lag_s == 120.0 and h.hypertables[0].compression_ratio == 5.0
    row = DB_HEALTH.row(h)
    cols = [c.name for c in DB_HEALTH.columns]
    assert row[cols.index("connections_pct")] == 12.0
    assert json.loads(row[cols.index("hypertables")])[1] == {
        "hypertable": "alerts",
        "total_bytes": 100,
        "chunks": 1,
        "compressed_chunks": 0,
        "compression_ratio": None,
    }
    assert json.loads(row[cols.index("skipped")]) == []


def gauge(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels or None)


def test_gauges_follow_the_samples():
    db_health.export(db_health.record(sample()))
    assert gauge("footfall_db_connections_pct") == 12.0 and gauge("footfall_db_slow_queries") == 1.0
    assert gauge("footfall_db_hypertable_bytes", hypertable="crossing_events") == 800.0
    assert gauge("footfall_db_compression_ratio", hypertable="crossing_events") == 5.0
    assert gauge("footfall_db_compression_ratio", hypertable="alerts") is None  # nothing compressed
    assert gauge("footfall_db_cagg_refresh_lag_seconds", view="crossings_1m") == 120.0
    db_health.export(DbHealth(database="footfall", at=T + 30, skipped=["connections: none"]))
    assert math.isnan(gauge("footfall_db_connections_pct"))
    assert gauge("footfall_db_hypertable_bytes", hypertable="crossing_events") is None  # gone


def test_sampler_logs_an_outage_once_and_keeps_sampling(caplog):
    published: list[DbHealth] = []
    calls = {"n": 0}

    def flaky(dsn: str) -> DbHealthSample:
        calls["n"] += 1
        if 2 <= calls["n"] <= 4:
            raise psycopg.OperationalError("connection refused")
        return sample()

    async def publish(h: DbHealth) -> None:
        published.append(h)

    s = db_health.Sampler("postgresql://x", publish, sample=flaky)
    with caplog.at_level(logging.WARNING, logger="agents.db_health"):
        for _ in range(6):
            asyncio.run(s.tick())
    assert calls["n"] == 6 and len(published) == 3
    failed = [r for r in caplog.records if "sampling failed" in r.getMessage()]
    back = [r for r in caplog.records if "works again" in r.getMessage()]
    assert len(failed) == 1 and len(back) == 1
    assert "connection refused" in failed[0].getMessage() and "postgresql://x" not in caplog.text


# ----------------------------------------------------------------------------- judging a sample


class FakeEvaluator:
    """The parts of agents.alerting.Evaluator that db_health.judge uses."""

    def __init__(self, rules: list[AlertRule]) -> None:
        from agents.alerting import RuleBook

        self.book = RuleBook()
        for r in rules:
            self.book.apply(r.rule_id.encode(), r.to_json())
        self.subjects: dict[str, CameraAlerts] = {}
        self.judged: list[tuple[str, str, float, float]] = []
        self.saved = 0

    def camera(self, subject: str, partition: int) -> CameraAlerts:
        return self.subjects.setdefault(subject, CameraAlerts(subject, partition))

    async def judge(self, cam: CameraAlerts, rule: AlertRule, value: float, at: float) -> None:
        self.judged.append((cam.camera_id, rule.rule_id, value, at))

    def save(self, cam: CameraAlerts) -> None:
        self.saved += 1


def test_a_sample_is_judged_as_a_database_subject_by_the_default_tenants_rules():
    ev = FakeEvaluator([db_rule(), db_rule(rule_id="slow", metric="db_slow_queries", threshold=5.0),
                        db_rule(rule_id="cam", metric="frame_drop_pct")])  # fmt: skip
    asyncio.run(db_health.judge(ev, health(connections_pct=95.0, slow_queries=2), partition=1))
    assert sorted(ev.judged) == [("db:footfall", "dbconn", 95.0, T), ("db:footfall", "slow", 2.0, T)]
    assert ev.subjects["db:footfall"].partition == 1 and ev.saved == 1


def test_unknown_figures_are_not_judged():
    ev = FakeEvaluator([db_rule()])
    asyncio.run(db_health.judge(ev, DbHealth(database="footfall", at=T), partition=0))
    assert ev.judged == [] and ev.subjects == {}
