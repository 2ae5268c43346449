"""Request dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from psycopg import AsyncConnection

from api.auth import Viewer
from api.schemas import ID_PATTERN
from core.principals import Principal
from sql import principals as db
from sql.roles import tenant_transaction


@asynccontextmanager
async def caller_transaction(state: Any, principal: Principal) -> AsyncIterator[AsyncConnection]:
    """A transaction as the API's database role seeing only ``principal``'s tenant (``state``:
    the app's state, with its pool and settings)."""
    role = state.settings.database.api_role
    async with state.pool.connection() as conn, tenant_transaction(conn, role, principal.scope):
        yield conn


async def get_conn(request: Request, principal: Viewer) -> AsyncIterator[AsyncConnection]:
    """One transaction per request (every route with a ``Conn`` is therefore authenticated, at
    least as a viewer). Routes that must act after their transaction commits use
    :func:`caller_transaction` themselves."""
    async with caller_transaction(request.app.state, principal) as conn:
        yield conn


Conn = Annotated[AsyncConnection, Depends(get_conn)]
CameraId = Annotated[str, Path(pattern=ID_PATTERN, description="camera id", examples=["cam-1"])]
LineId = Annotated[str, Path(pattern=ID_PATTERN, description="counting line id", examples=["door"])]
ZoneId = Annotated[str, Path(pattern=ID_PATTERN, description="zone id", examples=["lobby"])]


def utcnow() -> datetime:
    return datetime.now(UTC)


async def known_camera(conn: AsyncConnection, camera_id: str) -> None:
    """404 unless the camera is configured."""
    cur = await conn.execute("SELECT 1 FROM cameras WHERE camera_id = %s", (camera_id,))
    if await cur.fetchone() is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")


async def audit(
    request: Request,
    conn: AsyncConnection,
    action: str,
    object_type: str,
    object_id: str,
    before: Any = None,
    after: Any = None,
    tenant: str | None = None,
) -> None:
    """Record a change made by this request's caller, in the request's transaction."""
    principal: Principal = request.state.principal
    await db.audit(
        conn,
        tenant=tenant or principal.tenant,
        actor=principal.actor,
        actor_role=principal.role,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        request_id=getattr(request.state, "request_id", None),
        source_ip=request.client.host if request.client else None,
    )
