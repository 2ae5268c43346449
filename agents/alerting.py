"""Alerting in the stream: rules from a compacted topic, evaluation per camera, one writer per alert.

Three parts, each a thin shell around :mod:`core.alerting` (the rules themselves):

* **Rules** (:class:`RuleBook`): every worker reads the whole compacted ``alert-rules`` topic with
  its own group-less consumer and keeps the newest rule per id; a tombstone deletes it. A rule
  changed through the API applies at the next evaluation, without a restart.
* **Evaluation** (:class:`Evaluator`): stream-stats and occupancy samples (keyed by camera, so
  co-partitioned with the detections) are turned into metric values and fed to
  :func:`core.alerting.evaluate`, one state per fingerprint (``rule|camera[/zone]``) in the
  changelogged table ``alert-eval`` (key camera_id). A timer samples what no message says: how
  long a camera has been silent (absence), and the counting agent's processing latency. A
  transition (fired / resolved) is first sent to ``alert-events`` and acknowledged by the broker,
  then the state is written: a crash in between re-evaluates the same input into the same
  incident id (ids are computed from the data), which the lifecycle writer ignores as a repeat.
* **Lifecycle and delivery** (:class:`Lifecycle`): ``alert-events`` (key alert_id: the evaluator's
  fired/resolved and the API's acknowledge/resolve/close/note) are folded into each alert with
  :func:`core.alerting.next_status` in the changelogged table ``alert-lifecycle``; every change is
  sent to the compacted ``alerts`` topic (the sink writes the table, the push reaches WebSockets).
  Notifications go to an outbox kept in the same state and are delivered by background tasks
  (``agents.channels``), so a slow webhook never holds up evaluation or other alerts; a
  delivered (or dead-lettered) entry is marked done in the state. After a crash the timer re-sends
  what is not marked done: at-least-once, with the same idempotency key, so receivers dedupe.
  The timer also escalates alerts left unacknowledged past their rule's delay.

Times: values are judged in event time (a report's ``at``); absence and escalation need a clock
and use the worker's wall clock (NTP-synchronised hosts assumed), after ``startup_grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from agents import metrics
from agents.alert_state import (
    AlertRecord,
    CameraAlerts,
    Outgoing,
    channels_for,
    db_database,
    drift,
    fingerprint,
    fold,
    notify,
    stats_metrics,
)
from agents.app import (
    PREFIX,
    alert_events_topic,
    alert_rules_topic,
    alerts_topic,
    app,
    camera_health_topic,
    dead_letter_topic,
    occupancy_topic,
    settings,
    stream_stats_topic,
)
from agents.channels import DeliveryError, deliver, notification, parse_channel
from agents.deadletter import dead_letter
from core import alerting as core
from models.base import SchemaError, parse
from models.records import (
    Alert,
    AlertEvent,
    AlertLogEntry,
    AlertRule,
    CameraHealth,
    OccupancySample,
    StreamStats,
)

log = logging.getLogger("agents.alerting")
R = TypeVar("R")

CFG = settings.alerting
DEFAULT_TARGET_FPS = 10.0  # StreamSettings.target_fps's default, for cameras without a stream config


# ----------------------------------------------------------------------------- rules


class RuleBook:
    """The newest version of every rule, from the compacted rules topic."""

    def __init__(self) -> None:
        self.rules: dict[str, AlertRule] = {}
        self.loaded = asyncio.Event()
        # (metric, tenant, camera_id or "*") -> active rules: a report looks up its camera's rules
        # instead of scanning every rule (10,000 camera-scoped rules: 20 ms -> µs per report)
        self._index: dict[tuple[str, str, str], list[AlertRule]] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        rule_id = key.decode("utf-8", "replace")
        if value is None:
            old = self.rules.pop(rule_id, None)
            if old is not None:
                self._unindex(old)
                log.info("alert rule %s deleted", rule_id)
            return
        try:
            rule = parse(AlertRule, value)
        except SchemaError as exc:
            log.warning("alert rule %s ignored: %s", rule_id, exc)
            return
        old = self.rules.get(rule_id)
        if old is None or rule.updated_at >= old.updated_at:
            if old is not None:
                self._unindex(old)
            self.rules[rule_id] = rule
            if rule.active:
                self._index.setdefault(self._key(rule), []).append(rule)
            log.info("alert rule %s: %s %s %s (active=%s)", rule_id, rule.metric, rule.comparison, rule.threshold,
                     rule.active)  # fmt: skip

    @staticmethod
    def _key(rule: AlertRule) -> tuple[str, str, str]:
        return rule.metric, rule.tenant, rule.camera_id or "*"

    def _unindex(self, rule: AlertRule) -> None:
        bucket = self._index.get(self._key(rule), [])
        bucket[:] = [r for r in bucket if r.rule_id != rule.rule_id]

    def for_camera(self, metric: str, camera_id: str, tenant: str, groups: list[str]) -> list[AlertRule]:
        """The active rules on ``metric`` that apply to this camera."""
        found = self._index.get((metric, tenant, camera_id), []) + self._index.get((metric, tenant, "*"), [])
        return [r for r in found if r.group is None or r.group in groups]


rulebook = RuleBook()


async def follow_rules(book: RuleBook, bootstrap: str, topic: str) -> None:
    """Read the whole rules topic, then keep following it (no consumer group: every worker needs
    every rule)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from models.kafka_security import aiokafka_security

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **aiokafka_security()
    )
    await consumer.start()
    try:
        parts = None
        while not parts:
            parts = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for msg in records:
                    book.apply(msg.key, msg.value)
            if not book.loaded.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                book.loaded.set()
                log.info("alert rules loaded: %d", len(book.rules))
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # the topic may be created after the worker
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await asyncio.sleep(1.0)
    return parts or set()


