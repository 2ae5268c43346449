"""Camera configuration in the database: read it back as a ``CameraConfig``, write it in one
transaction (tenant and location rows first, the stream password encrypted, lines, zones and group
memberships replaced), delete it. Connections come from the app's pool (psycopg, async, through
pgbouncer: no prepared statements, no session state)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from api import queries
from models.records import CameraConfig
from sql.credentials import encrypt_password

KEEP = object()  # sentinel: leave the stored password as it is


async def camera_exists(conn: AsyncConnection, camera_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM cameras WHERE camera_id = %s", (camera_id,))
    return await cur.fetchone() is not None


async def load_camera(conn: AsyncConnection, camera_id: str) -> tuple[CameraConfig, bool] | None:
    """(config, has_password) or None when the camera is unknown."""
    cur = await conn.execute(
        f"SELECT {', '.join(queries.CAMERA_COLUMNS)}, stream_password_enc IS NOT NULL AS has_password "
        "FROM cameras WHERE camera_id = %s",
        (camera_id,),
    )
    cam = await cur.fetchone()
    if cam is None:
        return None
    lines = await (await conn.execute("SELECT * FROM counting_lines WHERE camera_id = %s", (camera_id,))).fetchall()
    zones = await (await conn.execute("SELECT * FROM zones WHERE camera_id = %s", (camera_id,))).fetchall()
    groups = await (
        await conn.execute("SELECT group_id FROM camera_group_members WHERE camera_id = %s", (camera_id,))
    ).fetchall()
    return queries.config_from_rows(cam, lines, zones, [g["group_id"] for g in groups]), bool(cam["has_password"])


async def list_cameras(
    conn: AsyncConnection, tenant: str | None, location: str | None, group: str | None, limit: int, offset: int
) -> list[tuple[CameraConfig, bool]]:
    where, params = [], {"limit": limit, "offset": offset}
    if tenant is not None:
        where.append("c.tenant_id = %(tenant)s")
        params["tenant"] = tenant
    if location is not None:
        where.append("c.location_id = %(location)s")
        params["location"] = location
    if group is not None:
        where.append(
            "EXISTS (SELECT 1 FROM camera_group_members m WHERE m.camera_id = c.camera_id AND m.group_id = %(group)s)"
        )
        params["group"] = group
    cur = await conn.execute(
        f"SELECT c.camera_id FROM cameras c {'WHERE ' + ' AND '.join(where) if where else ''} "
        "ORDER BY c.camera_id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    out = []
    for row in await cur.fetchall():
        loaded = await load_camera(conn, row["camera_id"])
        if loaded is not None:
            out.append(loaded)
    return out


async def save_camera(conn: AsyncConnection, cfg: CameraConfig, password: Any, secret_key: str | None) -> bool:
    """Write ``cfg`` (inside the caller's transaction). ``password``: a string to store encrypted,
    ``""`` or None to remove the stored one, :data:`KEEP` to leave it. Returns True if created."""
    row = queries.camera_row(cfg)
    await conn.execute("INSERT INTO tenants (tenant_id) VALUES (%s) ON CONFLICT (tenant_id) DO NOTHING", (cfg.tenant,))
    if cfg.location is not None:
        await conn.execute(
            "INSERT INTO locations (location_id, tenant_id) VALUES (%s, %s) ON CONFLICT (location_id) DO NOTHING",
            (cfg.location, cfg.tenant),
        )
    cols = list(queries.CAMERA_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "camera_id")
    if password is not KEEP:
        if password:
            if not secret_key:
                raise PasswordStorageError(
                    "FOOTFALL_SECRET_KEY is not set on the API server: stream passwords cannot be stored"
                )
            row["stream_password_enc"] = encrypt_password(password, secret_key)
        else:
            row["stream_password_enc"] = None
        cols.append("stream_password_enc")
        updates += ", stream_password_enc = EXCLUDED.stream_password_enc"
    cur = await conn.execute(
        f"INSERT INTO cameras ({', '.join(cols)}) VALUES ({', '.join(f'%({c})s' for c in cols)}) "
        f"ON CONFLICT (camera_id) DO UPDATE SET {updates} RETURNING (xmax = 0) AS created",
        row,
    )
    created = bool((await cur.fetchone())["created"])
    await conn.execute("DELETE FROM counting_lines WHERE camera_id = %s", (cfg.camera_id,))
    await conn.execute("DELETE FROM zones WHERE camera_id = %s", (cfg.camera_id,))
    await conn.execute("DELETE FROM camera_group_members WHERE camera_id = %s", (cfg.camera_id,))
    async with conn.cursor() as cur:
        lines = queries.line_rows(cfg)
        if lines:
            await cur.executemany(
                "INSERT INTO counting_lines (camera_id, line_id, name, start_x, start_y, end_x, end_y, count_mode) "
                "VALUES (%(camera_id)s, %(line_id)s, %(name)s, %(start_x)s, %(start_y)s, %(end_x)s, %(end_y)s, "
                "%(count_mode)s)",
                lines,
            )
        zones = queries.zone_rows(cfg)
        if zones:
            await cur.executemany(
                "INSERT INTO zones (camera_id, zone_id, name, polygon, capacity, alert_threshold_pct, area_sqm) "
                "VALUES (%(camera_id)s, %(zone_id)s, %(name)s, %(polygon)s, %(capacity)s, %(alert_threshold_pct)s, "
                "%(area_sqm)s)",
                zones,
            )
        for group in sorted(set(cfg.groups)):
            await cur.execute(
                "INSERT INTO camera_groups (group_id, tenant_id) VALUES (%s, %s) ON CONFLICT (group_id) DO NOTHING",
                (group, cfg.tenant),
            )
            await cur.execute(
                "INSERT INTO camera_group_members (group_id, camera_id) VALUES (%s, %s)", (group, cfg.camera_id)
            )
    return created


async def delete_camera(conn: AsyncConnection, camera_id: str) -> bool:
    """Remove the camera's row (lines, zones and memberships cascade; its history stays)."""
    cur = await conn.execute("DELETE FROM cameras WHERE camera_id = %s RETURNING camera_id", (camera_id,))
    return await cur.fetchone() is not None


class PasswordStorageError(RuntimeError):
    """A password was given but the server has no key to encrypt it with."""
