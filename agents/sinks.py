"""Sinks: crossings, zone events, window counts, occupancy, stream stats and alerts -> TimescaleDB.

One agent per topic (registered only when ``settings.worker.sinks``). Each batches messages and
writes a batch with one ``INSERT ... SELECT FROM unnest(...)`` (``agents.rows``), idempotent on the
rows' keys (events ``ON CONFLICT DO NOTHING``; window counts and alerts upsert, newest wins).

Delivery: at least once into an idempotent table = exactly once in the table.

- Acks are manual (``stream.noack()``): a message is acked only after the batch holding it was
  written (or, when malformed, after it reached the dead-letter topic). Faust commits a partition's
  offset only up to the first unacked message, so a crash or SIGKILL replays at most the unwritten
  batch, and replayed rows are dropped by the conflict clauses. ``Stream.take()`` is not used: it
  acks its batch in a ``finally`` (faust/streams.py), i.e. also when the agent is cancelled while
  the batch is still unwritten (worker shutdown during a database outage), after which the
  consumer's final commit would skip those rows.
- Bounded latency: a batch is written when it holds ``sink_batch_max`` messages or its oldest
  message is ``sink_batch_within_s`` old (a timer task checks every ``within/4``).
- Back-pressure: while a batch is being written (or retried) the agent waits on the batch's lock,
  so it takes no more messages; Faust's per-partition buffer fills and the consumer pauses
  fetching. Memory stays bounded by one batch plus Faust's stream buffer.
- Outages: connection errors (and any error that is not about the rows themselves) are retried
  forever with exponential backoff and jitter (tenacity, capped at 10 s); the outage is logged once
  when it starts and once when it ends. Rows the database refuses (data / constraint errors) are
  found by halving the batch and go to the dead-letter topic with the database's reason.

Connections: one psycopg async pool per worker, ``prepare_threshold=None`` and autocommit
(pgbouncer transaction pooling; every write is one statement). The database URL (with its
password) is never logged. Camera rows are not needed: the hypertables have no foreign keys to
``cameras`` on purpose (001), so a sink never waits for configuration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import psycopg
from faust.types import AgentT
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never, wait_exponential_jitter

from agents import metrics
from agents.app import app, dead_letter_topic, settings, source_topic
from agents.deadletter import dead_letter as make_dead_letter
from agents.rows import SPECS, OutageLog, Row, TableSpec, split_halves
from models.base import SchemaError, parse
from models.topics import topic_name
from sql.roles import set_role

log = logging.getLogger(__name__)
# The pool warns on every failed connection attempt; the writers log an outage once per state change.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

# Errors about the rows themselves (SQLSTATE classes 22 and 23): retrying cannot help.
BAD_ROWS = (psycopg.DataError, psycopg.IntegrityError)


def is_transient(exc: BaseException) -> bool:
    """Everything but bad rows is worth retrying: connection loss, pgbouncer's refusals, timeouts,
    even a missing table (a migration not applied yet). Nothing is dropped while it lasts."""
    return isinstance(exc, psycopg.Error | PoolTimeout | OSError) and not isinstance(exc, BAD_ROWS)


# --------------------------------------------------------------------------- the connection pool

_pool: AsyncConnectionPool | None = None
_pool_lock = asyncio.Lock()


async def get_pool() -> AsyncConnectionPool:
    """The worker's pool, opened on first use without waiting for the database to answer."""
    global _pool
    async with _pool_lock:
        if _pool is None:
            pool = AsyncConnectionPool(
                settings.database.url.get_secret_value(),
                min_size=settings.database.pool_min,
                max_size=settings.database.pool_max,
                kwargs={"prepare_threshold": None, "autocommit": True, "connect_timeout": 5},
                check=AsyncConnectionPool.check_connection,  # drop connections that died in an outage
                timeout=10.0,
                # No background reconnect loop: connections are made on demand, paced by the writers'
                # backoff (the pool grows again when a writer waits for a connection).
                reconnect_timeout=0,
                open=False,
                name="footfall-sinks",
            )
            await pool.open(wait=False)
            _pool = pool
        return _pool


