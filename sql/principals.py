"""Tenants, users and API keys in the database, and the audit log's one writer.

Used by the API's routes and by ``python -m api keys|users|tenants``; the rule that admits a key
is ``core.principals.refusal``. Every function takes a connection inside the caller's
transaction, so a change and its audit row commit together.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from core.principals import KeyRow, hash_key, new_key, rank

KEY_COLUMNS = "key_id, tenant_id, user_id, role, name, created_at, created_by, expires_at, revoked_at"
USER_COLUMNS = "user_id, tenant_id, role, name, email, disabled_at, created_at"


async def lookup_key(conn: AsyncConnection, key_id: str) -> KeyRow | None:
    """The row that checking ``key_id`` needs (``authenticate_key()``: works before the tenant is known)."""
    cur = await conn.execute("SELECT * FROM authenticate_key(%s)", (key_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    if not isinstance(row, dict):
        row = dict(zip([c.name for c in cur.description or []], row, strict=True))
    return KeyRow(**row)


# The built-in rules (migrations 006, 008, 010) every tenant gets a copy of, as <tenant>.<rule_id>:
# a rule only ever sees its own tenant's cameras. (database_high_connections is the platform's.)
TENANT_RULES = (
    "camera_offline", "poor_stream_quality", "high_processing_latency", "zone_over_capacity", "ai_model_drift",
    "count_anomaly",
)  # fmt: skip


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, name: str = "") -> list[str] | None:
    """Create the tenant if missing, with its copies of the built-in alert rules. Returns the ids of
    the rules it was given (publish them), or None if the tenant existed."""
    cur = await conn.execute(
        "INSERT INTO tenants (tenant_id, name) VALUES (%s, %s) ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id",
        (tenant_id, name),
    )
    if await cur.fetchone() is None:
        return None
    if tenant_id == "default":
        return []
    cur = await conn.execute(
        "INSERT INTO alert_rules (rule_id, tenant_id, metric, active, spec) "
        "SELECT %(t)s || '.' || rule_id, %(t)s, metric, active, "
        "       spec || jsonb_build_object('rule_id', %(t)s || '.' || rule_id, 'tenant', %(t)s) "
        "FROM alert_rules WHERE tenant_id = 'default' AND rule_id = ANY(%(ids)s) "
        "ON CONFLICT DO NOTHING RETURNING rule_id",
        {"t": tenant_id, "ids": list(TENANT_RULES)},
    )
    return [r["rule_id"] if isinstance(r, dict) else r[0] for r in await cur.fetchall()]


async def create_key(
    conn: AsyncConnection,
    tenant_id: str,
    role: str,
    name: str = "",
    user_id: str | None = None,
    expires_at: datetime | None = None,
    created_by: str = "",
) -> tuple[dict[str, Any], str]:
    """(the stored row, the key itself: shown once)."""
    rank(role)
    key_id, key = new_key()
    cur = await conn.execute(
        f"INSERT INTO api_keys (key_id, tenant_id, user_id, role, name, hash, expires_at, created_by) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {KEY_COLUMNS}",
        (key_id, tenant_id, user_id, role, name, hash_key(key), expires_at, created_by),
    )
    return await cur.fetchone(), key


async def list_keys(conn: AsyncConnection, tenant_id: str | None = None) -> list[dict[str, Any]]:
    where, params = ("WHERE tenant_id = %s", (tenant_id,)) if tenant_id else ("", ())
    cur = await conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", params)
    return await cur.fetchall()


async def get_key(conn: AsyncConnection, key_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
    return await cur.fetchone()


async def revoke_key(conn: AsyncConnection, key_id: str) -> dict[str, Any] | None:
    """Revoke now (idempotent: an already revoked key keeps its time). None if unknown."""
    cur = await conn.execute(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s RETURNING {KEY_COLUMNS}",
        (key_id,),
    )
    return await cur.fetchone()


async def create_user(
    conn: AsyncConnection, user_id: str, tenant_id: str, role: str, name: str = "", email: str | None = None
) -> dict[str, Any]:
    rank(role)
    cur = await conn.execute(
        f"INSERT INTO users (user_id, tenant_id, role, name, email) VALUES (%s, %s, %s, %s, %s) "
        f"RETURNING {USER_COLUMNS}",
        (user_id, tenant_id, role, name, email),
    )
    return await cur.fetchone()


async def list_users(conn: AsyncConnection) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY user_id")
    return await cur.fetchall()


async def get_user(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,))
    return await cur.fetchone()


async def disable_user(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE user_id = %s RETURNING {USER_COLUMNS}",
        (user_id,),
    )
    return await cur.fetchone()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


async def audit(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    actor: str,
    actor_role: str | None,
    action: str,
    object_type: str | None = None,
    object_id: str | None = None,
    before: Any = None,
    after: Any = None,
    outcome: str = "ok",
    request_id: str | None = None,
    source_ip: str | None = None,
) -> None:
    """Append one row to the audit log (``audit_append()``: the application cannot change rows)."""
    await conn.execute(
        "SELECT audit_append(%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)",
        (tenant, actor, actor_role, action, object_type, object_id, _json(before), _json(after), outcome,
         request_id, source_ip),
    )  # fmt: skip
