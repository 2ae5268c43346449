"""Helpers for the data lifecycle tests (erasure, export, archive, backup): a tenant's rows in every
table of sql/catalog.py, at a time of the test's choosing, and a private PGlite database."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import psycopg.sql

from infra.local.layout import PGLITE_SERVER
from sql import catalog

FAKE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def old_day() -> datetime:
    """A random UTC midnight between 1975 and 2015: its chunks hold only this test's rows."""
    return datetime(1975, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(40 * 365))


@contextmanager
def in_schema(conn: psycopg.Connection, schema: str) -> Iterator[psycopg.Connection]:
    """One transaction whose unqualified names resolve in ``schema`` (SET LOCAL: pgbouncer-safe)."""
    with conn.transaction():
        conn.execute(psycopg.sql.SQL("SET LOCAL search_path TO {}, public").format(psycopg.sql.Identifier(schema)))
        yield conn


def seed_tenant(
    conn: psycopg.Connection, tenant: str, cameras: list[str], t0: datetime, n: int = 30, schema: str = "public"
) -> None:
    """Reference rows of ``tenant`` and ``n`` rows per camera in every time-series table, from
    ``t0`` on (one every 50 s), in ``schema``, in one transaction."""
    loc, group = f"{tenant}-loc", f"{tenant}-grp"
    with in_schema(conn, schema), conn.cursor() as cur:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'test')", (tenant,))
        conn.execute(
            "INSERT INTO locations (location_id, tenant_id, area_sqm, tags) VALUES (%s, %s, 12.50, '{a,b}')",
            (loc, tenant),
        )
        conn.execute("INSERT INTO camera_groups (group_id, tenant_id) VALUES (%s, %s)", (group, tenant))
        conn.execute(
            "INSERT INTO alert_rules (rule_id, tenant_id, metric, spec) VALUES (%s, %s, 'occupancy_pct', %s)",
            (f"{tenant}-rule", tenant, json.dumps({"rule_id": f"{tenant}-rule", "threshold": 80})),
        )
        conn.execute("INSERT INTO users (user_id, tenant_id, role) VALUES (%s, %s, 'admin')", (f"{tenant}-u", tenant))
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, role, hash) VALUES (%s, %s, 'viewer', %s)",
            (uuid.uuid4().hex[:12], tenant, FAKE_HASH),
        )
        for cam in cameras:
            conn.execute(
                "INSERT INTO cameras (camera_id, tenant_id, location_id, tags, alert_thresholds)"
                " VALUES (%s, %s, %s, %s, %s)",
                (cam, tenant, loc, ["door", "north"], json.dumps({"occupancy_pct": 90})),
            )
            conn.execute("INSERT INTO camera_group_members (group_id, camera_id) VALUES (%s, %s)", (group, cam))
            conn.execute(
                "INSERT INTO counting_lines (camera_id, line_id, start_x, start_y, end_x, end_y)"
                " VALUES (%s, 'door', 1, 1, 9, 9)",
                (cam,),
            )
            conn.execute(
                "INSERT INTO zones (camera_id, zone_id, polygon, capacity) VALUES (%s, 'hall', %s, 20)",
                (cam, json.dumps([[0, 0], [10, 0], [10, 10]])),
            )
        for cam in cameras:
            times = [t0 + timedelta(seconds=50 * i, microseconds=123) for i in range(n)]
            cur.executemany(
                "INSERT INTO crossing_events (occurred_at, event_id, camera_id, line_id, track_id, direction,"
                " frame_seq, processed_at, x, y, confidence)"
                " VALUES (%s, %s, %s, 'door', %s, %s, %s, %s, 1.5, 2.25, 0.9)",
                [(t, f"{cam}:door:{i}:{i}", cam, i, "in" if i % 3 else "out", i, t) for i, t in enumerate(times)],
            )
            cur.executemany(
                "INSERT INTO zone_events (occurred_at, event_id, camera_id, zone_id, track_id, kind, frame_seq,"
                " processed_at) VALUES (%s, %s, %s, 'hall', %s, %s, %s, %s)",
                [(t, f"{cam}:hall:{i}", cam, i, "enter" if i % 2 else "exit", i, t) for i, t in enumerate(times)],
            )
            cur.executemany(
                "INSERT INTO occupancy_samples (at, camera_id, zone_id, count) VALUES (%s, %s, 'hall', %s)",
                [(t, cam, i % 7) for i, t in enumerate(times)],
            )
            cur.executemany(
                "INSERT INTO stream_stats (at, camera_id, grabber_id, status, window_s, input_fps, processed_fps,"
                " dropped_frames, decode_errors, reconnects) VALUES (%s, %s, 'g1', 'online', 10, 10, 9.5, %s, 0, 0)",
                [(t, cam, i) for i, t in enumerate(times)],
            )
            cur.executemany(
                "INSERT INTO camera_health (at, camera_id, status, stream_quality_score, frame_drop_pct, offline_s)"
                " VALUES (%s, %s, 'online', 0.95, 0.5, 0)",
                [(t, cam) for t in times],
            )
            cur.executemany(
                "INSERT INTO line_counts_1m (bucket, camera_id, line_id, direction, count, updated_at)"
                " VALUES (%s, %s, 'door', 'in', %s, %s)",
                [(t0 + timedelta(minutes=i), cam, i, t0) for i in range(n // 10)],
            )
            cur.executemany(
                "INSERT INTO track_summaries (first_seen, event_id, camera_id, track_id, segment, final, last_seen,"
                " ts, xs, ys, hs, x_min, x_max, y_min, y_max, tolerance_px, confirmed_t, mean_speed, max_speed,"
                " lines, zones, processed_at) VALUES (%s, %s, %s, %s, 0, true, %s, '{0,1.5}', '{1,9}', '{1,9}',"
                " '{50,52}', 1, 9, 1, 9, 2, 0.2, 7.5, 8, '[[\"door\", \"in\", 1]]', '[]', %s)",
                [(t, f"{cam}:{i}:0", cam, i, t + timedelta(seconds=1.5), t) for i, t in enumerate(times)],
            )
            conn.execute(
                "INSERT INTO whatif_lines (camera_id, name, kind, geometry, range_from, range_to, interval_s, method)"
                " VALUES (%s, 'door-2', 'line', '{\"start\": [2, 0], \"end\": [2, 9]}', %s, %s, 3600, 'tracks')",
                (cam, t0, t0 + timedelta(days=1)),
            )
            conn.execute(
                "INSERT INTO whatif_counts (camera_id, name, bucket, direction, count)"
                " VALUES (%s, 'door-2', %s, 'in', 3)",
                (cam, t0),
            )
            cur.execute(
                "INSERT INTO alerts (triggered_at, alert_id, rule, camera_id, severity, status, title, updated_at,"
                " tenant_id) VALUES (%s, %s, 'camera_offline', %s, 'critical', 'active', 'offline', %s, %s)",
                (t0, f"{cam}-alert", cam, t0, tenant),
            )


def camera_rows(conn: psycopg.Connection, cameras: list[str]) -> dict[str, int]:
    """Rows of ``cameras`` in every relation of the catalogue that has a camera (aggregates too)."""
    out = {}
    for rel in catalog.RELATIONS:
        if rel.camera:
            q = f"SELECT count(*) FROM {rel.name} WHERE camera_id = ANY(%s)"
            out[rel.name] = conn.execute(q, (cameras,)).fetchone()[0]
    return out


def tenant_rows(conn: psycopg.Connection, tenant: str) -> dict[str, int]:
    """Rows of ``tenant`` in every relation of the catalogue (by the same rule the code uses)."""
    out = {}
    for rel in catalog.RELATIONS:
        where = catalog.tenant_filter(rel).as_string(conn)
        out[rel.name] = conn.execute(f"SELECT count(*) FROM {rel.name} WHERE {where}", {"tenant": tenant}).fetchone()[0]
    return out


def counts(conn: psycopg.Connection, cameras: list[str]) -> dict[str, list[tuple]]:
    """What a restore must give back: crossings per camera/line/direction and every aggregate's rows."""
    out = {
        "crossings": conn.execute(
            "SELECT camera_id, line_id, direction, count(*) FROM crossing_events WHERE camera_id = ANY(%s)"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            (cameras,),
        ).fetchall()
    }
    for rel in catalog.RELATIONS:
        if rel.kind == "aggregate":
            out[rel.name] = conn.execute(
                f"SELECT * FROM {rel.name} WHERE camera_id = ANY(%s) ORDER BY 1, 2, 3", (cameras,)
            ).fetchall()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_pglite(workdir: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """A second, empty PGlite + TimescaleDB (the local stack's server script) on a free port;
    yields its DSN (straight to PGlite: one client at a time, no TLS)."""
    import shutil

    port = _free_port()
    log = workdir / f"pglite-{port}.log"
    node = shutil.which("node") or "node"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [node, str(PGLITE_SERVER), "--data", str(workdir / f"pglite-{port}"), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while b"ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private PGlite did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield f"postgresql://postgres:x@127.0.0.1:{port}/postgres?sslmode=disable&connect_timeout=10"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