# ----------------------------------------------------------------------------- evaluation


class Evaluator:
    """The worker's side of evaluation: live per-camera states, loaded from the table on demand."""

    def __init__(self, book: RuleBook, table: Any) -> None:
        self.book, self.table = book, table
        self.cams: dict[str, CameraAlerts] = {}
        self.started = time.time()
        self.last_timer_eval: dict[str, float] = {}  # fingerprint -> wall time (eval_interval_s)
        self.partitions: set[int] = set()  # owned at the last tick
        self.table_size = 0  # entries in the table at the last full look
        self.transitions = 0

    def camera(self, camera_id: str, partition: int) -> CameraAlerts:
        cam = self.cams.get(camera_id)
        if cam is None:
            raw = self.table.data.get(camera_id.encode())
            cam = CameraAlerts.decode(raw) if raw is not None else CameraAlerts(camera_id, partition)
            cam.partition = partition
            self.cams[camera_id] = cam
        return cam

    def save(self, cam: CameraAlerts) -> None:
        key, value = cam.camera_id.encode(), cam.encode()
        self.table.data[key] = value
        self.table.send_changelog(cam.partition, key, value)

    async def judge(
        self, cam: CameraAlerts, rule: AlertRule, value: float, at: float, *, threshold: float | None = None,
        zone_id: str | None = None, became_true_at: float | None = None, line: str | None = None,
    ) -> None:  # fmt: skip
        """Evaluate one rule on one value; send a transition before storing the state that follows it.
        ``zone_id`` / ``line`` (``line_id:direction``) narrow the fingerprint below the camera."""
        limit = rule.threshold if threshold is None else threshold
        if limit is None:
            return
        fp = fingerprint(rule.rule_id, cam.camera_id, zone_id or line)
        metrics.evaluations.inc()
        before = cam.states.get(fp, core.RuleState())
        after, transition = core.evaluate(before, rule.condition(limit), value, at, fp, became_true_at)
        cam.states[fp] = after
        if transition is not None:
            await self.emit(cam, rule, transition, limit, zone_id, line)
            self.save(cam)

    async def emit(
        self, cam: CameraAlerts, rule: AlertRule, t: core.Transition, threshold: float, zone_id: str | None,
        line: str | None = None,
    ) -> None:  # fmt: skip
        self.transitions += 1
        metrics.transitions.labels(t.kind).inc()
        if t.kind == "fired":
            database = db_database(cam.camera_id)  # a database subject is not a camera
            fields = {"rule": rule.rule_id, "camera_id": cam.camera_id, "zone_id": zone_id or "", "line": line or "",
                      "database": database or "", "value": round(t.value, 3), "threshold": threshold,
                      "metric": rule.metric, "severity": rule.severity}  # fmt: skip
            title = rule.message.format(**fields)
            alert = Alert(
                alert_id=t.incident, rule=rule.rule_id, severity=rule.severity, status="active", title=title,
                triggered_at=t.triggered_at, updated_at=t.at, camera_id=None if database else cam.camera_id,
                description=rule.description, metric_value=round(t.value, 3), threshold=threshold,
                tenant=rule.tenant, fingerprint=t.fingerprint, zone_id=zone_id, metric=rule.metric,
            )  # fmt: skip
            event = AlertEvent(alert_id=t.incident, kind="fired", at=t.triggered_at, alert=alert)
        else:
            event = AlertEvent(alert_id=t.incident, kind="resolved", at=t.at, metric_value=round(t.value, 3))
        log.info("alert %s %s (%s = %s)", t.incident, t.kind, rule.metric, round(t.value, 3))
        fut = await alert_events_topic.send(key=t.incident.encode(), value=event.to_json())
        await fut  # acknowledged by the broker before the state that follows it is stored

    # ---------------------------------------------------------------- inputs

    def _camera_context(self, camera_id: str) -> tuple[str, list[str], float, dict[str, Any]]:
        """(tenant, groups, target fps, zones) from the counting agent's copy of the camera config."""
        from agents.counting import counter  # the same worker owns the camera's config

        entry = counter.scene_for(camera_id)
        cfg = entry.config
        if cfg is None:
            return "default", [], DEFAULT_TARGET_FPS, {}
        fps = cfg.stream.target_fps if cfg.stream is not None else DEFAULT_TARGET_FPS
        return cfg.tenant, list(cfg.groups), fps, entry.zones

    async def on_stats(self, s: StreamStats, partition: int) -> None:
        cam = self.camera(s.camera_id, partition)
        tenant, groups, target_fps, _zones = self._camera_context(s.camera_id)
        if cam.first_seen_at is None:
            cam.first_seen_at = s.at
        if s.status != "offline":
            cam.last_online_at = max(cam.last_online_at or s.at, s.at)
        values = stats_metrics(s, cam, target_fps)
        values["camera_offline_s"] = s.at - (cam.last_online_at or cam.first_seen_at or s.at)
        per_frame, mean_conf = self._model_window(s.camera_id)
        score = self._drift(cam, s)
        if score is not None:
            values["model_drift_score"] = score
            metrics.model_drift.labels(s.camera_id).set(score)
        metrics.stream_quality.labels(s.camera_id).set(values["stream_quality_score"])
        health = CameraHealth(
            camera_id=s.camera_id, at=s.at, status=s.status, stream_quality_score=values["stream_quality_score"],
            frame_drop_pct=values["frame_drop_pct"], offline_s=max(0.0, values["camera_offline_s"]),
            processing_lag_ms=self._processing_lag_ms(s.camera_id), detections_per_frame=per_frame,
            mean_confidence=mean_conf, model_drift_score=score,
        )  # fmt: skip
        camera_health_topic.send_soon(key=s.camera_id.encode(), value=health.to_json(), partition=partition)
        for metric, value in values.items():
            for rule in self.book.for_camera(metric, s.camera_id, tenant, groups):
                await self.judge(cam, rule, value, s.at)
        self.save(cam)

    @staticmethod
    def _model_window(camera_id: str) -> tuple[float | None, float | None]:
        """Detections per frame and mean confidence since the camera's previous report."""
        from agents.counting import counter

        profile = counter.profiles.get(camera_id)
        if profile is None:
            return None, None
        per_frame, mean_conf = profile.take_window()
        if per_frame is not None:
            metrics.detections_per_frame.labels(camera_id).set(per_frame)
        if mean_conf is not None:
            metrics.mean_confidence.labels(camera_id).set(mean_conf)
        return per_frame, mean_conf

    @staticmethod
    def _drift(cam: CameraAlerts, s: StreamStats) -> float | None:
        """The drift score of the detections counted since the last score (the counting agent's
        profile of this camera, same worker); None while too few have come."""
        from agents.counting import counter

        profile = counter.profiles.get(cam.camera_id)
        if profile is None:
            return None
        score = drift(cam, profile, f"{s.model_name}:{s.model_version}", CFG.drift_min_detections)
        if score is not None:
            counter.profiles.pop(cam.camera_id, None)  # the next score looks at new detections
        return score

    @staticmethod
    def _processing_lag_ms(camera_id: str) -> float | None:
        """Capture -> counted for the camera's newest frame, from the counting agent (same worker)."""
        from agents.counting import counter

        rt = counter.cameras.get(camera_id)
        if rt is None or rt.last_processed_at is None or rt.state.last_frame_time is None:
            return None
        return round((rt.last_processed_at - rt.state.last_frame_time) * 1000.0, 3)

    async def on_occupancy(self, o: OccupancySample, partition: int) -> None:
        if o.capacity_pct is None:
            return
        tenant, groups, _fps, zones = self._camera_context(o.camera_id)
        rules = [r for r in self.book.for_camera("occupancy_pct", o.camera_id, tenant, groups)
                 if r.zone_id is None or r.zone_id == o.zone_id]  # fmt: skip
        if not rules:
            return
        cam = self.camera(o.camera_id, partition)
        zone = zones.get(o.zone_id)
        zone_threshold = zone.alert_threshold_pct if zone is not None else None
        changed = False
        for rule in rules:
            threshold = rule.threshold if rule.threshold is not None else zone_threshold
            if threshold is None:
                continue
            fp = fingerprint(rule.rule_id, o.camera_id, o.zone_id)
            before = cam.states.get(fp)
            await self.judge(cam, rule, o.capacity_pct, o.at, threshold=threshold, zone_id=o.zone_id)
            after = cam.states[fp]
            changed |= before is None or (before.phase, before.since) != (after.phase, after.since)
        if changed:  # occupancy is frequent: store only what moves the state machine
            self.save(cam)

    async def tick(self, now: float, partitions: set[int]) -> None:
        """Timer: absence and processing latency for every owned camera; retire rules that are gone."""
        if partitions != self.partitions or len(self.table.data) != self.table_size:
            # after a rebalance or a restart's recovery: load the owned cameras that sent nothing
            # since (a silent camera must still go offline)
            self.partitions, self.table_size = set(partitions), len(self.table.data)
            for key in list(self.table.data.keys()):
                cid = key.decode("utf-8", "replace")
                if cid not in self.cams:
                    cam = CameraAlerts.decode(self.table.data[key])
                    if cam.partition in partitions:
                        self.cams[cid] = cam
        from agents.counting import counter

        for cam in list(self.cams.values()):
            if cam.partition not in partitions:
                self.cams.pop(cam.camera_id, None)
                for gauge in (metrics.stream_quality, metrics.offline_seconds, metrics.processing_lag,
                              metrics.model_drift, metrics.detections_per_frame,
                              metrics.mean_confidence):  # fmt: skip
                    with contextlib.suppress(KeyError):
                        gauge.remove(cam.camera_id)
                continue
            if db_database(cam.camera_id) is not None:  # agents/db_health.py judges it on each sample
                await self._retire(cam, now)
                continue
            if cam.camera_id in counter.removed:  # deleted or erased: nothing of it may come back
                await self._forget(cam, now)
                continue
            tenant, groups, _fps, _zones = self._camera_context(cam.camera_id)
            seen = cam.last_online_at or cam.first_seen_at
            if seen is not None:
                metrics.offline_seconds.labels(cam.camera_id).set(max(0.0, now - seen))
            if seen is not None and now - self.started >= CFG.startup_grace_s:
                for rule in self.book.for_camera("camera_offline_s", cam.camera_id, tenant, groups):
                    if self._due(rule, cam, now) and rule.threshold is not None:
                        # the camera went silent at `seen`: the condition became true threshold s later
                        await self.judge(cam, rule, now - seen, now, became_true_at=seen + rule.threshold)
            latency_ms = self._processing_lag_ms(cam.camera_id)
            if latency_ms is not None:
                metrics.processing_lag.labels(cam.camera_id).set(latency_ms / 1000.0)
                processed_at = counter.cameras[cam.camera_id].last_processed_at
                for rule in self.book.for_camera("processing_latency_ms", cam.camera_id, tenant, groups):
                    if self._due(rule, cam, now):
                        await self.judge(cam, rule, latency_ms, processed_at)
            await self._retire(cam, now)

    def _due(self, rule: AlertRule, cam: CameraAlerts, now: float) -> bool:
        fp = fingerprint(rule.rule_id, cam.camera_id)
        # half a tick of slack: an interval that is a multiple of the tick must not wait one more
        if now - self.last_timer_eval.get(fp, 0.0) < rule.eval_interval_s - CFG.tick_s / 2:
            return False
        self.last_timer_eval[fp] = now
        return True

    async def _forget(self, cam: CameraAlerts, now: float) -> None:
        """A removed camera: resolve its open incidents and delete its state (a changelog
        tombstone too, so a restart does not bring it back)."""
        for st in cam.states.values():
            if st.phase == "firing" and st.incident is not None:
                event = AlertEvent(alert_id=st.incident, kind="resolved", at=now, by="camera removed",
                                   metric_value=st.value)  # fmt: skip
                await (await alert_events_topic.send(key=st.incident.encode(), value=event.to_json()))
        key = cam.camera_id.encode()
        self.cams.pop(cam.camera_id, None)
        if self.table.data.pop(key, None) is not None:
            self.table.send_changelog(cam.partition, key, None)
        self.table_size = len(self.table.data)
        log.info("camera %s removed: its alert state is forgotten", cam.camera_id)

    async def _retire(self, cam: CameraAlerts, now: float) -> None:
        """Fingerprints whose rule was deleted or deactivated: resolve an open incident, forget the rest."""
        gone = [fp for fp in cam.states if (r := self.book.rules.get(fp.split("|", 1)[0])) is None or not r.active]
        if not gone or not self.book.loaded.is_set():
            return
        for fp in gone:
            st = cam.states.pop(fp)
            if st.phase == "firing" and st.incident is not None:
                event = AlertEvent(alert_id=st.incident, kind="resolved", at=now, by="rule removed",
                                   metric_value=st.value)  # fmt: skip
                await (await alert_events_topic.send(key=st.incident.encode(), value=event.to_json()))
        self.save(cam)


