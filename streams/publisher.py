"""Publishing wire records to Kafka with store and forward: idempotent, ordered, never blocking.

Also used by the simulator, so it imports nothing heavier than confluent-kafka.

Every message goes through one path: while nothing is waiting and fewer than ``max_messages`` are
with librdkafka (unacknowledged), it is produced at once; otherwise it waits in the
:class:`~streams.spool.Spool` (memory, then the on-disk spool) and :meth:`KafkaPublisher.poll`
hands the oldest waiting messages to librdkafka as acknowledgements free room. So messages reach
librdkafka in the order they were published, and librdkafka's idempotent producer
(``enable.idempotence``: ``acks=all``, at most 5 requests in flight, sequence numbers) keeps that
order within each partition and never writes a retried message twice. Messages do not expire
(``message.timeout.ms=0``): librdkafka retries them until the broker is back.

While the broker is unreachable (``_ALL_BROKERS_DOWN``, or nothing acknowledged for ``stall_s``
with messages outstanding) only ``down_window`` messages stay with librdkafka, which probe for the
broker's return; everything else waits in the spool, where a stopped (or killed) process leaves it
for the next one (:meth:`KafkaPublisher.close`). With the spool on disk, the outage also copies what
librdkafka holds to the head of the disk spool and sends every new message to the disk at once
(:meth:`KafkaPublisher._secure`), so a SIGKILL during the outage loses nothing published before it.
When the broker returns, the spool is delivered oldest first, before anything published since. A
bound of the spool drops the oldest messages, counted per key (``spool_stats``) and logged.

:meth:`KafkaPublisher.failing` says whether publishing is currently failing, for the camera status.

>>> pub = KafkaPublisher("127.0.0.1:9092", {StreamStats: "t.stats"})  # doctest: +SKIP
>>> pub.publish(stats); pub.poll(); pub.close(5)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.base import WireRecord
from models.kafka_security import librdkafka_security
from models.records import FrameDetections, StreamStats
from models.topics import topic_name
from streams.spool import Item, KeyStats, Spool, SpoolConfig, SpoolTotals

log = logging.getLogger(__name__)


class _Throttle(logging.Filter):
    """librdkafka logs every failed connection attempt (about one a second per broker while it is
    down): pass one record per facility and level every ``every_s``."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, record.args[0] if isinstance(record.args, tuple) and record.args else record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self.every_s) < self.every_s:
            return False
        self._last[key] = now
        return True


_rdkafka_log = logging.getLogger("streams.kafka")
_rdkafka_log.addFilter(_Throttle())

# Broker-level errors that mean "cannot reach the cluster right now".
_UNREACHABLE = ("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_TIMED_OUT")
_PURGED = ("_PURGE_QUEUE", "_PURGE_INFLIGHT")


def default_topics(prefix: str) -> dict[type[WireRecord], str]:
    """The catalogue topics for the records a grabber or simulator writes."""
    return {FrameDetections: topic_name(prefix, "detections"), StreamStats: topic_name(prefix, "stream-stats")}


@dataclass
class PublisherStats:
    queued: int = 0  # handed to librdkafka
    delivered: int = 0  # acknowledged by the broker (acks=all)
    failed: int = 0  # delivery reports with a permanent error (e.g. message too large, unknown topic)
    dropped: int = 0  # dropped by a bound of the spool (oldest first)
    returned: int = 0  # taken back from librdkafka into the spool (stopping, or a fatal producer error)
    last_error: str | None = None
    last_error_at: float | None = None  # epoch seconds
    # per key (camera_id): dropped + failed
    lost_by_key: dict[str, int] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return self.queued - self.delivered - self.failed - self.returned


