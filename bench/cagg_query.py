"""Continuous aggregates vs raw rows: load a month of synthetic crossings for many cameras, then
time the API's hourly / daily / peak-hour / per-minute questions both ways. Prints JSON.

    python -m bench.cagg_query [--cameras 100] [--days 30] [--rate 1.0] [--dsn URL] [--keep]

Everything goes into a throw-away schema (``bench_<random>``) built by the real migrations, so the
shared database's data is never touched; the schema is dropped at the end unless ``--keep``.

The events: every camera, every minute, a random number of crossings on two lines following a
daily profile (quiet nights, a midday and an evening peak), ``--rate`` times ~0.7 per minute on
average. They are generated server-side with ``generate_series`` (COPY FROM STDIN does not work on
PGlite), one day per statement; a sink-style load, ``INSERT ... SELECT FROM unnest(arrays)`` from
Python, is measured separately on a smaller batch.

Each query runs three ways: from the raw hypertable; from the aggregate with nothing materialized
(real-time aggregation only: what PGlite, whose background jobs never run, always does); and from
the aggregate after ``refresh_continuous_aggregate`` bottom-up (what the refresh policies give on
the official image). Results are checked to be equal. Times are the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from sql.migrate import migrate

LOAD_DAY = """
INSERT INTO {schema}.crossing_events
    (occurred_at, event_id, camera_id, line_id, track_id, direction, frame_seq, processed_at, x, y, confidence)
SELECT m.minute + make_interval(secs => (k * 7 + cam.n) %% 60),
       format('%%s:%%s:%%s', cam.id, extract(epoch FROM m.minute)::bigint, k),
       cam.id,
       CASE WHEN k %% 2 = 0 THEN 'l1' ELSE 'l2' END,
       k,
       CASE WHEN random() < 0.55 THEN 'in' ELSE 'out' END,
       (extract(epoch FROM m.minute) * 1000000)::bigint + k,
       m.minute + INTERVAL '1 minute',
       320, 180, 0.9
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - INTERVAL '1 minute', INTERVAL '1 minute')
     AS m(minute)
CROSS JOIN LATERAL (
    SELECT format('bench-cam-%%s', lpad(n::text, 4, '0')) AS id, n
    FROM generate_series(1, %(cameras)s) AS n
) AS cam
CROSS JOIN LATERAL generate_series(1, floor(random() * (
    2 * %(rate)s * (0.5 + (cam.n %% 10) / 10.0)
      * (0.2 + 1.5 * exp(-power((extract(hour FROM m.minute) - 12) / 3.0, 2))
             + 1.0 * exp(-power((extract(hour FROM m.minute) - 18) / 2.0, 2)))
    + 1) + 0 * cam.n)::int) AS k
"""

INSERT_UNNEST = """
INSERT INTO {schema}.crossing_events
    (occurred_at, event_id, camera_id, line_id, track_id, direction, frame_seq, processed_at, x, y, confidence)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[],
                     %s::bigint[], %s::timestamptz[], %s::real[], %s::real[], %s::real[])
