"""Materialize the continuous aggregates of 003 and 015 where no background job does it.

PGlite (the local stack's TimescaleDB) runs no background jobs, so the refresh policies in 003
never fire there. The aggregates still answer exactly (``materialized_only = false``: real-time
aggregation of everything past the watermark), but then every query aggregates raw rows, and a
month of 100 cameras is no longer "well under a second". This refresher does what the policies do:
bottom-up (1 minute -> 1 hour -> 1 day), each aggregate over the same window as its policy, ending
at the last complete bucket (the current bucket stays real-time, so it is never stale).

    python -m sql.refresh            # every 30 s until interrupted
    python -m sql.refresh --once     # one pass, prints what it did as JSON

The Faust worker runs the same pass on its leader when ``FOOTFALL_WORKER__CAGG_REFRESH`` is true
(the default; docker-compose turns it off because the official image runs the policies).
Only invalidated ranges are recomputed, so a pass with nothing new is cheap.

``CALL refresh_continuous_aggregate`` refuses to run in a transaction block: the connection is in
autocommit, which pgbouncer's transaction pooling handles like any other statement.

Erasure, archive and backup (``sql.erase``, ``sql.archive``, ``sql.backup``) refresh ranges rather
than the policies' windows: :func:`changed_windows` (after rows were deleted: only what is already
materialized), :func:`covering_windows` (before raw rows are dropped, or after rows were loaded:
without leaving a gap under a watermark), run by :func:`run_plan`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Aggregate:
    view: str
    bucket: timedelta
    start_offset: timedelta  # as in its refresh policy (003)
    source: str  # the relation it reads: a hypertable or the aggregate one level down


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

# Dependency order: each level reads the one before it.
AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("crossings_1m", MINUTE, timedelta(days=2), "crossing_events"),
    Aggregate("occupancy_1m", MINUTE, timedelta(days=2), "occupancy_samples"),
    Aggregate("crossings_1h", HOUR, timedelta(days=3), "crossings_1m"),
    Aggregate("occupancy_1h", HOUR, timedelta(days=3), "occupancy_1m"),
    Aggregate("stream_health_1h", HOUR, timedelta(days=3), "stream_stats"),
    Aggregate("crossings_1d", DAY, timedelta(days=7), "crossings_1h"),
    Aggregate("occupancy_1d", DAY, timedelta(days=7), "occupancy_1h"),
    # 015: zone entries, exits and dwell histograms (appended: each level after the one it reads)
    Aggregate("zone_events_1m", MINUTE, timedelta(days=2), "zone_events"),
    Aggregate("zone_events_1h", HOUR, timedelta(days=3), "zone_events_1m"),
    Aggregate("zone_events_1d", DAY, timedelta(days=7), "zone_events_1h"),
)


def floor_to(t: datetime, step: timedelta) -> datetime:
    """``t`` rounded down to a multiple of ``step`` since the epoch (what ``time_bucket`` does).

    >>> floor_to(datetime(2026, 1, 2, 13, 47, 12, tzinfo=UTC), HOUR).isoformat()
    '2026-01-02T13:00:00+00:00'
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def root(agg: Aggregate, aggregates: Sequence[Aggregate] = AGGREGATES) -> str:
    """The hypertable at the bottom of ``agg``'s stack.

    >>> root(AGGREGATES[-1])
    'zone_events'
    """
    by_view = {a.view: a for a in aggregates}
    while agg.source in by_view:
        agg = by_view[agg.source]
    return agg.source


def downstream(tables: Iterable[str], aggregates: Sequence[Aggregate] = AGGREGATES) -> list[Aggregate]:
    """The aggregates that read ``tables`` directly or through another aggregate, in refresh order.

    >>> [a.view for a in downstream(["stream_stats", "zone_events"])]
    ['stream_health_1h', 'zone_events_1m', 'zone_events_1h', 'zone_events_1d']
    """
    roots = set(tables)
    return [a for a in aggregates if root(a, aggregates) in roots]