# --------------------------------------------------------------------------- dead letters


async def dead_letter(source: str, event: faust.EventT | None, error: str) -> None:
    """Send a message that cannot be stored to the dead-letter topic (record built by
    ``agents.deadletter``) and wait until the broker has it: only then may the message be acked."""
    msg = event.message if event is not None else None
    if msg is not None:
        record = make_dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value, error)
    else:
        record = make_dead_letter(source, -1, -1, None, None, error)
    log.warning("dead letter: %s[%s]@%s: %s", record.source_topic, record.partition, record.offset, error)
    fut = await dead_letter_topic.send(key=record.source_topic.encode(), value=record.to_json())
    await fut


# --------------------------------------------------------------------------- writing a batch


class TableWriter:
    """Writes rows of one table: retries transient errors forever, dead-letters refused rows."""

    def __init__(
        self,
        spec: TableSpec,
        pool: Callable[[], Awaitable[AsyncConnectionPool]] = get_pool,
        on_refused: Callable[[Row, str], Awaitable[None]] | None = None,
        max_wait_s: float = 10.0,
    ) -> None:
        self.spec = spec
        self.pool = pool
        self.on_refused = on_refused
        self.max_wait_s = max_wait_s
        self.outage = OutageLog()
        self.rows_written = 0

    async def write(self, rows: list[Row]) -> None:
        """Store ``rows``; returns only when every row is in the table or was dead-lettered."""
        if not rows:
            return
        try:
            await self._execute_retrying(rows)
        except BAD_ROWS as exc:
            if len(rows) == 1:
                reason = f"{self.spec.table} refused the row: {type(exc).__name__}: {exc}".strip()
                if self.on_refused is None:
                    log.error("%s (row dropped: no dead-letter handler)", reason)
                else:
                    await self.on_refused(rows[0], reason)
                return
            for half in split_halves(rows):
                await self.write(list(half))

    async def _execute_retrying(self, rows: list[Row]) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(initial=0.2, max=self.max_wait_s),
            stop=stop_never,
            before_sleep=self._on_failure,
            reraise=True,
        )
        started = time.monotonic()
        async for attempt in retrying:
            with attempt:
                await self._execute(rows)
        metrics.sink_batch_seconds.labels(self.spec.table).observe(time.monotonic() - started)
        metrics.sink_rows.labels(self.spec.table).inc(len(rows))
        metrics.sink_outage.labels(self.spec.table).set(0)
        length = self.outage.recovered(time.monotonic())
        if length is not None:
            log.warning("%s sink: database writes work again after %.1f s; catching up", self.spec.name, length)
        self.rows_written += len(rows)

    async def _execute(self, rows: list[Row]) -> None:
        pool = await self.pool()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(set_role(settings.database.writer_role))  # the worker's role: every tenant
            await conn.execute(self.spec.sql, self.spec.params(rows))

    def _on_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        metrics.sink_outage.labels(self.spec.table).set(1)
        if self.outage.failed(time.monotonic()):
            log.error(
                "%s sink: database write failed (%s: %s); holding the batch and retrying with backoff, "
                "offsets are not committed past it",
                self.spec.name,
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if exc else "",
            )


# --------------------------------------------------------------------------- batching


