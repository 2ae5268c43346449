"""Sample the database's health with one connection: connections, slow queries, hypertable sizes
and compression, continuous aggregate refresh lag.

    python -m sql.health             # one sample, printed as JSON

The worker's leader calls :func:`sample_dsn` every ``alerting.db_health_interval_s`` and publishes
the result as a ``DbHealth`` record (``agents/db_health.py``); this module imports neither Faust
nor the wire records. Figures:

* **connections**: client backends in ``pg_stat_activity`` and their percent of
  ``max_connections`` (seed 000's ``connection_utilization_percent``);
* **slow queries**: backends ``active`` for more than :data:`SLOW_QUERY_S` (1 s), and the longest;
* **hypertables**: per hypertable (``timescaledb_information.hypertables``) its total bytes
  (``hypertable_detailed_size``), chunks, compressed chunks and compression ratio (bytes before /
  after, ``hypertable_compression_stats``; None while no chunk is compressed);
* **continuous aggregates**: each one's watermark (``_timescaledb_functions.cagg_watermark``, the
  end of what is materialized; everything after it is aggregated in real time) and its lag,
  ``now() - watermark``. The watermark moves only when a refresh materializes rows: an aggregate
  whose source has had no new rows for a while lags as much (read the lag with the data's age).

Every group of figures runs in its own savepoint, so one that the server cannot give (an older
TimescaleDB, missing privileges) is named in :attr:`DbHealthSample.skipped` and the rest is still
sampled. Checked on the local PGlite TimescaleDB 2.23 build: everything works except
``pg_stat_activity``, which lists no backend at all there (PGlite is a single-user server): the
connection and slow-query figures are None and named in ``skipped``.

The sample runs in one read-only transaction (``SET LOCAL statement_timeout``), so it works through
pgbouncer's transaction pooling and never holds a server connection for longer than
:data:`STATEMENT_TIMEOUT_MS` per statement.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

SLOW_QUERY_S = 1.0
STATEMENT_TIMEOUT_MS = 5000

CONNECTIONS_SQL = """
SELECT current_setting('max_connections')::int,
       count(*) FILTER (WHERE backend_type = 'client backend'),
       count(*) FILTER (WHERE pid = pg_backend_pid()),
       count(*) FILTER (WHERE state = 'active' AND pid <> pg_backend_pid()
                        AND clock_timestamp() - query_start > make_interval(secs => %(slow_s)s)),
       max(extract(epoch FROM clock_timestamp() - query_start)::float8)
           FILTER (WHERE state = 'active' AND pid <> pg_backend_pid())
FROM pg_stat_activity
"""

MAX_CONNECTIONS_SQL = "SELECT current_setting('max_connections')::int"

DATABASE_SQL = "SELECT extract(epoch FROM now())::float8, pg_database_size(current_database())"

HYPERTABLES_SQL = """
SELECT h.hypertable_schema, h.hypertable_name, h.num_chunks, s.total_bytes,
       coalesce(cs.number_compressed_chunks, 0),
       cs.before_compression_total_bytes, cs.after_compression_total_bytes
FROM timescaledb_information.hypertables h
CROSS JOIN LATERAL hypertable_detailed_size(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) s
LEFT JOIN LATERAL hypertable_compression_stats(
    format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) cs ON true
ORDER BY 1, 2
"""

CAGGS_SQL = """
SELECT ca.view_schema, ca.view_name,
       extract(epoch FROM _timescaledb_functions.to_timestamp(
           _timescaledb_functions.cagg_watermark(c.mat_hypertable_id)))::float8
FROM timescaledb_information.continuous_aggregates ca
JOIN _timescaledb_catalog.continuous_agg c
  ON c.user_view_schema = ca.view_schema AND c.user_view_name = ca.view_name
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class HypertableSize:
    hypertable: str  # schema-qualified unless in public
    total_bytes: int
    chunks: int
    compressed_chunks: int
    compression_ratio: float | None  # before / after over the compressed chunks


@dataclass(frozen=True)
class CaggLagSample:
    view: str
    watermark: float | None  # epoch seconds; None: never materialized
    lag_s: float | None  # sample time - watermark