def changed_windows(
    changes: Mapping[str, tuple[datetime, datetime]],
    materialized_until: Mapping[str, datetime | None],
    now: datetime,
    aggregates: Sequence[Aggregate] = AGGREGATES,
) -> list[tuple[str, datetime, datetime]]:
    """``(view, start, end)`` to refresh, bottom-up, after rows of hypertables were deleted in
    ``changes[table] = (first, last)`` (times of the rows): the buckets those rows fell in, but
    only the part already materialized (below each aggregate's watermark; what lies above it is
    aggregated in real time from the remaining rows anyway), and never the current bucket. So a
    refresh never moves a watermark forward and never leaves an unmaterialized gap behind it.

    >>> t = datetime(2026, 1, 2, 13, 47, 20, tzinfo=UTC)
    >>> marks = {"crossings_1m": t.replace(hour=14, minute=0, second=0), "crossings_1h": None}
    >>> [(v, a.strftime("%H:%M"), b.strftime("%H:%M")) for v, a, b in changed_windows(
    ...     {"crossing_events": (t, t)}, marks, t.replace(hour=15))]
    [('crossings_1m', '13:47', '13:48')]
    """
    out = []
    for agg in downstream(changes, aggregates):
        first, last = changes[root(agg, aggregates)]
        mark = materialized_until.get(agg.view)
        start = floor_to(first, agg.bucket)
        end = min(floor_to(last, agg.bucket) + agg.bucket, floor_to(now, agg.bucket))
        if mark is not None:
            end = min(end, mark)
            if end > start:
                out.append((agg.view, start, end))
    return out


def covering_windows(
    tables: Iterable[str],
    start: datetime,
    end: datetime,
    materialized_until: Mapping[str, datetime | None],
    now: datetime,
    earliest: Mapping[str, datetime | None] | None = None,
    aggregates: Sequence[Aggregate] = AGGREGATES,
) -> list[tuple[str, datetime, datetime]]:
    """``(view, start, end)`` to refresh, bottom-up, so that every aggregate reading ``tables`` has
    ``start..end`` materialized (before those raw rows are dropped, or after rows were loaded).
    Everything below a watermark is read from materialized rows only, so a window never leaves a
    gap under it: it starts at the aggregate's watermark when that is earlier, or, where nothing
    is materialized yet, at the oldest raw row (``earliest[table]``). The current bucket is never
    materialized.

    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    >>> [(v, a.day, b.day) for v, a, b in covering_windows(
    ...     ["stream_stats"], t0, t1, {"stream_health_1h": t0.replace(day=3)}, t1.replace(day=9))]
    [('stream_health_1h', 1, 2)]
    >>> [(v, a.year, b.year) for v, a, b in covering_windows(
    ...     ["stream_stats"], t0, t1, {}, t1.replace(day=9), {"stream_stats": t0.replace(year=2025)})]
    [('stream_health_1h', 2025, 2026)]
    """
    out = []
    for agg in downstream(tables, aggregates):
        lo = floor_to(start, agg.bucket)
        mark = materialized_until.get(agg.view)
        oldest = (earliest or {}).get(root(agg, aggregates))
        if mark is None and oldest is not None and oldest < lo:
            lo = floor_to(oldest, agg.bucket)
        elif mark is not None and mark < lo:
            lo = floor_to(mark, agg.bucket)
        hi = min(floor_to(end - timedelta(microseconds=1), agg.bucket) + agg.bucket, floor_to(now, agg.bucket))
        if hi > lo:
            out.append((agg.view, lo, hi))
    return out


# The end of what each aggregate has materialized (None: nothing yet), in the current schema.
WATERMARKS_SQL = """
SELECT user_view_name, _timescaledb_functions.cagg_watermark(mat_hypertable_id)
FROM _timescaledb_catalog.continuous_agg
WHERE user_view_schema = current_schema()
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_US = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)  # earlier: "nothing yet"


def watermark_time(microseconds: int | None) -> datetime | None:
    """A watermark as TimescaleDB stores it (µs since the epoch; the minimum = nothing yet).

    >>> watermark_time(-210866803200000000), watermark_time(86_400_000_000).isoformat()
    (None, '1970-01-02T00:00:00+00:00')
    """
    if microseconds is None or microseconds < _FIRST_US:
        return None
    return _EPOCH + timedelta(microseconds=microseconds)


async def watermarks(conn: psycopg.AsyncConnection) -> dict[str, datetime | None]:
    """Each aggregate's watermark (see :data:`WATERMARKS_SQL`)."""
    cur = await conn.execute(WATERMARKS_SQL)
    return {row[0]: watermark_time(row[1]) for row in await cur.fetchall()}


