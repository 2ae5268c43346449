"""Database health: a leader-only timer samples the database (:mod:`sql.health`) and publishes a
``DbHealth`` record to ``db-health`` (key: the database name); an agent on that topic judges the
``db_*`` rules on it.

* **Sampling** (``alerting.db_health_interval_s``, default 30 s; 0 turns it off) runs on the
  worker's leader only, one connection per sample in a thread (like the continuous-aggregate
  refresher in ``agents.sinks``), and sets the ``footfall_db_*`` gauges of that worker. A failing
  database is logged once when the outage starts and once when it ends (:class:`OutageLog`), not
  at every tick; sampling goes on meanwhile.
* **Evaluation** (when ``alerting.enabled``): each record is a subject ``db:<database>`` of the
  evaluator (``agents.alerting``): the same per-subject state in the changelogged table
  ``alert-eval``, fingerprints ``rule|db:<database>``, transitions sent to ``alert-events``.
  Database rules are platform-wide: the active rules of tenant ``default`` on the metric, never
  narrowed to a camera, group or zone (``AlertRule.check`` refuses that). Their alerts carry no
  ``camera_id``; the message placeholder ``{database}`` names the database.
* **Rows**: the sinks write each record to the ``db_health`` hypertable (``agents.rows.DB_HEALTH``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg

from agents import metrics
from agents.alert_state import DB_PREFIX
from agents.app import app, db_health_topic, settings
from agents.rows import OutageLog
from models.records import CaggLag, DbHealth, HypertableHealth
from sql import health

log = logging.getLogger("agents.db_health")

CFG = settings.alerting

# rule metric -> the record's field it judges
DB_METRICS = {
    "db_connections_pct": "connections_pct",
    "db_slow_queries": "slow_queries",
    "db_cagg_refresh_lag_s": "cagg_refresh_lag_s",
}


def record(s: health.DbHealthSample) -> DbHealth:
    """The wire record of one sample."""
    return DbHealth(
        database=s.database, at=s.at, max_connections=s.max_connections, connections=s.connections,
        connections_pct=s.connections_pct, slow_queries=s.slow_queries, longest_query_s=s.longest_query_s,
        database_bytes=s.database_bytes, cagg_refresh_lag_s=s.cagg_refresh_lag_s,
        hypertables=[HypertableHealth(hypertable=h.hypertable, total_bytes=h.total_bytes, chunks=h.chunks,
                                      compressed_chunks=h.compressed_chunks, compression_ratio=h.compression_ratio)
                     for h in s.hypertables],
        caggs=[CaggLag(view=c.view, watermark=c.watermark, lag_s=c.lag_s) for c in s.caggs],
        skipped=list(s.skipped),
    )  # fmt: skip


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _set_labelled(gauge: Any, values: dict[str, float | None]) -> None:
    """Set one series per label; drop the series whose label is gone or whose value is unknown."""
    for label, value in values.items():
        if value is None:
            with contextlib.suppress(KeyError):
                gauge.remove(label)
        else:
            gauge.labels(label).set(value)
    for (label,) in [k for k in list(gauge._metrics) if k[0] not in values]:  # prometheus_client's series
        with contextlib.suppress(KeyError):
            gauge.remove(label)


def export(h: DbHealth) -> None:
    """The ``footfall_db_*`` gauges of one sample."""
    metrics.db_connections_pct.set(_nan(h.connections_pct))
    metrics.db_slow_queries.set(_nan(h.slow_queries))
    _set_labelled(metrics.db_hypertable_bytes, {t.hypertable: float(t.total_bytes) for t in h.hypertables})
    _set_labelled(metrics.db_compression_ratio, {t.hypertable: t.compression_ratio for t in h.hypertables})
    _set_labelled(metrics.db_cagg_refresh_lag, {c.view: c.lag_s for c in h.caggs})


class Sampler:
    """The leader's timer body: sample, export, publish; an outage is logged once per state change."""

    def __init__(self, dsn: str, publish: Any, sample: Any = health.sample_dsn) -> None:
        self.dsn, self.publish, self.sample = dsn, publish, sample
        self.outage = OutageLog()
        self.samples = 0

    async def tick(self) -> DbHealth | None:
        try:
            s = await asyncio.to_thread(self.sample, self.dsn)
        except (psycopg.Error, OSError) as exc:
            if self.outage.failed(time.monotonic()):
                text = str(exc).strip().splitlines()
                log.error("database health: sampling failed (%s: %s); retried every %.0f s, logged again when it "
                          "works", type(exc).__name__, text[0] if text else "", CFG.db_health_interval_s)  # fmt: skip
            return None
        length = self.outage.recovered(time.monotonic())
        if length is not None:
            log.warning("database health: sampling works again after %.1f s", length)
        h = record(s)
        export(h)
        await self.publish(h)
        self.samples += 1
        return h


async def judge(evaluator: Any, h: DbHealth, partition: int) -> None:
    """Feed one sample to the evaluator as the subject ``db:<database>``."""
    subject = DB_PREFIX + h.database
    jobs = []
    for metric, field in DB_METRICS.items():
        value = getattr(h, field)
        if value is not None:
            jobs += [(rule, float(value)) for rule in evaluator.book.for_camera(metric, subject, "default", [])]
    if not jobs:
        return
    state = evaluator.camera(subject, partition)
    for rule, value in jobs:
        await evaluator.judge(state, rule, value, h.at)
    evaluator.save(state)


async def _publish(h: DbHealth) -> None:
    await db_health_topic.send(key=h.database.encode(), value=h.to_json())


sampler = Sampler(settings.database.url.get_secret_value(), _publish)

if CFG.db_health_interval_s > 0:
    app.timer(interval=CFG.db_health_interval_s, on_leader=True, name="footfall.db_health.sample")(sampler.tick)

if CFG.enabled:
    from agents.alerting import evaluator as _evaluator
    from agents.alerting import feed

    @app.agent(db_health_topic)
    async def evaluate_db_health(stream):  # noqa: ANN001
        await feed(stream, DbHealth, lambda h, partition: judge(_evaluator, h, partition))