# ----------------------------------------------------------------------------- lifecycle


class Lifecycle:
    """Alerts owned by this worker (by partition of ``alert-events``) and their deliveries."""

    def __init__(self, book: RuleBook, table: Any) -> None:
        self.book, self.table = book, table
        self.inflight: set[tuple[str, str]] = set()  # (idempotency key, channel)
        # Alerts the timer must look at (open, or with notifications not done); every alert is
        # looked at again once per RESCAN_S (old finished ones are pruned then).
        self.watch: set[bytes] = set()
        self.scanned_at = 0.0
        self.scanned: tuple[frozenset[int], int] = (frozenset(), 0)
        self.delivered = 0
        self.dead_lettered = 0
        self._session: Any = None

    def load(self, alert_id: str) -> AlertRecord | None:
        raw = self.table.data.get(alert_id.encode())
        return AlertRecord.decode(raw) if raw is not None else None

    def save(self, rec: AlertRecord) -> None:
        key, value = str(rec.alert["alert_id"]).encode(), rec.encode()
        self.table.data[key] = value
        self.table.send_changelog(rec.partition, key, value)
        self.watch.add(key)

    async def on_event(self, event: AlertEvent, partition: int) -> None:
        rec = self.load(event.alert_id)
        rule_id = event.alert.rule if event.alert is not None else (rec.alert["rule"] if rec else None)
        new = fold(rec, event, self.book.rules.get(rule_id) if rule_id else None, partition, CFG.default_channels)
        if new is None:
            return
        await self.publish(new)
        self.deliver_pending(new)

    async def publish(self, rec: AlertRecord) -> None:
        """Store the alert's state, then send it to the alerts topic (sink, push)."""
        self.save(rec)
        alerts_topic.send_soon(key=str(rec.alert["alert_id"]).encode(), value=rec.record().to_json())

    def deliver_pending(self, rec: AlertRecord) -> None:
        for out in rec.outbox:
            if not out.done and (out.key, out.channel) not in self.inflight:
                self.inflight.add((out.key, out.channel))
                asyncio.ensure_future(self._deliver(str(rec.alert["alert_id"]), out))

    async def _deliver(self, alert_id: str, out: Outgoing) -> None:
        try:
            rec = self.load(alert_id)
            if rec is None:
                return
            reason = None
            try:
                channel = parse_channel(out.channel)
                note = notification(out.event, rec.alert, key=out.key)
                await deliver(channel, note, CFG, session=await self.session())
                self.delivered += 1
                metrics.deliveries.labels("delivered", out.event).inc()
            except DeliveryError as exc:
                reason = f"{exc}"
            except ValueError as exc:  # the rule names a channel that cannot be used
                reason = f"unusable channel: {exc}"
            if reason is not None:
                self.dead_lettered += 1
                metrics.deliveries.labels("dead_lettered", out.event).inc()
                log.warning("alert %s: notification %s not delivered: %s", alert_id, out.key, reason)
                body = json.dumps({"idempotency_key": out.key, "event": out.event, "alert": rec.alert})
                dl = dead_letter(alert_events_topic.get_topic_name(), rec.partition, -1, out.key, body, reason)
                dead_letter_topic.send_soon(key=dl.source_topic.encode(), value=dl.to_json())
            rec = self.load(alert_id)  # may have changed while delivering
            if rec is not None:
                for o in rec.outbox:
                    if (o.key, o.channel) == (out.key, out.channel):
                        o.done = True
                self.save(rec)
        except Exception:  # never let a delivery task die silently
            log.exception("alert %s: delivery of %s failed", alert_id, out.key)
        finally:
            self.inflight.discard((out.key, out.channel))

    async def session(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession()
        return self._session

    async def tick(self, now: float, partitions: set[int]) -> None:
        """Timer: escalate unacknowledged alerts, resend what a crash left undelivered, forget old ones."""
        # a rescan also follows a rebalance or the table's recovery after a restart
        seen = (frozenset(partitions), len(self.table.data))
        rescan = now - self.scanned_at >= RESCAN_S or seen != self.scanned
        if rescan:
            self.scanned_at, self.scanned = now, seen
        for key in list(self.table.data.keys() if rescan else self.watch):
            raw = self.table.data.get(key)
            if raw is None:
                self.watch.discard(key)
                continue
            rec = AlertRecord.decode(raw)
            if rec.partition not in partitions:
                self.watch.discard(key)
                continue
            a = rec.alert
            rule = self.book.rules.get(a["rule"])
            delay = rule.escalation_delay_s if rule is not None else None
            if core.escalation_due(a["status"], a["triggered_at"], delay, a.get("escalated_at") is not None, now):
                a["escalated_at"] = now
                a["updated_at"] = max(float(a["updated_at"]), now)
                a["log"] = [*a.get("log", []), json.loads(AlertLogEntry(at=now, action="escalated").to_json())]
                notify(rec, "escalated", channels_for(rule, CFG.default_channels, escalation=True))
                log.info("alert %s escalated after %s s unacknowledged", a["alert_id"], delay)
                await self.publish(rec)
            elif a["status"] in ("resolved", "closed") and all(o.done for o in rec.outbox):
                self.watch.discard(key)  # finished: only the rescan looks at it again
                if now - float(a["updated_at"]) > RETAIN_CLOSED_S:
                    self.table.data.pop(key, None)
                    self.table.send_changelog(rec.partition, key, None)
                continue
            else:
                self.watch.add(key)
            self.deliver_pending(rec)


# A finished alert (resolved or closed, every notification done) leaves the lifecycle table after
# this long; the alerts table keeps it (its retention: 1 year). A person may still close it before.
RETAIN_CLOSED_S = 7 * 24 * 3600.0
RESCAN_S = 60.0


# ----------------------------------------------------------------------------- Faust wiring


async def feed(stream: Any, record: type[R], handle: Callable[[R, int], Awaitable[None]]) -> None:
    """Parse each event of ``stream`` as ``record`` and hand it, with its partition, to ``handle``.
    A malformed value is skipped: the evaluator reads topics whose sinks dead-letter it already."""
    async for event in stream.events():
        try:
            value = parse(record, event.value or b"")
        except SchemaError:
            continue
        await handle(value, event.message.partition)


def _owned(topic: Any) -> set[int]:
    name = topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}