# The continuous aggregates of the current schema: a database at an older migration than this
# checkout lacks the later ones (e.g. 015's zone_events_*), which then have nothing to refresh.
PRESENT_SQL = """
SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema()
"""


async def run_plan(conn: psycopg.AsyncConnection, plan: Sequence[tuple[str, datetime, datetime]]) -> list[str]:
    """Run ``plan`` in order (``conn`` must be in autocommit: the CALL refuses a transaction block),
    skipping aggregates the database does not have (yet)."""
    here = {row[0] for row in await (await conn.execute(PRESENT_SQL)).fetchall()} if plan else set()
    done = []
    for view, start, end in (w for w in plan if w[0] in here):
        await conn.execute("CALL refresh_continuous_aggregate(%s::regclass, %s, %s)", (view, start, end))
        done.append(f"{view} {start.isoformat()}..{end.isoformat()}")
    return done


def windows(now: datetime, aggregates: Sequence[Aggregate] = AGGREGATES) -> list[tuple[str, datetime, datetime]]:
    """``(view, start, end)`` per aggregate, in refresh order: whole buckets from ``now - start_offset``
    up to the start of the current bucket.

    >>> [(v, e.isoformat()) for v, s, e in windows(datetime(2026, 1, 2, 13, 47, tzinfo=UTC))][::3]
    [('crossings_1m', '2026-01-02T13:47:00+00:00'), ('occupancy_1h', '2026-01-02T13:00:00+00:00'), \
('occupancy_1d', '2026-01-02T00:00:00+00:00'), ('zone_events_1d', '2026-01-02T00:00:00+00:00')]
    """
    out = []
    for agg in aggregates:
        end = floor_to(now, agg.bucket)
        start = floor_to(now - agg.start_offset, agg.bucket)
        out.append((agg.view, start, end))
    return out


def refresh_once(dsn: str, now: datetime | None = None) -> list[dict[str, object]]:
    """One bottom-up pass over the aggregates the database has; returns per aggregate its window
    and the seconds it took."""
    now = now or datetime.now(UTC)
    done = []
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True, connect_timeout=10) as conn:
        here = {row[0] for row in conn.execute(PRESENT_SQL).fetchall()}
        for view, start, end in (w for w in windows(now) if w[0] in here):
            t0 = time.perf_counter()
            conn.execute("CALL refresh_continuous_aggregate(%s::regclass, %s, %s)", (view, start, end))
            done.append({"view": view, "start": start.isoformat(), "end": end.isoformat(),
                         "s": round(time.perf_counter() - t0, 3)})  # fmt: skip
    return done


def main(argv: Sequence[str] | None = None) -> int:
    from core.settings import get_settings

    ap = argparse.ArgumentParser(prog="python -m sql.refresh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--once", action="store_true", help="one pass, then exit")
    ap.add_argument("--interval", type=float, default=None, help="seconds between passes (default: settings)")
    args = ap.parse_args(argv)
    s = get_settings()
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dsn = s.database.url.get_secret_value()
    interval = args.interval or s.worker.cagg_refresh_interval_s
    failing = False
    while True:
        try:
            done = refresh_once(dsn)
            if args.once:
                print(json.dumps(done, indent=2))
                return 0
            if failing:
                log.info("continuous aggregate refresh works again")
            failing = False
        except psycopg.Error as exc:
            if args.once:
                print(f"refresh failed: {type(exc).__name__}: {exc}")
                return 1
            if not failing:
                log.warning("continuous aggregate refresh failed (retrying every %.0f s): %s", interval, exc)
            failing = True
        time.sleep(interval)


if __name__ == "__main__":
    raise SystemExit(main())
