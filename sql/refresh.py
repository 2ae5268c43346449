"""Materialize the continuous aggregates of 003 where no background job does it.

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
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Aggregate:
    view: str
    bucket: timedelta
    start_offset: timedelta  # as in its refresh policy (003)


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

# Dependency order: each level reads the one before it.
AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("crossings_1m", MINUTE, timedelta(days=2)),
    Aggregate("occupancy_1m", MINUTE, timedelta(days=2)),
    Aggregate("crossings_1h", HOUR, timedelta(days=3)),
    Aggregate("occupancy_1h", HOUR, timedelta(days=3)),
    Aggregate("stream_health_1h", HOUR, timedelta(days=3)),
    Aggregate("crossings_1d", DAY, timedelta(days=7)),
    Aggregate("occupancy_1d", DAY, timedelta(days=7)),
)


def floor_to(t: datetime, step: timedelta) -> datetime:
    """``t`` rounded down to a multiple of ``step`` since the epoch (what ``time_bucket`` does).

    >>> floor_to(datetime(2026, 1, 2, 13, 47, 12, tzinfo=UTC), HOUR).isoformat()
    '2026-01-02T13:00:00+00:00'
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def windows(now: datetime, aggregates: Sequence[Aggregate] = AGGREGATES) -> list[tuple[str, datetime, datetime]]:
    """``(view, start, end)`` per aggregate, in refresh order: whole buckets from ``now - start_offset``
    up to the start of the current bucket.

    >>> [(v, e.isoformat()) for v, s, e in windows(datetime(2026, 1, 2, 13, 47, tzinfo=UTC))][::3]
    [('crossings_1m', '2026-01-02T13:47:00+00:00'), ('occupancy_1h', '2026-01-02T13:00:00+00:00'), \
('occupancy_1d', '2026-01-02T00:00:00+00:00')]
    """
    out = []
    for agg in aggregates:
        end = floor_to(now, agg.bucket)
        start = floor_to(now - agg.start_offset, agg.bucket)
        out.append((agg.view, start, end))
    return out


def refresh_once(dsn: str, now: datetime | None = None) -> list[dict[str, object]]:
    """One bottom-up pass; returns per aggregate its window and the seconds it took."""
    now = now or datetime.now(UTC)
    done = []
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True, connect_timeout=10) as conn:
        for view, start, end in windows(now):
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
