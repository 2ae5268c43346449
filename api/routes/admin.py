"""Tenants (superadmin), users and API keys (admin of the tenant), the audit log (admin).

Keys are shown once, in the answer that creates them; the database keeps an argon2id hash. A key
never gets a role above its creator's, nor above its user's. Every change is audited in the same
transaction as the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api import erasure
from api.auth import Admin, Superadmin
from api.deps import Conn, audit, caller_transaction
from api.schemas import ID_PATTERN, Text
from core.principals import Principal, at_least
from sql import principals as db

router = APIRouter(prefix="/api/v1", tags=["tenants, users, keys, audit"])

RoleName = Literal["viewer", "operator", "admin", "superadmin"]


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str = Field(pattern=ID_PATTERN)
    name: Text = ""


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=ID_PATTERN)
    tenant: str | None = Field(None, pattern=ID_PATTERN, description="default: the caller's tenant")
    role: RoleName = "viewer"
    name: Text = ""
    email: str | None = Field(None, max_length=320)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = ""
    role: RoleName = "viewer"
    tenant: str | None = Field(None, pattern=ID_PATTERN, description="default: the caller's tenant")
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="default: never")


def _tenant_for(principal: Principal, tenant: str | None) -> str:
    tenant = tenant or principal.tenant
    if not principal.may_act_in(tenant):
        raise HTTPException(403, f"tenant: {principal.actor} cannot act in tenant {tenant!r}")
    return tenant


def _grantable(principal: Principal, role: str) -> None:
    if not at_least(principal.role, role):
        raise HTTPException(403, f"role: {principal.actor} ({principal.role}) cannot grant {role}")


# ----------------------------------------------------------------------------- tenants


@router.get("/tenants", summary="Tenants (superadmin)")
async def list_tenants(conn: Conn, _p: Superadmin) -> dict[str, Any]:
    rows = await (await conn.execute("SELECT tenant_id, name, created_at FROM tenants ORDER BY tenant_id")).fetchall()
    return {"tenants": rows}


@router.post("/tenants", status_code=status.HTTP_201_CREATED, summary="Create a tenant (superadmin)")
async def create_tenant(request: Request, conn: Conn, body: TenantIn, _p: Superadmin) -> dict[str, Any]:
    rules = await db.ensure_tenant(conn, body.tenant_id, body.name)
    if rules is None:
        raise HTTPException(409, f"tenant {body.tenant_id!r} exists")
    await audit(request, conn, "tenant.create", "tenant", body.tenant_id, None, body.model_dump(),
                tenant=body.tenant_id)  # fmt: skip
    await erasure.publish_rules(request.app.state, conn, rules)
    return {"tenant_id": body.tenant_id, "name": body.name, "alert_rules": rules}


@router.delete("/tenants/{tenant_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Erase a tenant (superadmin)")
async def delete_tenant(
    request: Request,
    principal: Superadmin,
    tenant_id: str,
    erase: bool = Query(False, description="must be true: a tenant goes only with all its data"),
) -> Response:
    """Erases every camera, count, alert, rule, user and key of the tenant (tables, aggregates,
    Redis, the archive, the workers' state through camera tombstones); answered once done. The
    audit log keeps its rows."""
    if not erase:
        raise HTTPException(422, "erase: deleting a tenant erases all its data; pass erase=true to confirm")
    if tenant_id == "default":
        raise HTTPException(422, "tenant_id: the default tenant holds the platform's rules and cannot be erased")
    state = request.app.state
    async with caller_transaction(state, principal) as conn:
        if await (await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,))).fetchone() is None:
            raise HTTPException(404, f"unknown tenant {tenant_id!r}")
        cur = await conn.execute("SELECT camera_id FROM cameras WHERE tenant_id = %s", (tenant_id,))
        cameras = [r["camera_id"] for r in await cur.fetchall()]
        await audit(request, conn, "tenant.erase", "tenant", tenant_id, {"cameras": cameras}, None, tenant=tenant_id)
    await erasure.erase_tenant(state, tenant_id, cameras)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/tenants/{tenant_id}/export", summary="A tenant's data as Parquet files in a zip (admin)")
async def export_tenant(request: Request, principal: Admin, tenant_id: str) -> Response:
    _tenant_for(principal, tenant_id)
    body = await erasure.export_zip(request.app.state, tenant_id)
    name = f"footfall-{tenant_id}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.zip"
    return Response(
        body, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


# ----------------------------------------------------------------------------- users


@router.get("/users", summary="Users of the caller's tenant (admin)")
async def list_users(conn: Conn, _p: Admin) -> dict[str, Any]:
    return {"users": await db.list_users(conn)}


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user (admin)")
async def create_user(request: Request, conn: Conn, body: UserIn, principal: Admin) -> dict[str, Any]:
    tenant = _tenant_for(principal, body.tenant)
    _grantable(principal, body.role)
    if await db.get_user(conn, body.user_id) is not None:
        raise HTTPException(409, f"user {body.user_id!r} exists")
    row = await db.create_user(conn, body.user_id, tenant, body.role, body.name, body.email)
    await audit(request, conn, "user.create", "user", body.user_id, None, row, tenant=tenant)
    return row


@router.delete("/users/{user_id}", summary="Disable a user: every key of theirs is refused at once (admin)")
async def disable_user(request: Request, conn: Conn, principal: Admin, user_id: str) -> dict[str, Any]:
    before = await db.get_user(conn, user_id)
    if before is None:
        raise HTTPException(404, f"unknown user {user_id!r}")
    _grantable(principal, before["role"])
    row = await db.disable_user(conn, user_id)
    await audit(request, conn, "user.disable", "user", user_id, before, row, tenant=before["tenant_id"])
    return row


# ----------------------------------------------------------------------------- keys


@router.get("/keys", summary="API keys of the caller's tenant, without their secrets (admin)")
async def list_keys(conn: Conn, _p: Admin) -> dict[str, Any]:
    return {"keys": await db.list_keys(conn)}


@router.post("/keys", status_code=status.HTTP_201_CREATED, summary="Create an API key, shown once (admin)")
async def create_key(request: Request, conn: Conn, body: KeyIn, principal: Admin) -> dict[str, Any]:
    tenant = _tenant_for(principal, body.tenant)
    _grantable(principal, body.role)
    if body.user_id is not None:
        user = await db.get_user(conn, body.user_id)
        if user is None or user["tenant_id"] != tenant:
            raise HTTPException(422, f"user_id: no user {body.user_id!r} in tenant {tenant!r}")
        if not at_least(user["role"], body.role):
            raise HTTPException(422, f"role: user {body.user_id!r} is {user['role']}; a key cannot be {body.role}")
    expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, key = await db.create_key(conn, tenant, body.role, body.name, body.user_id, expires, principal.actor)
    await audit(request, conn, "key.create", "api_key", row["key_id"], None, row, tenant=tenant)
    return {**row, "key": key, "note": "store the key now: it is not shown again"}


@router.delete("/keys/{key_id}", summary="Revoke an API key (admin)")
async def revoke_key(request: Request, conn: Conn, principal: Admin, key_id: str) -> dict[str, Any]:
    before = await db.get_key(conn, key_id)
    if before is None:
        raise HTTPException(404, f"unknown key {key_id!r}")
    _grantable(principal, before["role"])
    row = await db.revoke_key(conn, key_id)
    await audit(request, conn, "key.revoke", "api_key", key_id, before, row, tenant=before["tenant_id"])
    return row


# ----------------------------------------------------------------------------- audit


@router.get("/audit", summary="The audit log of the caller's tenant, newest first (admin)")
async def audit_log(
    conn: Conn,
    _p: Admin,
    action: str | None = Query(
        None, max_length=100, description="exact action, or a prefix ending in '.', e.g. camera."
    ),
    actor: str | None = Query(None, max_length=200),
    object_type: str | None = Query(None, max_length=100),
    object_id: str | None = Query(None, max_length=300),
    outcome: Literal["ok", "refused"] | None = None,
    since: datetime | None = Query(None, description="ISO 8601; default 30 days ago"),
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    where, params = (
        ["at >= %(since)s", "at < %(until)s"],
        {
            "since": since or datetime.now(UTC) - timedelta(days=30),
            "until": until or datetime.now(UTC) + timedelta(minutes=1),
            "limit": limit,
        },
    )
    if action:
        where.append("action LIKE %(action)s" if action.endswith(".") else "action = %(action)s")
        params["action"] = action + "%" if action.endswith(".") else action
    for name, value in (("actor", actor), ("object_type", object_type), ("object_id", object_id),
                        ("outcome", outcome)):  # fmt: skip
        if value is not None:
            where.append(f"{name} = %({name})s")
            params[name] = value
    cur = await conn.execute(
        "SELECT at, audit_id, tenant_id, actor, actor_role, action, object_type, object_id, before, after, outcome, "
        f"request_id, source_ip FROM audit_log WHERE {' AND '.join(where)} ORDER BY at DESC LIMIT %(limit)s",
        params,
    )
    return {"entries": await cur.fetchall()}
