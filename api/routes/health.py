"""``GET /health``: liveness plus the reachability of the database, Redis and Kafka."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["health"])


async def _check(coro_factory: Any, timeout_s: float = 3.0) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(coro_factory(), timeout_s)
        return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}
    except Exception as exc:  # report, never raise: this is the health endpoint
        return {"ok": False, "error": type(exc).__name__}


@router.get("/health", summary="Liveness and dependency reachability")
async def health(request: Request, response: Response, strict: bool = False) -> dict[str, Any]:
    """Always 200 while the process runs (liveness) with ``status`` ``ok`` or ``degraded`` and a
    check per dependency; with ``?strict=true``, 503 when any dependency is unreachable (readiness)."""
    state = request.app.state

    async def db() -> None:
        async with state.pool.connection(timeout=3) as conn:
            await conn.execute("SELECT 1")

    async def redis() -> None:
        await state.redis.ping()

    async def kafka() -> None:
        await asyncio.to_thread(state.publisher.reachable, 3.0)

    results = await asyncio.gather(_check(db), _check(redis), _check(kafka))
    checks = dict(zip(("database", "redis", "kafka"), results, strict=True))
    ok = all(c["ok"] for c in checks.values())
    if strict and not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "degraded", "checks": checks}
