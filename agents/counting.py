"""Counting agents: detections -> tracker + lines + zones -> crossings, zone events, occupancy and
window counts; camera configuration from the compacted config topic.

Delivery: idempotent at-least-once (Faust's ``exactly_once`` is not relied on).

* Per camera the durable state (tracker, line/zone state, windows, occupancy bookkeeping and an
  outbox of outputs not yet confirmed delivered; see :mod:`agents.state`) lives in the changelogged
  table ``camera-state`` (key camera_id, memory store rebuilt from the changelog on start).
* The worker keeps the live runtimes of the cameras it owns in memory and writes each changed one
  to the table once per ``worker.flush_interval_s`` (one changelog record per camera per flush).
* The detections stream runs with ``noack()``: an event is acked only after the flush that covers
  it has queued its camera's state (and the window counts) to the producer. Faust commits only
  acked offsets and flushes its producer before committing (``Consumer._commit_offsets``), so a
  committed offset implies the state and the outputs of every frame before it are in Kafka.
* After a crash the worker restarts from the last committed offset; frames already folded into a
  stored state are skipped (``frame_seq <= last_frame_seq``) and the stored outbox is re-sent.
  Outputs have deterministic ids (crossing ``camera:line:track:direction:frame_seq``, zone event
  ids likewise) and window counts are full counts per (camera, line, direction, window_start), so
  consumers dedupe by id / upsert by key and see each crossing exactly once.
* Outputs go to the same partition number as the camera's detections (key camera_id), so every
  camera-keyed topic stays co-partitioned whatever partitioner the producers used.

Configuration: ``camera-config`` (compacted, co-partitioned with detections) is mirrored into the
changelogged table ``camera-config`` so it is there before the first frame after a restart. A new
config takes effect on the camera's next frame: line/zone state is realigned by id and tracks keep
going, unless the camera's tracker/counting params (``CameraConfig.tracking`` on the defaults,
:func:`agents.state.camera_params`) changed: then its tracks restart once (``core.camera``: the
stored state records which params produced it). Detections of a camera without a config are
still tracked, with the default params and no lines or zones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agents import metrics
from agents import state as st
from agents.alert_state import DetectionProfile
from agents.app import (
    PARTITIONS,
    app,
    camera_config_topic,
    crossings_topic,
    dead_letter_topic,
    detections_topic,
    occupancy_topic,
    settings,
    tracks_topic,
    window_counts_topic,
    zone_events_topic,
)
from agents.deadletter import send_dead_letter
from core.camera import DEFAULT_CAMERA, CameraParams, Scene
from core.windows import Windowing
from models.base import SchemaError, parse
from models.records import CameraConfig, Zone

log = logging.getLogger("agents.counting")

WINDOWING = Windowing(
    size_s=settings.worker.window_s, grace_s=settings.worker.grace_s, rolling_s=settings.worker.rolling_s
)
FLUSH_INTERVAL_S = settings.worker.flush_interval_s

_RAW = {"key_type": bytes, "value_type": bytes}  # bytes => raw serializers (Collection._serializer_from_type)
camera_states = app.Table(
    "camera-state", partitions=PARTITIONS, help="per camera: tracker, counting, windows, outbox", **_RAW
)
camera_configs = app.Table("camera-config", partitions=PARTITIONS, help="per camera: CameraConfig JSON", **_RAW)

OUTPUT_TOPICS = {
    st.CROSSINGS: crossings_topic,
    st.ZONE_EVENTS: zone_events_topic,
    st.WINDOW_COUNTS: window_counts_topic,
    st.OCCUPANCY: occupancy_topic,
    st.TRACKS: tracks_topic,
}


@dataclass(slots=True)
class SceneEntry:
    """A camera's configuration compiled once per version."""

    raw: bytes | None
    config: CameraConfig | None
    scene: Scene
    zones: dict[str, Zone] = field(default_factory=dict)
    params: CameraParams = DEFAULT_CAMERA

    @classmethod
    def build(cls, raw: bytes, config: CameraConfig) -> SceneEntry:
        scene = Scene.from_config(config.lines, config.zones)
        return cls(raw, config, scene, {z.zone_id: z for z in config.zones}, st.camera_params(config))


NO_CONFIG = SceneEntry(None, None, Scene())


