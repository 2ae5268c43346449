"""The topic catalogue: every topic the platform uses, in one place.

Names are ``<prefix>.<name>.v<major>``; a breaking schema change gets a new major and a new topic.
Camera-keyed topics share one partition count so that one camera's detections, configuration
and outputs are co-partitioned and owned by one worker.

>>> [t.name for t in catalogue("footfall", 12)][:2]
['footfall.detections.v1', 'footfall.stream-stats.v1']
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models import records
from models.base import WireRecord

if TYPE_CHECKING:
    from core.settings import KafkaSettings

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    value_type: type[WireRecord]
    partitions: int
    key: str
    compacted: bool = False
    retention_ms: int | None = None
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Broker-side topic configuration."""
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.compacted:
            cfg["min.compaction.lag.ms"] = "0"
            cfg["segment.ms"] = str(HOUR_MS)
        return cfg | self.extra_config


# name -> (value type, key, compacted, retention); partitions come from settings.
_TOPICS: dict[str, tuple[type[WireRecord], str, bool, int | None]] = {
    "detections": (records.FrameDetections, "camera_id", False, 3 * DAY_MS),
    "stream-stats": (records.StreamStats, "camera_id", False, 7 * DAY_MS),
    "camera-config": (records.CameraConfig, "camera_id", True, None),
    "crossings": (records.CrossingEvent, "camera_id", False, 7 * DAY_MS),
    "zone-events": (records.ZoneEvent, "camera_id", False, 7 * DAY_MS),
    "tracks": (records.TrackSummary, "camera_id", False, 7 * DAY_MS),
    "window-counts": (records.WindowCount, "camera_id", False, 7 * DAY_MS),
    "occupancy": (records.OccupancySample, "camera_id", False, 7 * DAY_MS),
    "alert-rules": (records.AlertRule, "rule_id", True, None),
    "alert-events": (records.AlertEvent, "alert_id", False, 30 * DAY_MS),
    "alerts": (records.Alert, "alert_id", True, None),
    "camera-health": (records.CameraHealth, "camera_id", False, 7 * DAY_MS),
    "db-health": (records.DbHealth, "database", False, 7 * DAY_MS),
    "dead-letter": (records.DeadLetter, "source topic", False, 14 * DAY_MS),
}


def topic_name(prefix: str, name: str, major: int = 1) -> str:
    if name not in _TOPICS:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(_TOPICS)}")
    return f"{prefix}.{name}.v{major}"


def catalogue(prefix: str, partitions: int) -> list[TopicSpec]:
    """Every topic with its broker configuration."""
    return [
        TopicSpec(topic_name(prefix, name), vtype, partitions, key, compacted, retention)
        for name, (vtype, key, compacted, retention) in _TOPICS.items()
    ]


def ensure_topics(
    bootstrap: str, specs: list[TopicSpec], timeout_s: float = 30.0, *, kafka: KafkaSettings | None = None
) -> list[str]:
    """Create the topics that do not exist yet (the broker does not auto-create). Returns the names
    created. An existing topic with fewer partitions is an error: it would split cameras. ``kafka``:
    whose SASL/TLS settings to use (default: the process settings)."""
    from confluent_kafka.admin import AdminClient, NewTopic  # adapter import kept out of the catalogue

    from models.kafka_security import librdkafka_security

    # librdkafka's own lines (a "%6|...|BGQUEUE|" notice as the client closes) go through logging,
    # not straight to stderr, where they came before the main job's first line
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": log, **librdkafka_security(kafka)})
    existing = admin.list_topics(timeout=timeout_s).topics
    for spec in specs:
        if spec.name in existing and len(existing[spec.name].partitions) != spec.partitions:
            raise RuntimeError(
                f"topic {spec.name} has {len(existing[spec.name].partitions)} partitions, "
                f"the catalogue says {spec.partitions}; repartitioning moves cameras between workers, "
                "do it deliberately (new topic) rather than silently"
            )
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config())
        for s in specs
        if s.name not in existing
    ]
    if not new:
        return []
    created = []
    for name, fut in admin.create_topics(new, operation_timeout=timeout_s).items():
        try:
            fut.result()
            created.append(name)
        except Exception as exc:  # a concurrent creator got there first: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
