"""The worker's Prometheus metrics, served at ``GET /metrics`` on its web port (Faust's web server,
``FOOTFALL_HTTP__WORKER_WEB_PORT``), next to the live views.

Counters are per worker process; per-camera gauges cover the cameras this worker owns. Scraped as
job ``worker`` by the local stack's Prometheus (``make up``, 127.0.0.1:9090) and by docker-compose's
(``infra/prometheus/prometheus.yml``); the shipped alerting rules are ``infra/prometheus/rules.yml``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agents.app import app

REGISTRY = CollectorRegistry(auto_describe=True)
CAM = ["camera_id"]

sink_rows = Counter("footfall_sink_rows", "Rows written by the sinks (replays included)", ["table"], registry=REGISTRY)
sink_batch_seconds = Histogram(
    "footfall_sink_batch_seconds", "Time to write one batch, retries included", ["table"], registry=REGISTRY
)
sink_outage = Gauge("footfall_sink_outage", "1 while a sink's database writes fail and it retries", ["table"],
                    registry=REGISTRY)  # fmt: skip
frames_counted = Counter("footfall_worker_frames", "Frames tracked and counted by this worker", registry=REGISTRY)
evaluations = Counter("footfall_alert_evaluations", "Rule evaluations (one rule on one value)", registry=REGISTRY)
transitions = Counter("footfall_alert_transitions", "Incidents fired or resolved", ["kind"], registry=REGISTRY)
deliveries = Counter(
    "footfall_alert_deliveries",
    "Notifications by outcome (delivered, dead_lettered) and event",
    ["outcome", "event"],
    registry=REGISTRY,
)
stream_quality = Gauge("footfall_camera_stream_quality", "Stream quality score 0..1 (core.alerting)", CAM,
                       registry=REGISTRY)  # fmt: skip
offline_seconds = Gauge("footfall_camera_offline_seconds", "Seconds since the camera last reported online", CAM,
                        registry=REGISTRY)  # fmt: skip
model_drift = Gauge(
    "footfall_camera_model_drift", "Drift score 0..1 of the camera's detections (core.alerting)", CAM, registry=REGISTRY
)
detections_per_frame = Gauge(
    "footfall_camera_detections_per_frame", "People detected per frame since the last stream report", CAM,
    registry=REGISTRY,
)  # fmt: skip
mean_confidence = Gauge(
    "footfall_camera_mean_confidence", "Mean detection confidence since the last stream report", CAM, registry=REGISTRY
)
processing_lag = Gauge(
    "footfall_camera_processing_lag_seconds", "Capture -> counted for the camera's newest frame", CAM, registry=REGISTRY
)
# Database health (sql.health), set by the worker that samples it (the leader; NaN on the others
# and where a figure could not be sampled, e.g. connections on PGlite); labelled ones are absent then.
db_connections_pct = Gauge("footfall_db_connections_pct", "Connections in use, percent of max_connections",
                           registry=REGISTRY)  # fmt: skip
db_slow_queries = Gauge("footfall_db_slow_queries", "Queries active for more than 1 s", registry=REGISTRY)
db_hypertable_bytes = Gauge("footfall_db_hypertable_bytes", "Total bytes of a hypertable", ["hypertable"],
                            registry=REGISTRY)  # fmt: skip
db_compression_ratio = Gauge("footfall_db_compression_ratio", "Bytes before / after compression of compressed chunks",
                             ["hypertable"], registry=REGISTRY)  # fmt: skip
db_cagg_refresh_lag = Gauge("footfall_db_cagg_refresh_lag_seconds", "now - watermark of a continuous aggregate",
                            ["view"], registry=REGISTRY)  # fmt: skip
db_connections_pct.set(float("nan"))
db_slow_queries.set(float("nan"))


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])