if CFG.enabled:
    _RAW = {"key_type": bytes, "value_type": bytes}
    alert_eval_table = app.Table("alert-eval", partitions=settings.kafka.partitions,
                                 help="per camera: alert rule states", **_RAW)  # fmt: skip
    alert_lifecycle_table = app.Table("alert-lifecycle", partitions=settings.kafka.partitions,
                                      help="per alert: state and notification outbox", **_RAW)  # fmt: skip
    evaluator = Evaluator(rulebook, alert_eval_table)
    lifecycle = Lifecycle(rulebook, alert_lifecycle_table)

    @app.task
    async def alert_rules_follower() -> None:
        """Follow the rules topic for the worker's life; a failure (broker gone) restarts it, the
        rules known so far stay in force meanwhile."""
        while True:
            try:
                await follow_rules(rulebook, settings.kafka.bootstrap, alert_rules_topic.get_topic_name())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alert rules: following the topic failed (%s); retrying in 5 s", exc)
                await asyncio.sleep(5.0)

    @app.agent(stream_stats_topic)
    async def evaluate_stream_stats(stream):  # noqa: ANN001
        await feed(stream, StreamStats, evaluator.on_stats)

    @app.agent(occupancy_topic)
    async def evaluate_occupancy(stream):  # noqa: ANN001
        await feed(stream, OccupancySample, evaluator.on_occupancy)

    @app.agent(alert_events_topic)
    async def alert_lifecycle(stream):  # noqa: ANN001
        async for event in stream.events():
            try:
                ev = parse(AlertEvent, event.value or b"")
            except SchemaError as exc:
                dl = dead_letter(event.message.topic, event.message.partition, event.message.offset,
                                 event.key, event.value, str(exc))  # fmt: skip
                dead_letter_topic.send_soon(key=dl.source_topic.encode(), value=dl.to_json())
                continue
            await lifecycle.on_event(ev, event.message.partition)

    @app.timer(interval=CFG.tick_s)
    async def alert_timers() -> None:
        now = time.time()
        await evaluator.tick(now, _owned(stream_stats_topic))
        await lifecycle.tick(now, _owned(alert_events_topic))

    @app.page("/footfall/alerting/")
    async def alerting_view(web, request):  # noqa: ANN001
        """This worker's alerting: rules loaded, cameras and alerts owned, deliveries."""
        return web.json({
            "prefix": PREFIX,
            "rules": sorted(rulebook.rules),
            "rules_loaded": rulebook.loaded.is_set(),
            "cameras": len(evaluator.cams),
            "transitions": evaluator.transitions,
            "alerts": len(alert_lifecycle_table.data),
            "deliveries_inflight": len(lifecycle.inflight),
            "delivered": lifecycle.delivered,
            "dead_lettered": lifecycle.dead_lettered,
        })  # fmt: skip