ON CONFLICT DO NOTHING
"""

# name -> (raw query, aggregate query); parameters: start, end, camera, day_start
QUERIES: dict[str, tuple[str, str]] = {
    "hourly_one_camera_30d": (
        """SELECT time_bucket(INTERVAL '1 hour', occurred_at) AS b, count(*) FROM {schema}.crossing_events
           WHERE camera_id = %(camera)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
           GROUP BY b ORDER BY b""",
        """SELECT bucket, sum(crossings) FROM {schema}.crossings_1h
           WHERE camera_id = %(camera)s AND bucket >= %(start)s AND bucket < %(end)s
           GROUP BY bucket ORDER BY bucket""",
    ),
    "daily_all_cameras_30d": (
        """SELECT time_bucket(INTERVAL '1 day', occurred_at) AS b, camera_id, direction, count(*)
           FROM {schema}.crossing_events WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
           GROUP BY b, camera_id, direction ORDER BY b, camera_id, direction""",
        """SELECT bucket, camera_id, direction, sum(crossings) FROM {schema}.crossings_1d
           WHERE bucket >= %(start)s AND bucket < %(end)s
           GROUP BY bucket, camera_id, direction ORDER BY bucket, camera_id, direction""",
    ),
    "peak_hour_all_cameras_30d": (
        """SELECT DISTINCT ON (camera_id, day) camera_id, day, hour, n FROM (
               SELECT camera_id, time_bucket(INTERVAL '1 day', occurred_at) AS day,
                      time_bucket(INTERVAL '1 hour', occurred_at) AS hour, count(*) AS n
               FROM {schema}.crossing_events WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
               GROUP BY camera_id, day, hour) AS h
           ORDER BY camera_id, day, n DESC, hour""",
        """SELECT camera_id, day, peak_hour, crossings FROM {schema}.peak_hours
           WHERE day >= %(start)s AND day < %(end)s ORDER BY camera_id, day""",
    ),
    "per_minute_one_camera_last_day": (
        """SELECT time_bucket(INTERVAL '1 minute', occurred_at) AS b, line_id, direction, count(*)
           FROM {schema}.crossing_events
           WHERE camera_id = %(camera)s AND occurred_at >= %(day_start)s AND occurred_at < %(end)s
           GROUP BY b, line_id, direction ORDER BY b, line_id, direction""",
        """SELECT bucket, line_id, direction, crossings FROM {schema}.crossings_1m
           WHERE camera_id = %(camera)s AND bucket >= %(day_start)s AND bucket < %(end)s
           ORDER BY bucket, line_id, direction""",
    ),
}


def _q(text: str, schema: str) -> sql.Composed:
    return sql.SQL(text).format(schema=sql.Identifier(schema))


def _normalise(rows: list[tuple]) -> list[tuple]:
    # sum() over bigint is numeric: compare counts as ints.
    return [tuple(int(v) if isinstance(v, Decimal) else v for v in r) for r in rows]


def _time(conn: psycopg.Connection, query: sql.Composed, params: dict[str, Any], repeat: int) -> tuple[float, list]:
    times, result = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        result = conn.execute(query, params).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), _normalise(result)


def _unnest_rows(n: int, start: datetime) -> list[list]:
    cols: list[list] = [[] for _ in range(11)]
    for i in range(n):
        at = start + timedelta(milliseconds=137 * i)
        row = (at, f"bench-sink:{i}", "bench-sink", "l1", i, "in" if i % 3 else "out", i, at, 1.0, 2.0, 0.8)
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols


def run(dsn: str, cameras: int, days: int, rate: float, repeat: int, keep: bool) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {"schema": schema, "cameras": cameras, "days": days, "rate": rate}
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # whole UTC days, all past
    start = end - timedelta(days=days)

    t = time.perf_counter()
    migrate(dsn, schema=schema)
    out["migrate_s"] = round(time.perf_counter() - t, 2)
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        try:
            # Bulk load: one day per statement, generated by the server.
            t = time.perf_counter()
            loaded = 0
            for d in range(days):
                day_start = start + timedelta(days=d)
                cur = conn.execute(
                    _q(LOAD_DAY, schema),
                    {"start": day_start, "end": day_start + timedelta(days=1), "cameras": cameras, "rate": rate},
                )
                loaded += cur.rowcount
                elapsed = time.perf_counter() - t
                print(f"loaded day {d + 1}/{days}: {loaded} rows, {loaded / elapsed:.0f} rows/s", file=sys.stderr)
            load_s = time.perf_counter() - t
            out["load"] = {
                "rows": loaded,
                "seconds": round(load_s, 1),
                "rows_per_s": round(loaded / load_s),
                "method": "INSERT ... SELECT generate_series, one day per statement",
            }

            # Sink-style load: arrays from Python through unnest, 5,000 rows per statement.
            n, batch = 50_000, 5_000
            cols = _unnest_rows(n, start + timedelta(hours=13))
            t = time.perf_counter()
            for i in range(0, n, batch):
                conn.execute(_q(INSERT_UNNEST, schema), [c[i : i + batch] for c in cols])
            unnest_s = time.perf_counter() - t
            out["load_unnest"] = {
                "rows": n,
                "batch": batch,
                "seconds": round(unnest_s, 2),
                "rows_per_s": round(n / unnest_s),
            }

            params = {"start": start, "end": end, "camera": "bench-cam-0007", "day_start": end - timedelta(days=1)}
            results: dict[str, dict[str, Any]] = {}
            raw_results: dict[str, list] = {}
            for name, (raw, agg) in QUERIES.items():
                raw_ms, raw_rows = _time(conn, _q(raw, schema), params, repeat)
                rt_ms, rt_rows = _time(conn, _q(agg, schema), params, repeat)
                raw_results[name] = raw_rows
                results[name] = {
                    "rows": len(raw_rows),
                    "raw_ms": raw_ms,
                    "cagg_realtime_ms": rt_ms,
                    "realtime_matches_raw": rt_rows == raw_rows,
                }

            # Materialize bottom-up, as the refresh policies would (outside any transaction).
            refresh: dict[str, float] = {}
            for view in ("crossings_1m", "crossings_1h", "crossings_1d"):
                t = time.perf_counter()
                conn.execute(
                    "CALL refresh_continuous_aggregate(%s::regclass, NULL, NULL)",
                    (f"{schema}.{view}",),
                )
                refresh[view] = round(time.perf_counter() - t, 1)
                print(f"refreshed {view} in {refresh[view]} s", file=sys.stderr)
            out["refresh_s"] = refresh
            for name, (_, agg) in QUERIES.items():
                mat_ms, mat_rows = _time(conn, _q(agg, schema), params, repeat)
                results[name]["cagg_materialized_ms"] = mat_ms
                results[name]["materialized_matches_raw"] = mat_rows == raw_results[name]
                results[name]["speedup_materialized"] = round(results[name]["raw_ms"] / max(mat_ms, 0.1), 1)
            out["queries"] = results

            sizes = {}
            for rel in ("crossing_events", "crossings_1m", "crossings_1h", "crossings_1d"):
                (size,) = conn.execute("SELECT hypertable_size(%s::regclass)", (f"{schema}.{rel}",)).fetchone()
                sizes[rel] = size
            out["bytes"] = sizes
        finally:
            if not keep:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=1.0, help="scales the ~0.7 crossings/camera/minute profile")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default=None, help="default: settings (FOOTFALL_DATABASE__URL)")
    parser.add_argument("--keep", action="store_true", help="keep the bench schema")
    args = parser.parse_args()
    if args.dsn is None:
        from core.settings import get_settings

        args.dsn = get_settings().database.url.get_secret_value()
    started = time.perf_counter()
    result = run(args.dsn, args.cameras, args.days, args.rate, args.repeat, args.keep)
    result["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
