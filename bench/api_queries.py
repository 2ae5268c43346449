"""How fast the API answers over a month of data for 100 cameras. Prints JSON.

    python -m bench.api_queries [--cameras 100] [--days 30] [--rate 0.3] [--occupancy-every 5] [--repeat 5]

Loads synthetic crossings (``--rate`` per camera per minute on average, two lines, a daily
profile) and occupancy samples (one zone per camera, one sample every ``--occupancy-every``
minutes) for cameras ``bench-api-<run>-NNNN`` of the tenant ``bench-api-<run>`` into the shared
database, server-side with ``generate_series`` (one day per statement, so other clients of the
single-connection local database interleave). Then ``CALL refresh_continuous_aggregate`` bottom-up
over the month (what the refresh policies do on the official image), and times the API's count,
peak-hour and occupancy endpoints in process (FastAPI TestClient: routing, validation, SQL and
JSON included; no network). Everything loaded is deleted at the end and the aggregates refreshed
again over the range, so nothing of the run stays behind (``--keep`` keeps it).

Tenant isolation (issue 9): every query is timed twice, interleaved, with the same viewer key of
the bench tenant: ``on`` is the app as it runs (each request one transaction as ``footfall_api``,
row-level security and the scoped views), ``off`` replaces only the request's connection with the
pre-isolation one (the pool's own role, no tenant, the raw tables and aggregates); both
authenticate the key the same way. ``isolation``
reports both medians and p99s and the overhead; the target is within 20 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi import Request
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Viewer
from core.settings import get_settings

LOAD_CROSSINGS = """
INSERT INTO crossing_events
    (occurred_at, event_id, camera_id, line_id, track_id, direction, frame_seq, processed_at, x, y)
SELECT m.minute + make_interval(secs => (k * 7 + cam.n) %% 60),
       format('%%s:%%s:%%s', cam.id, extract(epoch FROM m.minute)::bigint, k),
       cam.id,
       CASE WHEN k %% 2 = 0 THEN 'l1' ELSE 'l2' END,
       k,
       CASE WHEN random() < 0.55 THEN 'in' ELSE 'out' END,
       (extract(epoch FROM m.minute) * 1000000)::bigint + k,
       m.minute + INTERVAL '1 minute',
       320, 180
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - INTERVAL '1 minute', INTERVAL '1 minute')
     AS m(minute)
CROSS JOIN LATERAL (
    SELECT format('%%s-%%s', %(prefix)s::text, lpad(n::text, 4, '0')) AS id, n
    FROM generate_series(1, %(cameras)s) AS n
) AS cam
CROSS JOIN LATERAL generate_series(1, floor(random() * (
    2 * %(rate)s * (0.2 + 1.5 * exp(-power((extract(hour FROM m.minute) - 12) / 3.0, 2))
                        + 1.0 * exp(-power((extract(hour FROM m.minute) - 18) / 2.0, 2)))
    + 1) + 0 * cam.n)::int) AS k
