"""The Faust application: the app, its topics and its tables in one place.

Run a worker with ``faust -A agents.app worker -l info`` (``make run`` does it for you). Agents live
in the modules beside this one and are found by autodiscovery when the worker starts:

- ``agents.counting``: detections -> tracker + lines + zones -> crossings, zone events, occupancy,
  window counts; camera configuration from the compacted config topic; live views.
- ``agents.sinks``: crossings, window counts, occupancy and stream stats -> TimescaleDB.
- ``agents.push``: crossings and occupancy -> Redis pub/sub and snapshots for the API's live push.
- ``agents.alerting``: alert rules evaluated over stream stats, occupancy and timers; the alert
  lifecycle and its notifications (``agents.channels``).

Every source topic is read as raw bytes and parsed with ``models.base.parse`` so that a malformed
message is routed to the dead-letter topic (``agents.deadletter``) instead of stopping the agent.
"""

from __future__ import annotations

import faust

from core.settings import get_settings
from models.kafka_security import faust_credentials
from models.topics import topic_name

settings = get_settings()
PREFIX = settings.kafka.topic_prefix
PARTITIONS = settings.kafka.partitions
APP_ID = settings.worker.app_id or f"{PREFIX}-worker"
settings.worker.datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level

app = faust.App(
    APP_ID,
    broker=f"kafka://{settings.kafka.bootstrap}",
    broker_credentials=faust_credentials(settings.kafka),  # None (Faust's default) for PLAINTEXT
    store="memory://",  # tables are rebuilt from their changelog topics on start
    autodiscover=True,
    origin="agents",
    datadir=str(settings.worker.datadir / APP_ID),
    topic_partitions=PARTITIONS,
    topic_replication_factor=settings.kafka.replication_factor,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    producer_compression_type="lz4",
    # faust's repaired Cython fast paths (opt-in in 0.15): the stream takes queued events without an
    # extra await and the conductor decodes once. Counting worker, 100 cameras backlog: +10-18 %
    # frames/s (bench/agents_throughput.py, paired runs); the SIGKILL exactly-once test passes with it.
    cython_optimizations=True,
    web_host=settings.http.host,
    web_port=settings.http.worker_web_port,
    canonical_url=settings.worker.canonical_url or f"http://{settings.http.host}:{settings.http.worker_web_port}",
)


def source_topic(name: str) -> faust.TopicT:
    """One of the catalogue's topics (created by ``python -m infra.topics``), keys and values raw."""
    return app.topic(
        topic_name(PREFIX, name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PARTITIONS,
    )


detections_topic = source_topic("detections")
stream_stats_topic = source_topic("stream-stats")
camera_config_topic = source_topic("camera-config")
crossings_topic = source_topic("crossings")
zone_events_topic = source_topic("zone-events")
tracks_topic = source_topic("tracks")
window_counts_topic = source_topic("window-counts")
occupancy_topic = source_topic("occupancy")
alert_rules_topic = source_topic("alert-rules")
alert_events_topic = source_topic("alert-events")
alerts_topic = source_topic("alerts")
camera_health_topic = source_topic("camera-health")
db_health_topic = source_topic("db-health")
dead_letter_topic = source_topic("dead-letter")