@dataclass(frozen=True)
class DbHealthSample:
    """One sample. A figure is None when the server could not give it (see ``skipped``)."""

    database: str  # the name the client connected to (through pgbouncer: its alias)
    at: float  # the server's now(), epoch seconds
    max_connections: int | None = None
    connections: int | None = None
    connections_pct: float | None = None
    slow_queries: int | None = None
    longest_query_s: float | None = None
    database_bytes: int | None = None
    hypertables: list[HypertableSize] = field(default_factory=list)
    caggs: list[CaggLagSample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "what: why"

    @property
    def cagg_refresh_lag_s(self) -> float | None:
        """The largest lag over the aggregates that have a watermark."""
        lags = [c.lag_s for c in self.caggs if c.lag_s is not None]
        return max(lags) if lags else None

    def asdict(self) -> dict[str, Any]:
        return asdict(self) | {"cagg_refresh_lag_s": self.cagg_refresh_lag_s}


def compression_ratio(before: int | None, after: int | None) -> float | None:
    """Bytes before / after compression, None while nothing is compressed.

    >>> compression_ratio(1000, 250), compression_ratio(None, None), compression_ratio(10, 0)
    (4.0, None, None)
    """
    if before is None or after is None or after <= 0:
        return None
    return round(before / after, 3)


def cagg_lag(at: float, watermark: float | None) -> tuple[float | None, float | None]:
    """``(watermark, lag)``; an aggregate never materialized has TimescaleDB's minimum time (or
    -infinity) as its watermark: both None then.

    >>> cagg_lag(1000.0, 400.0), cagg_lag(1000.0, -210866803200.0), cagg_lag(1000.0, float("-inf"))
    ((400.0, 600.0), (None, None), (None, None))
    """
    if watermark is None or not math.isfinite(watermark) or watermark <= 0:
        return None, None
    return watermark, round(max(0.0, at - watermark), 3)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def sample(conn: psycopg.Connection, slow_s: float = SLOW_QUERY_S) -> DbHealthSample:
    """Sample the database ``conn`` is connected to. ``conn`` must not be in a transaction; the
    sample runs in its own (rolled back: it only reads). Connection errors propagate."""
    skipped: list[str] = []
    out: dict[str, Any] = {"database": conn.info.dbname}

    def part(what: str, fn: Any) -> None:
        try:
            with conn.transaction():  # a savepoint: a failing part leaves the others working
                fn()
        except psycopg.Error as exc:
            if conn.broken:
                raise  # the connection is gone: the whole sample failed
            skipped.append(f"{what}: {_short(exc)}")

    def database() -> None:
        at, size = conn.execute(DATABASE_SQL).fetchone()
        out["at"], out["database_bytes"] = at, size

    def connections() -> None:
        max_conn, used, me, slow, longest = conn.execute(CONNECTIONS_SQL, {"slow_s": slow_s}).fetchone()
        out["max_connections"] = max_conn
        if not me:  # our own backend is not listed: the view says nothing (PGlite)
            skipped.append("connections, slow_queries: pg_stat_activity lists no backends (not even this one)")
            return
        out["connections"], out["slow_queries"] = used, slow
        out["connections_pct"] = round(100.0 * used / max_conn, 2) if max_conn else None
        out["longest_query_s"] = round(longest, 3) if longest is not None else None

    def hypertables() -> None:
        rows = conn.execute(HYPERTABLES_SQL).fetchall()
        out["hypertables"] = [
            HypertableSize(_qualified(schema, name), int(total or 0), int(chunks or 0), int(compressed or 0),
                           compression_ratio(before, after))
            for schema, name, chunks, total, compressed, before, after in rows
        ]  # fmt: skip

    def caggs() -> None:
        at = out.get("at")
        found = []
        for schema, view, wm in conn.execute(CAGGS_SQL).fetchall():
            watermark, lag = cagg_lag(at, wm) if at is not None else (None, None)
            found.append(CaggLagSample(_qualified(schema, view), watermark, lag))
        out["caggs"] = found

    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
        part("database", database)
        if "at" not in out:  # now() itself failed: time the sample here
            out["at"] = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        part("connections", connections)
        if "max_connections" not in out:
            part("max_connections", lambda: out.update(max_connections=conn.execute(MAX_CONNECTIONS_SQL).fetchone()[0]))
        part("hypertables", hypertables)
        part("caggs", caggs)
    return DbHealthSample(**out, skipped=skipped)


def sample_dsn(dsn: str, connect_timeout: int = 5) -> DbHealthSample:
    """One sample over a fresh connection (what the worker's timer calls, in a thread)."""
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True, connect_timeout=connect_timeout) as conn:
        return sample(conn)


def main(argv: Sequence[str] | None = None) -> int:
    from core.settings import get_settings

    ap = argparse.ArgumentParser(prog="python -m sql.health", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=None, help="default: settings (FOOTFALL_DATABASE__URL)")
    args = ap.parse_args(argv)
    dsn = args.dsn or get_settings().database.url.get_secret_value()
    try:
        s = sample_dsn(dsn)
    except psycopg.Error as exc:
        print(f"database health not sampled: {_short(exc)}")
        return 1
    print(json.dumps(s.asdict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
