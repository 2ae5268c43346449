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
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
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


def _timed(client: TestClient, path: str, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    times, size, status = [], 0, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        status, size = r.status_code, len(r.content)
        if status != 200:
            raise RuntimeError(f"{path} {params}: {status} {r.text[:300]}")
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "bytes": size,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.api_queries", description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rate", type=float, default=0.3, help="crossings per camera per minute, on average")
    ap.add_argument("--occupancy-every", type=int, default=5, help="minutes between occupancy samples")
    ap.add_argument("--repeat", type=int, default=5)
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

            app = create_app(settings)
            month = {"from": start.isoformat(), "to": end.isoformat()}
            last_day = {"from": (end - timedelta(days=1)).isoformat(), "to": end.isoformat()}
            cam = cams[len(cams) // 2]
            with TestClient(app) as client:
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
                out["queries"] = {name: _timed(client, p, q, args.repeat) for name, (p, q) in queries.items()}
            out["slowest_median_ms"] = max(q["median_ms"] for q in out["queries"].values())
        finally:
            if not args.keep:
                t0 = time.perf_counter()
                db.execute("DELETE FROM crossing_events WHERE camera_id LIKE %s", (prefix + "-%",))
                db.execute("DELETE FROM occupancy_samples WHERE camera_id LIKE %s", (prefix + "-%",))
                for view in VIEWS:
                    db.execute(
                        f"CALL refresh_continuous_aggregate('{view}', %s::timestamptz, %s::timestamptz)", (start, end)
                    )
                db.execute("DELETE FROM cameras WHERE tenant_id = %s", (tenant,))
                db.execute("DELETE FROM camera_groups WHERE tenant_id = %s", (tenant,))
                db.execute("DELETE FROM tenants WHERE tenant_id = %s", (tenant,))
                out["cleanup_s"] = round(time.perf_counter() - t0, 1)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
