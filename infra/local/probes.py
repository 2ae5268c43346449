"""Does a service really answer? One real round trip each; raise with the reason if not."""

from __future__ import annotations

import logging
import uuid

HEALTH_TOPIC = "footfall-local.healthcheck"

# librdkafka logs every refused connection while the broker starts; the probe reports failures
# itself, so its clients log nowhere.
_quiet = logging.getLogger("infra.local.probes.rdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def kafka_roundtrip(bootstrap: str, timeout_s: float = 10.0) -> None:
    """Create (once) a scratch topic, produce one record and read that same record back."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    common = {"bootstrap.servers": bootstrap, "logger": _quiet}
    admin = AdminClient({**common, "socket.timeout.ms": int(timeout_s * 1000)})
    topics = admin.list_topics(timeout=timeout_s).topics
    if HEALTH_TOPIC not in topics:
        fut = admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)], operation_timeout=timeout_s)[HEALTH_TOPIC]
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    marker = uuid.uuid4().hex.encode()
    producer = Producer({**common, "acks": "all", "message.timeout.ms": int(timeout_s * 1000)})
    delivered: list = []
    producer.produce(HEALTH_TOPIC, marker, on_delivery=lambda err, msg: delivered.append((err, msg)))
    producer.flush(timeout_s)
    if not delivered:
        raise RuntimeError(f"produce to {HEALTH_TOPIC} not acknowledged within {timeout_s:.0f} s")
    err, msg = delivered[0]
    if err is not None:
        raise RuntimeError(f"produce to {HEALTH_TOPIC} failed: {err}")
    consumer = Consumer({**common, "group.id": "footfall-local-healthcheck", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(HEALTH_TOPIC, msg.partition(), msg.offset())])
        got = consumer.poll(timeout_s)
    finally:
        consumer.close()
    if got is None or got.error() or got.value() != marker:
        reason = "nothing" if got is None else (got.error() or "another record")
        raise RuntimeError(f"consume from {HEALTH_TOPIC}: expected the record just produced, got {reason}")


def db_select_one(dsn: str, timeout_s: float = 5.0) -> None:
    """``SELECT 1`` through pgbouncer (no prepared statements: transaction pooling)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), prepare_threshold=None, autocommit=True) as c:
        row = c.execute("SELECT 1").fetchone()
    if row != (1,):
        raise RuntimeError(f"SELECT 1 returned {row!r}")


def redis_ping(host: str, port: int, timeout_s: float = 2.0) -> None:
    import redis

    client = redis.Redis(host=host, port=port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        if client.ping() is not True:
            raise RuntimeError("PING did not answer PONG")
    finally:
        client.close()


def prometheus_ready(host: str, port: int, timeout_s: float = 2.0) -> None:
    """``GET /-/ready``: 200 once the TSDB is open and the configuration (rules included) loaded."""
    import urllib.error
    import urllib.request

    url = f"http://{host}:{port}/-/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - a loopback http URL
            status = resp.status
    except urllib.error.HTTPError as exc:  # 503 while starting up
        status = exc.code
    if status != 200:
        raise RuntimeError(f"{url} answered HTTP {status}")
