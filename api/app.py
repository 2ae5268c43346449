"""The HTTP API: a small FastAPI app served by uvicorn beside the Faust worker (``python -m api``).

``create_app(settings)`` wires one database pool (psycopg, through pgbouncer), one Redis client
and one Kafka producer (for the camera-config topic) into ``app.state``; the routes live in
``api.routes``. Errors are JSON ``{"detail": "<what is wrong, naming the parameter or field>"}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api import perftest, security
from api.auth import Authenticator, install_request_ids
from api.metrics import install as install_metrics
from api.queries import ParamError
from api.store import PasswordStorageError
from core.settings import Settings, get_settings
from models.base import SchemaError
from models.kafka_security import librdkafka_security
from models.topics import catalogue, ensure_topics, topic_name

log = logging.getLogger(__name__)

DESCRIPTION = """People counting over Kafka and TimescaleDB: cameras and their counting lines and zones,
counts and occupancy from the continuous aggregates, stream health (seed 002 endpoints) and a live push.

**Auth**: every endpoint but `/health` and `/metrics` needs `Authorization: Bearer <API key>`
(`python -m api keys create --tenant T --role admin` makes the first one). Roles: `viewer` reads,
`operator` also changes cameras, lines, zones and acts on alerts, `admin` also manages users,
keys, alert rules, erasure and reads the audit log, `superadmin` spans tenants. Every caller sees
only its own tenant's cameras, counts, alerts and live push."""


class PublishError(RuntimeError):
    """A topic the API writes did not acknowledge a record."""


# What the API publishes: camera configs and alert rules (compacted), people's alert actions.
PUBLISHED_TOPICS = ("camera-config", "alert-rules", "alert-events")


class ConfigPublisher:
    """Publishes camera configurations (compacted camera-config topic, key ``camera_id``), alert
    rules (compacted alert-rules, key ``rule_id``) and people's alert actions (alert-events, key
    ``alert_id``).

    librdkafka's default partitioner (``consistent_random``, CRC32 of the key), like the grabbers
    and the simulator: a camera's config lands on the same partition as its detections, which the
    counting agents (and ``agents.push``'s table) rely on. Do not switch it to murmur2 alone.
    """

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        from confluent_kafka import Producer

        # A record not acknowledged within timeout_s fails for good (message.timeout.ms), so a
        # write answered 503 can never reach the topic later.
        self.timeout_s = timeout_s
        self.topics = {name: topic_name(settings.kafka.topic_prefix, name) for name in PUBLISHED_TOPICS}
        self.topic = self.topics["camera-config"]
        self._settings = settings
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": int(timeout_s * 1000),
                "socket.timeout.ms": 10_000,
                **librdkafka_security(settings.kafka),
            }
        )

    def ensure_topic(self) -> None:
        kafka = self._settings.kafka
        spec = [s for s in catalogue(kafka.topic_prefix, kafka.partitions) if s.name in self.topics.values()]
        ensure_topics(self._settings.kafka.bootstrap, spec, timeout_s=10, kafka=self._settings.kafka)

    def publish(self, key: str, value: bytes | None, topic: str = "camera-config") -> None:
        """Produce to one of :data:`PUBLISHED_TOPICS` and wait for the broker's acknowledgement;
        raise :class:`PublishError` otherwise."""
        name = self.topics[topic]
        errors: list[Any] = []
        delivered: list[bool] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            (errors.append(err) if err is not None else delivered.append(True))

        self._producer.produce(name, key=key.encode(), value=value, on_delivery=on_delivery)
        self._producer.flush(self.timeout_s + 5)
        if errors or not delivered:
            reason = errors[0] if errors else "no acknowledgement in time"
            raise PublishError(f"the {topic} topic {name} did not take the update: {reason}")

    def reachable(self, timeout_s: float = 3.0) -> bool:
        self._producer.list_topics(timeout=timeout_s)
        return True

    def close(self) -> None:
        self._producer.flush(5)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    import redis.asyncio as aioredis

    settings: Settings = app.state.settings
    pool = AsyncConnectionPool(
        settings.database.url.get_secret_value(),
        min_size=settings.database.pool_min,
        max_size=settings.database.pool_max,
        kwargs={"prepare_threshold": None, "autocommit": True, "row_factory": dict_row},
        timeout=15,
        open=False,
    )
    await pool.open(wait=False)  # the API starts (and /health says why) even if the DB is down
    app.state.pool = pool
    app.state.redis = aioredis.Redis.from_url(settings.redis.url.get_secret_value(), socket_timeout=5)
    app.state.auth.pool = pool
    app.state.publisher = ConfigPublisher(settings, app.state.publish_timeout_s)
    try:
        await asyncio.to_thread(app.state.publisher.ensure_topic)
    except Exception as exc:  # broker down: writes will answer 503 until it is back
        log.warning("could not check/create the topics the API writes: %s", exc)
    sync = asyncio.create_task(publish_rules(pool, app.state.publisher))
    try:
        yield
    finally:
        sync.cancel()
        await perftest.shutdown(app.state)  # a running performance test cleans up first
        await asyncio.to_thread(app.state.publisher.close)
        await app.state.redis.aclose()
        await pool.close()


