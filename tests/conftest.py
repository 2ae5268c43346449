"""Shared fixtures. Integration tests use the real local stack (Kafka, TimescaleDB, Redis):

- ``stack``: makes sure it is up (the same code as ``python -m infra.local up``); never tears it
  down, so other test runs and developers keep using it. Returns its ``Layout``.
- ``kafka``: unique scratch topics plus confluent-kafka producers/consumers, cleaned up after.
- ``pg``: a psycopg connection through pgbouncer (autocommit, no prepared statements).
- ``redis_client``: a redis-py client.
- ``db`` / ``rds``: the same, one per test module (for module-scoped worlds).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.settings import get_settings


@pytest.fixture(scope="session")
def stack():
    from infra.local import stack as local_stack
    from infra.local.services import StackError

    try:
        # Migrations are applied by `make up` (and by the schema tests), not here: a test run must not
        # record a migration file that someone is still writing.
        local_stack.up(get_settings(), migrate_db=False)
    except StackError as exc:
        pytest.fail(f"the local stack did not come up: {exc}", pytrace=False)
    return local_stack.layout(get_settings())


class KafkaFactory:
    """Scratch topics (deleted afterwards) and clients (closed afterwards) on the local broker."""

    def __init__(self, bootstrap: str):
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._topics: list[str] = []
        self._consumers: list[Any] = []

    def topic(self, partitions: int = 1, config: dict[str, str] | None = None, prefix: str = "test") -> str:
        from confluent_kafka.admin import NewTopic

        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        self.admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(timeout=30)
        self._topics.append(name)
        return name

    def producer(self, **conf: Any):
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all", **conf})

    def consumer(self, *topics: str, **conf: Any):
        """A consumer in a fresh group reading from the beginning, subscribed to ``topics``."""
        from confluent_kafka import Consumer

        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"test-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **conf,
            }
        )
        if topics:
            c.subscribe(list(topics))
        self._consumers.append(c)
        return c

    def close(self) -> None:
        for c in self._consumers:
            c.close()
        if self._topics:
            for fut in self.admin.delete_topics(self._topics, operation_timeout=30).values():
                fut.result(timeout=30)


@pytest.fixture
def kafka(stack) -> Iterator[KafkaFactory]:
    factory = KafkaFactory(stack.bootstrap)
    yield factory
    factory.close()


@pytest.fixture
def pg(stack):
    import psycopg

    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as conn:
        yield conn


@pytest.fixture
def redis_client(stack):
    import redis

    client = redis.Redis(host=stack.redis_host, port=stack.redis_port, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture(scope="module")
def db(stack):
    import psycopg

    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def rds(stack):
    import redis

    client = redis.Redis(host=stack.redis_host, port=stack.redis_port, socket_timeout=5)
    yield client
    client.close()