class KafkaPublisher:
    """A small facade over a confluent-kafka ``Producer`` for wire records, with a spool.

    ``topics`` maps record types to topic names; records are keyed by ``camera_id`` unless a key is
    given. ``headers`` go on every message (e.g. the grabber id). ``spool`` is a :class:`Spool` or
    its :class:`SpoolConfig` (default: memory only). Call :meth:`poll` often and :meth:`close` at
    the end; publishing and polling happen on one thread."""

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
        message_timeout_ms: int = 0,
        linger_ms: int = 5,
        stall_s: float = 5.0,
        down_window: int = 100,
        spool: Spool | SpoolConfig | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topics = dict(topics)
        self.headers = [(k, v.encode()) for k, v in (headers or {}).items()]
        self.stall_s = stall_s
        self.window = max_messages
        self.down_window = min(down_window, max_messages)
        self.spool = spool if isinstance(spool, Spool) else Spool(spool or SpoolConfig())
        self.stats = PublisherStats()
        self._lock = threading.Lock()
        self._brokers_down = False
        self._last_delivery_mono = time.monotonic()
        self._last_error_mono = 0.0
        self._outage_since: float | None = None  # when the broker became unreachable (logged once)
        self._fatal = False
        self._spooling = False  # the broker is away and the spool is on disk: everything goes there
        self._purged: list[Item] = []
        self._out: dict[int, Item] = {}  # with librdkafka, by hand-out number
        self._dropped_seen: dict[str | None, int] = {}
        self._config = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max_messages + 1000,
            "queue.buffering.max.kbytes": max_kbytes,
            "message.timeout.ms": message_timeout_ms,
            "reconnect.backoff.max.ms": 2000,
            "error_cb": self._on_error,
            "logger": _rdkafka_log,  # librdkafka's logs through Python logging (throttled)
            **librdkafka_security(),
            **dict(extra_config or {}),
        }
        self._producer = self._new_producer()

    def _new_producer(self):
        from confluent_kafka import Producer

        return Producer(self._config)

    # ------------------------------------------------------------------ publishing

    def publish(self, record: WireRecord, *, topic: str | None = None, key: str | None = None) -> bool:
        """Queue ``record`` (to librdkafka or the spool). Never blocks; True when queued."""
        topic = topic or self.topics.get(type(record))
        if topic is None:
            raise KeyError(f"no topic configured for {type(record).__name__}")
        if key is None:
            key = getattr(record, "camera_id", None)
        return self.publish_raw(topic, key, record.to_json())

    def publish_raw(self, topic: str, key: str | None, value: bytes | None) -> bool:
        if self._fatal:
            self._recreate()
        spool = self.spool
        if not self._spooling and spool.waiting == 0 and self.stats.in_flight < self._window():
            item = spool.track(topic, key, value)
            if not self._produce(item):
                spool.requeue([item])
            return True
        spool.put(topic, key, value, to_disk=self._spooling)  # (in the OS at once while spooling)
        return True

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports, hand waiting messages to librdkafka, keep the spool; call often."""
        n = self._producer.poll(timeout)
        self._pump()
        self.spool.maintain()
        self._count_drops()
        return n

    def flush(self, timeout: float = 10.0) -> int:
        """Deliver everything (the spool included) within ``timeout``; returns how many are left."""
        deadline = time.monotonic() + timeout
        while True:
            self._pump()
            left = len(self)
            if left == 0 or time.monotonic() >= deadline:
                self._count_drops()
                return left
            self._producer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            self.spool.maintain()

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is left within ``timeout`` (less while the broker is down and the spool is on
        disk: waiting is pointless then); keep the rest in the spool for the next start. Returns the
        number of messages left undelivered (kept on disk, or lost without a spool directory)."""
        deadline = time.monotonic() + timeout
        while len(self) and time.monotonic() < deadline:
            stalled = time.monotonic() - self._last_delivery_mono > self.stall_s
            if self.spool.on_disk and stalled and self.failing():
                break
            self.flush(min(0.5, max(0.0, deadline - time.monotonic())))
        left = len(self)
        if self.stats.in_flight:
            self._take_back(self._producer)
        kept = self.spool.close(self._purged)
        self._purged = []
        self._count_drops()
        if left and kept:
            log.warning(
                "%d message(s) not delivered: kept in the spool %s for the next start", kept, self.spool.directory
            )
        elif left:
            log.error("%d message(s) not delivered and lost (no spool directory)", left)
        return left

    def __len__(self) -> int:
        """Messages not delivered yet: with librdkafka or waiting in the spool."""
        return self.stats.in_flight + self.spool.waiting

    def spool_stats(self, key: str) -> KeyStats:
        """A key's (camera's) messages waiting in the spool, the put time of the oldest, and how many
        a spool bound dropped."""
        return self.spool.stats(key)

    def spool_totals(self) -> SpoolTotals:
        return self.spool.totals()

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

    # ------------------------------------------------------------------ internals

    def _window(self) -> int:
        """How many messages librdkafka may hold: few while the broker is away."""
        return self.down_window if self._spooling or self._outage() else self.window

    def _outage(self) -> bool:
        """The broker is unreachable: librdkafka says so, or nothing was acknowledged for ``stall_s``
        with messages outstanding."""
        with self._lock:
            if self._brokers_down:
                return True
            return self.stats.in_flight > 0 and time.monotonic() - self._last_delivery_mono > self.stall_s

    def _secure(self) -> None:
        """The broker went away (spool on disk): from now on every message goes to the disk at once
        (the memory tier is skipped) until the broker acknowledges one again, and copies of what
        librdkafka holds are written, in order, to the head of the disk spool, before the newer
        messages (:meth:`Spool.secure`). librdkafka keeps the originals: if this process lives on
        they are delivered by its idempotent retries, once, and release their copies; if it is
        killed (SIGKILL, OOM) the next process delivers the copies. The spooled messages librdkafka
        gets while the broker is away (``down_window``) are probes, read from the disk."""
        self._spooling = True
        t0 = time.monotonic()
        n = self.spool.secure(list(self._out.values()))
        log.info(
            "kafka unreachable: %d message(s) held by the producer copied to the spool's head (%.0f ms)",
            n,
            (time.monotonic() - t0) * 1000,
        )

    def _produce(self, item: Item) -> bool:
        try:
            self._producer.produce(
                item.topic,
                value=item.value,
                key=None if item.key is None else item.key.encode(),
                headers=self.headers or None,
                on_delivery=functools.partial(self._on_delivery, item),
            )
        except BufferError:
            return False
        except Exception as exc:  # KafkaException: fatal producer state; rebuilt on the next call
            with self._lock:
                self._note_error(f"produce failed: {exc}")
            return False
        with self._lock:
            self.stats.queued += 1
        self._out[item.n] = item
        return True

    def _pump(self) -> None:
        """Hand the oldest waiting messages to librdkafka while the window has room."""
        spool = self.spool
        if not self._spooling and spool.on_disk and self._outage():
            self._secure()
        if not spool.waiting:
            return
        if self._fatal:
            self._recreate()
        window = self._window()
        while self.stats.in_flight < window:
            item = spool.take()
            if item is None:
                return
            if not self._produce(item):
                spool.requeue([item])
                return

    def _take_back(self, producer) -> None:
        """Purge librdkafka's queue; the purged messages come back through their delivery reports."""
        producer.purge(in_queue=True, in_flight=True)
        deadline = time.monotonic() + 5.0
        while self.stats.in_flight > 0 and time.monotonic() < deadline:
            producer.poll(0.05)

    def _count_drops(self) -> None:
        for key, n in self.spool.dropped.items():
            new = n - self._dropped_seen.get(key, 0)
            if new:
                self._dropped_seen[key] = n
                with self._lock:
                    self.stats.dropped += new
                    if key is not None:
                        self.stats.lost_by_key[key] = self.stats.lost_by_key.get(key, 0) + new

    def _note_error(self, reason: str) -> None:
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()
        self._last_error_mono = time.monotonic()

    def _on_delivery(self, item: Item, err, _msg) -> None:
        self._out.pop(item.n, None)
        if err is None:
            with self._lock:
                self.stats.delivered += 1
                self._last_delivery_mono = time.monotonic()
                self._brokers_down = False
                self._spooling = False
            self.spool.done(item)
            if self._outage_since is not None:
                log.warning(
                    "kafka reachable again after %.0f s; delivering %d spooled message(s) first",
                    time.monotonic() - self._outage_since,
                    self.spool.waiting,
                )
                self._outage_since = None
            return
        if err.name() in _PURGED:  # taken back by close() or after a fatal error: delivered later
            with self._lock:
                self.stats.returned += 1
            self._purged.append(item)
            return
        with self._lock:
            self.stats.failed += 1
            self._note_error(f"delivery failed: {err.str()}")
            if item.key is not None:
                self.stats.lost_by_key[item.key] = self.stats.lost_by_key.get(item.key, 0) + 1
        log.error("message to %s (key %s) failed for good: %s", item.topic, item.key, err.str())
        self.spool.done(item)

    def _on_error(self, err) -> None:
        name = err.name() if hasattr(err, "name") else str(err)
        text = err.str() if hasattr(err, "str") else str(err)
        with self._lock:
            if name in _UNREACHABLE:
                self._brokers_down = name == "_ALL_BROKERS_DOWN" or self._brokers_down
            self._note_error(f"kafka: {text}")
            self._fatal = self._fatal or bool(getattr(err, "fatal", lambda: False)())
            starts = name == "_ALL_BROKERS_DOWN" and self._outage_since is None
            if starts:
                self._outage_since = time.monotonic()
        if starts:
            where = self.spool.directory or "memory only"
            log.warning("kafka unreachable (%s); spooling messages (%s) until it is back", text, where)
        elif name not in _UNREACHABLE:
            log.warning("kafka producer error: %s", err)

    def _recreate(self) -> None:
        """After a fatal error (e.g. the idempotent producer lost its sequence): take the old
        producer's messages back into the spool, in order, and start a new producer."""
        log.error("kafka producer hit a fatal error; creating a new producer")
        self._fatal = False
        old, self._producer = self._producer, self._new_producer()
        self._take_back(old)
        self.spool.requeue(self._purged)
        self._purged = []
