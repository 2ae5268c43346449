"""Request dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from psycopg import AsyncConnection

from api.schemas import ID_PATTERN


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.pool.connection() as conn:
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