async def publish_rules(pool: AsyncConnectionPool, publisher: ConfigPublisher, attempts: int = 30) -> int:
    """Publish every stored alert rule to the alert-rules topic (at start: the built-in rules of
    migration 006 reach the workers, and a topic recreated empty is filled again). Republishing is
    harmless (the topic is compacted, workers keep the newest). Retries while the database or the
    broker is not up yet; returns how many rules were published."""
    from api.routes.alerts import load_rules

    for attempt in range(attempts):
        try:
            async with pool.connection() as conn:
                rules = await load_rules(conn)
            for rule in rules:
                await asyncio.to_thread(publisher.publish, rule.rule_id, rule.to_json(), "alert-rules")
            log.info("published %d alert rules", len(rules))
            return len(rules)
        except (psycopg.Error, PoolTimeout, PublishError) as exc:
            log.warning("alert rules not published yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(min(2.0 * (attempt + 1), 30.0))
    log.error("alert rules were not published: database or broker unavailable")
    return 0


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"] or ["body"]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail = "; ".join(f"{_loc(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5])
        safe = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return _error(422, detail or "invalid request", errors=safe)

    @app.exception_handler(ParamError)
    async def param_error(_req: Request, exc: ParamError) -> JSONResponse:
        return _error(422, str(exc), param=exc.param)

    @app.exception_handler(SchemaError)
    async def schema_error(_req: Request, exc: SchemaError) -> JSONResponse:
        return _error(422, str(exc), field=exc.field)

    @app.exception_handler(PasswordStorageError)
    async def password_error(_req: Request, exc: PasswordStorageError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(PublishError)
    async def publish_error(_req: Request, exc: PublishError) -> JSONResponse:
        return _error(503, f"{exc}; nothing was stored, retry")

    @app.exception_handler(psycopg.errors.DataError)
    @app.exception_handler(psycopg.errors.IntegrityError)
    async def db_refused(_req: Request, exc: psycopg.Error) -> JSONResponse:
        msg = exc.diag.message_primary if exc.diag and exc.diag.message_primary else type(exc).__name__
        return _error(422, f"the database refused the values: {msg}")

    @app.exception_handler(psycopg.errors.InsufficientPrivilege)
    async def not_permitted(_req: Request, exc: psycopg.Error) -> JSONResponse:
        # Row-level security refused a write: the row belongs to another tenant (ids are global).
        msg = exc.diag.message_primary if exc.diag and exc.diag.message_primary else type(exc).__name__
        log.warning("database refused a write as not permitted: %s", msg)
        return _error(403, "not permitted: the object belongs to another tenant or is out of your reach")

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def db_down(_req: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return _error(503, "the database is unavailable, retry shortly")


def create_app(settings: Settings | None = None, publish_timeout_s: float = 10.0) -> FastAPI:
    from api.routes import (
        admin,
        alerts,
        analytics,
        cameras,
        console,
        health,
        live,
        monitoring,
        performance,
        tracks,
        zones,
    )

    app = FastAPI(
        title="footfall API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    app.state.publish_timeout_s = publish_timeout_s
    app.state.auth = Authenticator(app.state.settings, pool=None)  # the pool arrives with the lifespan
    install_error_handlers(app)
    security.install(app, app.state.settings)  # before the metrics: their middleware then counts its 413s
    app.state.metrics = install_metrics(app)
    install_request_ids(app)
    # before the cameras: /cameras/{id}/snapshot.jpg must not be taken for a camera's sub-path
    console.install(app)
    for module in (health, cameras, analytics, zones, tracks, monitoring, alerts, live, performance, admin):
        app.include_router(module.router)
    return app
