"""Alerting state without Faust: what the ``alert-eval`` and ``alert-lifecycle`` tables hold, how a
stream-stats report becomes metric values, and how an alert event changes an alert (:func:`fold`).
``agents.alerting`` is the Faust shell around these; the unit tests use them directly
(``tests/unit/test_alert_state.py``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from core import alerting as core
from models.base import parse
from models.records import Alert, AlertEvent, AlertLogEntry, AlertRule, StreamStats

log = logging.getLogger("agents.alerting")


@dataclass
class CameraAlerts:
    """One camera's evaluation state (JSON in the ``alert-eval`` table)."""

    camera_id: str
    partition: int
    first_seen_at: float | None = None
    last_online_at: float | None = None
    counters: dict[str, Any] = field(default_factory=dict)  # the previous report's totals and its grabber
    states: dict[str, core.RuleState] = field(default_factory=dict)  # fingerprint -> state
    # the detections the drift score compares with: {"model", "confidence": [...], "height": [...]}
    baseline: dict[str, Any] | None = None
    # count anomalies per "line_id:direction": {"hour", "minutes": {window_start: count},
    # "baselines": {hour of day: [mean, var, days]}} (agents/anomaly.py)
    hours: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """Written on every stream-stats report, so by hand (``dataclasses.asdict`` was 2/3 of the
        evaluation cost in bench/alerts.py); a state is the list of :class:`RuleState`'s fields."""
        return orjson.dumps(
            {
                "camera_id": self.camera_id,
                "partition": self.partition,
                "first_seen_at": self.first_seen_at,
                "last_online_at": self.last_online_at,
                "counters": self.counters,
                "baseline": self.baseline,
                "hours": self.hours,
                "states": {fp: [getattr(s, f) for f in _STATE_FIELDS] for fp, s in self.states.items()},
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> CameraAlerts:
        data = orjson.loads(raw)
        data["states"] = {fp: core.RuleState(*s) for fp, s in data.get("states", {}).items()}
        return cls(**data)


_STATE_FIELDS = tuple(f.name for f in fields(core.RuleState))


@dataclass
class DetectionProfile:
    """Histograms of one camera's detections since the drift score last looked (confidence and box
    height, bins of :data:`core.alerting.CONFIDENCE_EDGES` / :data:`HEIGHT_EDGES_PX`). Fed by the
    counting agent with every frame, read by the evaluator at each stream-stats report."""

    confidence: list[int] = field(default_factory=lambda: [0] * (len(core.CONFIDENCE_EDGES) - 1))
    height: list[int] = field(default_factory=lambda: [0] * (len(core.HEIGHT_EDGES_PX) - 1))
    detections: int = 0
    # since the last stream-stats report (model performance: detections per frame, mean confidence)
    window_frames: int = 0
    window_detections: int = 0
    window_confidence: float = 0.0

    def add(self, boxes: Any) -> None:
        for _x1, y1, _x2, y2, conf in boxes:
            self.confidence[core.bin_index(conf, core.CONFIDENCE_EDGES)] += 1
            self.height[core.bin_index(y2 - y1, core.HEIGHT_EDGES_PX)] += 1
            self.window_confidence += conf
        self.detections += len(boxes)
        self.window_detections += len(boxes)
        self.window_frames += 1

    def take_window(self) -> tuple[float | None, float | None]:
        """(detections per frame, mean confidence) since the last call; None without frames/detections."""
        per_frame = self.window_detections / self.window_frames if self.window_frames else None
        mean_conf = self.window_confidence / self.window_detections if self.window_detections else None
        self.window_frames = self.window_detections = 0
        self.window_confidence = 0.0
        return (
            None if per_frame is None else round(per_frame, 3),
            None if mean_conf is None else round(mean_conf, 4),
        )


def drift(cam: CameraAlerts, profile: DetectionProfile, model: str, min_detections: int) -> float | None:
    """The camera's drift score for ``profile`` (None until it holds ``min_detections``). The first
    full profile of a model becomes the camera's baseline (score 0); a new model starts a new one."""
    if profile.detections < min_detections:
        return None
    if cam.baseline is None or cam.baseline.get("model") != model:
        cam.baseline = {"model": model, "confidence": list(profile.confidence), "height": list(profile.height)}
        return 0.0
    b = cam.baseline
    return core.drift_score([core.psi(b["confidence"], profile.confidence), core.psi(b["height"], profile.height)])


# Database metrics are judged on a subject "db:<database>" in place of a camera (agents/db_health.py):
# same state, table and fingerprints (``rule|db:<database>``).
DB_PREFIX = "db:"


def db_database(subject: str) -> str | None:
    """The database a subject stands for, None for a camera.

    >>> db_database("db:footfall"), db_database("cam-1")
    ('footfall', None)
    """
    return subject[len(DB_PREFIX) :] if subject.startswith(DB_PREFIX) else None


def fingerprint(rule_id: str, camera_id: str, zone_id: str | None = None) -> str:
    return f"{rule_id}|{camera_id}" + (f"/{zone_id}" if zone_id else "")


def stats_metrics(s: StreamStats, cam: CameraAlerts, target_fps: float) -> dict[str, float]:
    """The camera metrics one stream-stats report gives (updates the camera's counter baseline)."""
    prev = cam.counters if cam.counters.get("grabber") == s.grabber_id else {}
    dropped = core.counter_delta(s.dropped_frames, prev.get("dropped"))
    decode = core.counter_delta(s.decode_errors, prev.get("decode"))
    reconnects = core.counter_delta(s.reconnects, prev.get("reconnects"))
    cam.counters = {
        "grabber": s.grabber_id,
        "dropped": s.dropped_frames,
        "decode": s.decode_errors,
        "reconnects": s.reconnects,
    }
    frames = s.input_fps * s.window_s
    parts = core.quality_components(
        s.processed_fps, target_fps, frames, dropped, decode, reconnects, s.latency_ms_p95, s.frame_height
    )
    values = {
        "stream_quality_score": core.stream_quality_score(parts, online=s.status != "offline"),
        "frame_drop_pct": round(100.0 * dropped / frames, 3) if frames > 0 else 0.0,
    }
    if s.inference_ms_p95 is not None:
        values["inference_ms_p95"] = s.inference_ms_p95
    if s.latency_ms_p95 is not None:
        values["capture_latency_ms_p95"] = s.latency_ms_p95
    return values


@dataclass
class Outgoing:
    """One notification to one channel, kept until it is delivered or dead-lettered."""

    key: str  # idempotency key: <alert_id>:<event>
    event: str
    channel: str
    done: bool = False


@dataclass
class AlertRecord:
    """One alert's state in the ``alert-lifecycle`` table."""

    alert: dict[str, Any]  # the Alert as JSON
    partition: int
    outbox: list[Outgoing] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> AlertRecord:
        data = json.loads(raw)
        data["outbox"] = [Outgoing(**o) for o in data.get("outbox", [])]
        return cls(**data)

    def record(self) -> Alert:
        return parse(Alert, self.alert)


def channels_for(rule: AlertRule | None, default: list[str], escalation: bool = False) -> list[str]:
    """Where a notification goes: the rule's channels (or ``default``), its escalation channels."""
    if rule is None:
        return [] if escalation else list(default)
    if escalation:
        return list(rule.escalation_channels)
    return list(rule.channels) or list(default)


def fold(
    rec: AlertRecord | None, event: AlertEvent, rule: AlertRule | None, partition: int, default: list[str] = ()
) -> AlertRecord | None:
    """The alert after one event (None when the event changes nothing). Adds the notifications the
    change calls for to the outbox."""
    if event.kind == "fired":
        if rec is not None or event.alert is None:
            return None  # a repeat (replay after a crash): the alert exists
        alert = json.loads(event.alert.to_json())
        alert["log"] = [json.loads(AlertLogEntry(at=event.at, action="fired").to_json())]
        new = AlertRecord(alert, partition)
        notify(new, "fired", channels_for(rule, list(default)))
        return new
    if rec is None:
        log.warning("alert event %s for unknown alert %s ignored", event.kind, event.alert_id)
        return None
    alert = rec.alert
    action = "resolve" if event.kind == "resolved" else event.kind
    status, changed = core.next_status(alert["status"], action)
    if not changed and action != "note":
        return None
    alert["status"] = status
    alert["updated_at"] = max(float(alert["updated_at"]), event.at)
    entry = AlertLogEntry(at=event.at, action=event.kind, by=event.by, note=event.note)
    alert["log"] = [*alert.get("log", []), json.loads(entry.to_json())]
    if event.metric_value is not None:
        alert["metric_value"] = event.metric_value
    if action == "acknowledge":
        alert["acknowledged_at"], alert["acknowledged_by"] = event.at, event.by
    elif action == "resolve":
        alert["resolved_at"], alert["resolved_by"] = event.at, event.by or "condition cleared"
        notify(rec, "resolved", channels_for(rule, list(default)))
    elif action == "close":
        alert["closed_at"] = event.at
    return rec


def notify(rec: AlertRecord, event: str, channels: list[str]) -> None:
    key = f"{rec.alert['alert_id']}:{event}"
    have = {(o.key, o.channel) for o in rec.outbox}
    for ch in channels:
        if (key, ch) not in have:
            have.add((key, ch))
            rec.outbox.append(Outgoing(key, event, ch))