ON CONFLICT DO NOTHING
"""

LOAD_OCCUPANCY = """
INSERT INTO occupancy_samples (at, camera_id, zone_id, count, capacity, capacity_pct)
SELECT m.t, cam.id, 'hall', c.count, 50, c.count * 2.0
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - INTERVAL '1 second', %(every)s::interval) AS m(t)
CROSS JOIN LATERAL (
    SELECT format('%%s-%%s', %(prefix)s::text, lpad(n::text, 4, '0')) AS id, n FROM generate_series(1, %(cameras)s) AS n
) AS cam
CROSS JOIN LATERAL (SELECT floor(random() * 30 + 0 * cam.n)::int AS count) AS c
ON CONFLICT DO NOTHING
"""

VIEWS = ("crossings_1m", "crossings_1h", "crossings_1d", "occupancy_1m", "occupancy_1h", "occupancy_1d")


def _one(client: TestClient, path: str, params: dict[str, Any]) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.get(path, params=params)
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{path} {params}: {r.status_code} {r.text[:300]}")
    return ms, len(r.content)


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _timed(clients: dict[str, TestClient], path: str, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Median and p99 per client (``on`` / ``off``), taking turns so drift hits both alike."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    size = 0
    for client in clients.values():
        _one(client, path, params)  # warm: plans, caches, the key's verification
    for _ in range(repeat):
        for name, client in clients.items():
            ms, size = _one(client, path, params)
            times[name].append(ms)
    out: dict[str, Any] = {"bytes": size}
    for name, ts in times.items():
        out[f"{name}_median_ms"] = round(statistics.median(ts), 1)
        out[f"{name}_p99_ms"] = round(_p99(ts), 1)
    if "off" in times:
        out["overhead_median_pct"] = round(100 * (out["on_median_ms"] / out["off_median_ms"] - 1), 1)
        out["overhead_p99_pct"] = round(100 * (out["on_p99_ms"] / out["off_p99_ms"] - 1), 1)
    return out


def _unscoped_app(settings: Any) -> Any:
    """The app with the request connection of before tenant isolation (everything else equal)."""
    from api.deps import get_conn

    app = create_app(settings)

    async def unscoped(request: Request, _caller: Viewer) -> AsyncIterator[Any]:  # authenticated alike
        async with request.app.state.pool.connection() as conn:
            yield conn

    app.dependency_overrides[get_conn] = unscoped
    return app


def _round_trip_ms(db: psycopg.Connection, n: int = 50) -> float:
    """Median time of one trivial statement: what each extra statement of a request costs."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        db.execute("SELECT 1").fetchone()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def make_key(db: psycopg.Connection, tenant: str, role: str) -> str:
    from core.principals import hash_key, new_key

    key_id, key = new_key()
    db.execute(
        "INSERT INTO api_keys (key_id, tenant_id, role, name, hash) VALUES (%s, %s, %s, 'bench', %s)",
        (key_id, tenant, role, hash_key(key)),
    )
    return key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.api_queries", description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rate", type=float, default=0.3, help="crossings per camera per minute, on average")
    ap.add_argument("--occupancy-every", type=int, default=5, help="minutes between occupancy samples")
    ap.add_argument("--repeat", type=int, default=20, help="timed requests per query and mode (p99 needs many)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    settings = get_settings()
    run = uuid.uuid4().hex[:8]
    tenant = f"bench-api-{run}"
    prefix = tenant
    cams = [f"{prefix}-{n:04d}" for n in range(1, args.cameras + 1)]
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=args.days)
    out: dict[str, Any] = {"cameras": args.cameras, "days": args.days, "rate_per_min": args.rate, "tenant": tenant}
    dsn = settings.database.url.get_secret_value()

    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as db:
        try:
            db.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench, removed at the end')", (tenant,))
            db.execute("INSERT INTO camera_groups (group_id, tenant_id) VALUES (%s, %s)", (tenant, tenant))
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO cameras (camera_id, tenant_id) VALUES (%s, %s)", [(c, tenant) for c in cams]
                )
                cur.executemany(
                    "INSERT INTO camera_group_members (group_id, camera_id) VALUES (%s, %s)",
                    [(tenant, c) for c in cams],
                )
            t0 = time.perf_counter()
            for d in range(args.days):
                day = {"start": start + timedelta(days=d), "end": start + timedelta(days=d + 1)}
                db.execute(LOAD_CROSSINGS, {**day, "prefix": prefix, "cameras": args.cameras, "rate": args.rate})
                every = timedelta(minutes=args.occupancy_every)
                db.execute(LOAD_OCCUPANCY, {**day, "prefix": prefix, "cameras": args.cameras, "every": every})
            out["load_s"] = round(time.perf_counter() - t0, 1)
            counts = db.execute(
                "SELECT (SELECT count(*) FROM crossing_events WHERE camera_id LIKE %(p)s),"
                " (SELECT count(*) FROM occupancy_samples WHERE camera_id LIKE %(p)s)",
                {"p": prefix + "-%"},
            ).fetchone()
            out["rows"] = {"crossing_events": counts[0], "occupancy_samples": counts[1]}
            t0 = time.perf_counter()
            for view in VIEWS:
                db.execute(
                    f"CALL refresh_continuous_aggregate('{view}', %s::timestamptz, %s::timestamptz)", (start, end)
                )
            out["refresh_s"] = round(time.perf_counter() - t0, 1)

            key = make_key(db, tenant, "viewer")
            month = {"from": start.isoformat(), "to": end.isoformat()}
            last_day = {"from": (end - timedelta(days=1)).isoformat(), "to": end.isoformat()}
            cam = cams[len(cams) // 2]
            auth = {"Authorization": f"Bearer {key}"}
            with (
                TestClient(create_app(settings), headers=auth) as client,
                TestClient(_unscoped_app(settings), headers=auth) as unscoped,
            ):
                r = client.get(f"/api/v1/cameras/{cam}/counts", params={**month, "interval": "day"})
                out["check_total_crossings_cam"] = r.json()["totals"]["total"]
                queries = {
                    "counts_hour_1cam_month": (f"/api/v1/cameras/{cam}/counts", {**month, "interval": "hour"}),
                    "counts_day_1cam_month": (f"/api/v1/cameras/{cam}/counts", {**month, "interval": "day"}),
                    "counts_minute_1cam_day": (f"/api/v1/cameras/{cam}/counts", {**last_day, "interval": "minute"}),
                    "counts_day_100cam_month_group": ("/api/v1/counts", {**month, "interval": "day", "group": tenant}),
                    "counts_hour_100cam_day_group": (
                        "/api/v1/counts",
                        {**last_day, "interval": "hour", "group": tenant},
                    ),
                    "peak_hours_1cam_month": (f"/api/v1/cameras/{cam}/peak-hours", month),
                    "occupancy_hour_1cam_month": (
                        f"/api/v1/cameras/{cam}/occupancy/history",
                        {**month, "interval": "hour"},
                    ),
                    "occupancy_day_1cam_month": (
                        f"/api/v1/cameras/{cam}/occupancy/history",
                        {**month, "interval": "day"},
                    ),
                    "occupancy_now_db_fallback": (f"/api/v1/cameras/{cam}/occupancy", {}),
                    "metrics_crossings_fleet_1d_30d": (
                        "/api/v1/metrics",
                        {"metric": "crossings", "interval": "1d", "timeRange": f"{args.days}d"},
                    ),
                }
                clients = {"on": client, "off": unscoped}
                out["queries"] = {name: _timed(clients, p, q, args.repeat) for name, (p, q) in queries.items()}
            out["slowest_median_ms"] = max(q["on_median_ms"] for q in out["queries"].values())
            overheads = [q["overhead_median_pct"] for q in out["queries"].values()]
            rtt = _round_trip_ms(db)
            beyond = [
                round(100 * ((q["on_median_ms"] - 2 * rtt) / q["off_median_ms"] - 1), 1)
                for q in out["queries"].values()
            ]
            out["isolation"] = {
                "max_overhead_median_pct": max(overheads),
                "mean_overhead_median_pct": round(statistics.mean(overheads), 1),
                "max_overhead_p99_pct": max(q["overhead_p99_pct"] for q in out["queries"].values()),
                "within_20pct": max(overheads) <= 20.0,
                # Isolation costs two statements per request (BEGIN + settings, COMMIT): what one
                # costs here, and the overhead left once they are taken out (the queries' own).
                "round_trip_ms": rtt,
                "max_overhead_beyond_round_trips_pct": max(beyond),
                "mean_overhead_beyond_round_trips_pct": round(statistics.mean(beyond), 1),
            }
        finally:
            if not args.keep:
                t0 = time.perf_counter()
                db.execute("DELETE FROM crossing_events WHERE camera_id LIKE %s", (prefix + "-%",))
                db.execute("DELETE FROM occupancy_samples WHERE camera_id LIKE %s", (prefix + "-%",))
                for view in VIEWS:
                    db.execute(
                        f"CALL refresh_continuous_aggregate('{view}', %s::timestamptz, %s::timestamptz)", (start, end)
                    )
                db.execute("DELETE FROM api_keys WHERE tenant_id = %s", (tenant,))
                db.execute("DELETE FROM cameras WHERE tenant_id = %s", (tenant,))
                db.execute("DELETE FROM camera_groups WHERE tenant_id = %s", (tenant,))
                db.execute("DELETE FROM tenants WHERE tenant_id = %s", (tenant,))
                out["cleanup_s"] = round(time.perf_counter() - t0, 1)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