class Batcher:
    """One sink's open batch: messages in, one write out, acks after the write.

    ``add`` and the timer's ``flush_if_due`` share a lock, so a slow write blocks the agent (which
    is the back-pressure) and never runs twice at once.
    """

    def __init__(
        self,
        spec: TableSpec,
        writer: TableWriter,
        ack: Callable[[Any], Awaitable[Any]],
        max_messages: int,
        within_s: float,
    ) -> None:
        self.spec = spec
        self.writer = writer
        self.ack = ack
        self.max_messages = max_messages
        self.within_s = within_s
        self.lock = asyncio.Lock()
        self.rows: list[Row] = []
        self.events: list[Any] = []
        self.origin: dict[int, Any] = {}  # id(row) -> its event, for dead-lettering refused rows
        self.opened_at: float | None = None

    async def add(self, event: Any, row: Row | None) -> None:
        """Add a message (``row`` None: nothing to write, e.g. already dead-lettered)."""
        async with self.lock:
            if row is not None:
                self.rows.append(row)
                self.origin[id(row)] = event
            self.events.append(event)
            if self.opened_at is None:
                self.opened_at = time.monotonic()
            if len(self.events) >= self.max_messages:
                await self._flush_locked()

    def due(self, now: float) -> bool:
        return self.opened_at is not None and now - self.opened_at >= self.within_s

    async def flush_if_due(self) -> None:
        if self.due(time.monotonic()):
            async with self.lock:
                if self.due(time.monotonic()):
                    await self._flush_locked()

    async def flush(self) -> None:
        async with self.lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not self.events:
            return
        await self.writer.write(self.spec.prepare(self.rows))
        for event in self.events:
            await self.ack(event)
        self.rows, self.events, self.origin, self.opened_at = [], [], {}, None

    def event_of(self, row: Row) -> Any:
        return self.origin.get(id(row))


# --------------------------------------------------------------------------- agents


def make_sink(spec: TableSpec) -> Callable[[faust.StreamT], Awaitable[None]]:
    """The agent body for one table: parse, batch, write, ack."""
    topic = topic_name(settings.kafka.topic_prefix, spec.topic)

    async def sink(stream: faust.StreamT) -> None:
        stream = stream.noack()
        batcher: Batcher

        async def refused(row: Row, reason: str) -> None:
            await dead_letter(topic, batcher.event_of(row), reason)

        writer = TableWriter(spec, on_refused=refused)
        batcher = Batcher(
            spec,
            writer,
            ack=stream.ack,
            max_messages=settings.worker.sink_batch_max,
            within_s=settings.worker.sink_batch_within_s,
        )

        async def timer() -> None:
            while True:
                await asyncio.sleep(batcher.within_s / 4)
                await batcher.flush_if_due()

        ticking = asyncio.create_task(timer(), name=f"sink-{spec.name}-timer")
        try:
            async for event in stream.events():
                try:
                    record = parse(spec.record, event.value)
                except SchemaError as exc:
                    await dead_letter(topic, event, str(exc))
                    await batcher.add(event, None)
                    continue
                await batcher.add(event, spec.row(record))
        finally:
            # Unwritten messages stay unacked: their offsets are not committed, they come back.
            ticking.cancel()

    sink.__name__ = sink.__qualname__ = f"sink_{spec.name.replace('-', '_')}"
    return sink


def register(specs: tuple[TableSpec, ...] = SPECS) -> dict[str, AgentT]:
    """Register one sink agent per table spec on the app."""
    agents = {}
    for spec in specs:
        channel = source_topic(spec.topic)
        agents[spec.name] = app.agent(channel, name=f"footfall.sinks.{spec.name}")(make_sink(spec))
    return agents


async def refresh_aggregates() -> None:
    """Materialize the continuous aggregates bottom-up (see ``sql.refresh``); failures are logged once
    per state change and retried on the next tick."""
    from sql.refresh import refresh_once

    try:
        await asyncio.to_thread(refresh_once, settings.database.url.get_secret_value())
    except psycopg.Error as exc:
        if _refresh_state.failed(time.monotonic()):
            log.warning("continuous aggregate refresh failed (retried every tick): %s", exc)
        return
    if _refresh_state.recovered(time.monotonic()) is not None:
        log.warning("continuous aggregate refresh works again")


_refresh_state = OutageLog()

if settings.worker.sinks:
    SINK_AGENTS = register()
    if settings.worker.cagg_refresh:
        app.timer(interval=settings.worker.cagg_refresh_interval_s, on_leader=True)(refresh_aggregates)
