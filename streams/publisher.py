"""Publishing wire records to Kafka: idempotent, compressed, bounded, never blocking the caller.

Also used by the simulator, so it imports nothing heavier than confluent-kafka.

When the broker is unreachable, librdkafka queues messages locally up to
``queue.buffering.max.messages`` / ``max.kbytes``; messages older than ``message.timeout.ms`` fail
(counted as ``failed``), which frees room for newer ones, and when the queue is full
:meth:`KafkaPublisher.publish` drops the record (``BufferError``, counted as ``dropped``) instead of
blocking. So a grabber keeps running with a bounded backlog of its newest state and resumes on its
own when the broker returns. :meth:`KafkaPublisher.failing` says whether publishing is currently
failing, for the camera status.

>>> pub = KafkaPublisher("127.0.0.1:9092", {StreamStats: "t.stats"})  # doctest: +SKIP
>>> pub.publish(stats); pub.poll(); pub.flush(5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.base import WireRecord
from models.records import FrameDetections, StreamStats
from models.topics import topic_name

log = logging.getLogger(__name__)

# Broker-level errors that mean "cannot reach the cluster right now".
_UNREACHABLE = ("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_TIMED_OUT")


def default_topics(prefix: str) -> dict[type[WireRecord], str]:
    """The catalogue topics for the records a grabber or simulator writes."""
    return {FrameDetections: topic_name(prefix, "detections"), StreamStats: topic_name(prefix, "stream-stats")}


@dataclass
class PublisherStats:
    queued: int = 0  # handed to librdkafka
    delivered: int = 0  # acknowledged by the broker (acks=all)
    failed: int = 0  # delivery reports with an error (e.g. message timeout while the broker was down)
    dropped: int = 0  # refused at publish time: local queue full (BufferError) or producer broken
    last_error: str | None = None
    last_error_at: float | None = None  # epoch seconds
    # per key (camera_id): dropped + failed
    lost_by_key: dict[str, int] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return self.queued - self.delivered - self.failed


class KafkaPublisher:
    """A small, thread-safe facade over a confluent-kafka ``Producer`` for wire records.

    ``topics`` maps record types to topic names; records are keyed by ``camera_id`` unless a key is
    given. ``headers`` go on every message (e.g. the grabber id)."""

    def __init__(
        self,
        bootstrap: str,
        topics: Mapping[type[WireRecord], str],
        *,
        client_id: str = "footfall-grabber",
        headers: Mapping[str, str] | None = None,
        compression: str = "lz4",
        max_messages: int = 20_000,
        max_kbytes: int = 64 * 1024,
        message_timeout_ms: int = 30_000,
        linger_ms: int = 5,
        stall_s: float = 5.0,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topics = dict(topics)
        self.headers = [(k, v.encode()) for k, v in (headers or {}).items()]
        self.stall_s = stall_s
        self.stats = PublisherStats()
        self._lock = threading.Lock()
        self._brokers_down = False
        self._last_delivery_mono = time.monotonic()
        self._last_error_mono = 0.0
        self._fatal = False
        self._config = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max_messages,
            "queue.buffering.max.kbytes": max_kbytes,
            "message.timeout.ms": message_timeout_ms,
            "reconnect.backoff.max.ms": 2000,
            "error_cb": self._on_error,
            "logger": logging.getLogger("streams.kafka"),  # librdkafka's logs through Python logging
            **dict(extra_config or {}),
        }
        self._producer = self._new_producer()

    def _new_producer(self):
        from confluent_kafka import Producer

        return Producer(self._config)

    # ------------------------------------------------------------------ publishing

    def publish(self, record: WireRecord, *, topic: str | None = None, key: str | None = None) -> bool:
        """Queue ``record``; False (and counted as dropped) when it cannot be queued. Never blocks."""
        topic = topic or self.topics.get(type(record))
        if topic is None:
            raise KeyError(f"no topic configured for {type(record).__name__}")
        if key is None:
            key = getattr(record, "camera_id", None)
        return self.publish_raw(topic, key, record.to_json())

    def publish_raw(self, topic: str, key: str | None, value: bytes | None) -> bool:
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key.encode() if key is not None else None,
                headers=self.headers or None,
                on_delivery=self._on_delivery,
            )
        except BufferError:
            self._lost(key, "local queue full (broker unreachable or too slow); message dropped")
            self._producer.poll(0)
            return False
        except Exception as exc:  # KafkaException: fatal producer state; rebuild on the next call
            self._lost(key, f"produce failed: {exc}")
            self._recreate_if_fatal()
            return False
        with self._lock:
            self.stats.queued += 1
        return True

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports and error callbacks; call often."""
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for outstanding messages; returns how many are still undelivered."""
        return self._producer.flush(timeout)

    def __len__(self) -> int:
        return len(self._producer)

    # ------------------------------------------------------------------ health

    def failing(self) -> bool:
        """Publishing is failing now: brokers unreachable, the last report was an error, or
        messages are outstanding with no delivery for ``stall_s``."""
        with self._lock:
            if self._brokers_down:
                return True
            if self.stats.in_flight > 0 and time.monotonic() - self._last_delivery_mono > self.stall_s:
                return True
            return self._last_error_mono > self._last_delivery_mono

    # ------------------------------------------------------------------ callbacks

    def _lost(self, key: str | None, reason: str) -> None:
        with self._lock:
            self.stats.dropped += 1
            self._note_error(reason)
            if key is not None:
                self.stats.lost_by_key[key] = self.stats.lost_by_key.get(key, 0) + 1

    def _note_error(self, reason: str) -> None:
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()
        self._last_error_mono = time.monotonic()

    def _on_delivery(self, err, msg) -> None:
        with self._lock:
            if err is None:
                self.stats.delivered += 1
                self._last_delivery_mono = time.monotonic()
                self._brokers_down = False
                return
            self.stats.failed += 1
            self._note_error(f"delivery failed: {err.str()}")
            key = msg.key().decode(errors="replace") if msg.key() is not None else None
            if key is not None:
                self.stats.lost_by_key[key] = self.stats.lost_by_key.get(key, 0) + 1

    def _on_error(self, err) -> None:
        name = err.name() if hasattr(err, "name") else str(err)
        with self._lock:
            if name in _UNREACHABLE:
                self._brokers_down = name == "_ALL_BROKERS_DOWN" or self._brokers_down
            self._note_error(f"kafka: {err.str() if hasattr(err, 'str') else err}")
            self._fatal = bool(getattr(err, "fatal", lambda: False)())
        log.warning("kafka producer error: %s", err)

    def _recreate_if_fatal(self) -> None:
        if self._fatal:
            log.error("kafka producer hit a fatal error; creating a new producer")
            self._fatal = False
            self._producer = self._new_producer()