class Counter:
    """The worker's in-memory side of the counting agent. Everything here runs on the event loop
    between awaits, so a flush never sees half a frame."""

    def __init__(self) -> None:
        self.cameras: dict[str, st.CameraRuntime] = {}
        self.scenes: dict[str, SceneEntry] = {}
        self.pending: list[Any] = []  # events processed but not acked (waiting for a flush)
        self.frames = 0
        self.replays = 0
        self.dead_letters = 0
        # per camera, what the alert evaluator's drift score compares (agents.alert_state)
        self.profiles: dict[str, DetectionProfile] = {}
        # Cameras whose config was tombstoned (removed or erased) since this worker started: the
        # alert evaluator forgets their state and resolves their open alerts (agents/alerting.py).
        self.removed: set[str] = set()
        self.flushes = 0
        self.state_writes = 0
        self.resent = 0
        self.last_flush_at: float | None = None

    # ------------------------------------------------------------------ frames

    def on_detection(self, event: Any) -> None:
        self.pending.append(event)
        message = event.message
        try:
            frame = st.parse_frame(event.value)
            key = event.key
            if key is not None and key != frame.camera_id.encode():
                raise SchemaError("FrameDetections", "camera_id", f"{frame.camera_id!r} does not match the key {key!r}")
        except SchemaError as exc:
            self.dead_letters += 1
            send_dead_letter(dead_letter_topic, message, str(exc))
            return
        rt = self.runtime(frame.camera_id, message.partition)
        if frame.frame_seq <= rt.state.last_frame_seq:
            self.replays += 1
            return
        entry = self.scene_for(frame.camera_id)
        try:
            st.step(rt, frame, entry.scene, time.time(), entry.zones, WINDOWING, entry.params)
        except ValueError as exc:  # the core refused the frame (e.g. malformed box arrays)
            self.dead_letters += 1
            send_dead_letter(dead_letter_topic, message, f"FrameDetections: {exc}")
            return
        self.frames += 1
        metrics.frames_counted.inc()
        profile = self.profiles.get(frame.camera_id)
        if profile is None:
            profile = self.profiles[frame.camera_id] = DetectionProfile()
        profile.add(frame.boxes)
        self.send_unsent(rt)

    def runtime(self, camera_id: str, partition: int) -> st.CameraRuntime:
        """The live runtime of a camera; loaded from the table (and its outbox re-sent) if missing."""
        rt = self.cameras.get(camera_id)
        if rt is not None:
            return rt
        raw = camera_states.get(camera_id.encode())
        rt = None
        if raw is not None:
            try:
                rt = st.decode(raw)
            except ValueError as exc:
                log.error("camera %s: stored state unreadable (%s); starting it afresh", camera_id, exc)
        if rt is None:
            rt = st.CameraRuntime(camera_id, partition)
        elif rt.partition != partition:
            log.warning("camera %s moved from partition %s to %s", camera_id, rt.partition, partition)
            rt.partition = partition
        if rt.outbox:
            log.info("camera %s: re-sending %d outputs from its stored outbox", camera_id, len(rt.outbox))
        self.cameras[camera_id] = rt
        self.send_unsent(rt)
        return rt

    def send_unsent(self, rt: st.CameraRuntime, entries: list[st.OutboxEntry] | None = None) -> None:
        """Send the outbox entries not sent by this process yet (a suffix of the outbox), or ``entries``."""
        entries = st.unsent(rt) if entries is None else entries
        if entries:
            key = rt.camera_id.encode()
            for entry in entries:
                entry.future = OUTPUT_TOPICS[entry.topic].send_soon(key=key, value=entry.value, partition=rt.partition)

    # ------------------------------------------------------------------ configuration

    def scene_for(self, camera_id: str) -> SceneEntry:
        entry = self.scenes.get(camera_id)
        if entry is not None:
            return entry
        raw = camera_configs.get(camera_id.encode())
        entry = NO_CONFIG
        if raw is not None:
            try:
                entry = SceneEntry.build(raw, parse(CameraConfig, raw))
            except (SchemaError, ValueError) as exc:  # stored before a validation change
                log.error("camera %s: stored config unusable (%s); counting without lines/zones", camera_id, exc)
        self.scenes[camera_id] = entry
        return entry

    def on_config(self, event: Any) -> None:
        key, raw = event.key, event.value
        if raw is None:  # tombstone: the camera was removed (or erased): forget it entirely
            if key is not None:
                camera_id = key.decode(errors="replace")
                for table in (camera_configs, camera_states):
                    if table.get(key) is not None:
                        del table[key]  # a changelog tombstone too: a restart does not bring it back
                self.scenes.pop(camera_id, None)
                self.cameras.pop(camera_id, None)  # its live views answer 404 from now on
                self.profiles.pop(camera_id, None)
                self.removed.add(camera_id)
                log.info("camera %s: configuration and counting state removed", camera_id)
            return
        try:
            config = parse(CameraConfig, raw)
            if key is not None and key != config.camera_id.encode():
                raise SchemaError("CameraConfig", "camera_id", f"{config.camera_id!r} does not match the key {key!r}")
            entry = SceneEntry.build(raw, config)
        except (SchemaError, ValueError) as exc:
            self.dead_letters += 1
            send_dead_letter(dead_letter_topic, event.message, str(exc))
            return
        camera_configs[config.camera_id.encode()] = raw
        self.removed.discard(config.camera_id)
        previous = self.scenes.get(config.camera_id)
        if previous is not None and previous.params.digest != entry.params.digest:
            log.info("camera %s: tracking parameters changed; its tracks restart on the next frame", config.camera_id)
        self.scenes[config.camera_id] = entry
        log.info(
            "camera %s: configuration with %d lines, %d zones", config.camera_id, len(config.lines), len(config.zones)
        )

    # ------------------------------------------------------------------ flush

    def flush(self, now: float | None = None) -> int:
        """Queue window counts and the state of every changed camera, then ack the events those
        states cover. Returns the number of states written."""
        now = time.time() if now is None else now
        written = 0
        for rt in self.cameras.values():
            self.resend_failed(rt)
            if not rt.dirty:
                continue
            st.window_outputs(rt, now, WINDOWING)
            self.send_unsent(rt)
            st.prune_delivered(rt)
            key, value = rt.camera_id.encode(), st.encode(rt)
            camera_states.data[key] = value
            rt.state_future = camera_states.send_changelog(rt.partition, key, value)
            rt.dirty = False
            written += 1
        pending, self.pending = self.pending, []
        for event in pending:
            event.ack()
        self.flushes += 1
        self.state_writes += written
        self.last_flush_at = now
        return written

    def resend_failed(self, rt: st.CameraRuntime) -> None:
        """A broker outage longer than Faust's ``producer_request_timeout`` (20 min by default) fails
        sends: outputs whose send failed go again, and a state whose changelog record failed is
        written again (its camera is marked changed)."""
        entries = st.failed(rt)
        if entries:
            self.resent += len(entries)
            log.warning("camera %s: sending %d outputs again (their first send failed)", rt.camera_id, len(entries))
            self.send_unsent(rt, entries)
        fut = rt.state_future  # a FutureMessage: an asyncio future
        if fut is not None and fut.done() and (fut.cancelled() or fut.exception() is not None):
            rt.state_future = None
            rt.dirty = True

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget the live runtimes of cameras on ``partitions`` (after a flush); they are reloaded
        from the table if this worker gets them back."""
        lost = set(partitions)
        gone = [cid for cid, rt in self.cameras.items() if rt.partition in lost]
        for cid in gone:
            del self.cameras[cid]
            self.profiles.pop(cid, None)
        self.scenes.clear()  # configs of regained partitions may have changed elsewhere
        return len(gone)

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "replays_skipped": self.replays,
            "dead_letters": self.dead_letters,
            "flushes": self.flushes,
            "state_writes": self.state_writes,
            "resent": self.resent,
            "pending_acks": len(self.pending),
            "cameras": len(self.cameras),
        }


counter = Counter()


@app.agent(detections_topic)
async def count_detections(stream):  # noqa: ANN001 - Faust passes a StreamT
    """Track and count every frame; acks come from :func:`flush_states`."""
    async for event in stream.noack().events():
        counter.on_detection(event)


@app.agent(camera_config_topic)
async def follow_camera_config(stream):  # noqa: ANN001
    async for event in stream.events():
        counter.on_config(event)


@app.timer(interval=FLUSH_INTERVAL_S)
async def flush_states() -> None:
    counter.flush()


@app.on_partitions_revoked.connect
async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
    counter.flush()
    lost = {tp.partition for tp in revoked if tp.topic == detections_topic.get_topic_name()}
    if lost:
        n = counter.drop_partitions(lost)
        log.info("partitions %s revoked: %d cameras unloaded", sorted(lost), n)
