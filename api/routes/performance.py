"""Seed 002's performance self-test: ``POST /api/v1/performance/test`` starts one (token required,
one at a time across API processes: 409 while another runs), ``GET /api/v1/performance/test/{testId}``
reports its status and results. The engine is ``api.perftest``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status

from api import perftest
from api.auth import require

router = APIRouter(prefix="/api/v1/performance", tags=["performance (seed 002)"])

TestId = Path(pattern=r"^[0-9a-f]{1,32}$", description="the id POST answered", examples=["3f9c2a71b0"])


@router.post(
    "/test",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require("superadmin"))],
    summary="Start a load, stress or spike test against the live pipeline",
)
async def start_test(request: Request, body: perftest.PerfTestRequest) -> dict[str, Any]:
    """Simulated cameras (ids ``perf-<testId>-...``) through the real worker and sinks; every row
    they produce is deleted afterwards. 409 while another test runs (any API process)."""
    state = request.app.state
    prefix = state.settings.kafka.topic_prefix
    tranches = perftest.plan(body.type, body.duration, body.camera_count)
    test_id = perftest.new_test_id()
    holder = await perftest.acquire(state.redis, prefix, test_id, perftest.lock_ttl_s(tranches))
    if holder is not None:
        raise HTTPException(409, f"a performance test is running ({holder}); one at a time, retry when it is done")
    now = time.time()
    await perftest.save_result(
        state.redis,
        prefix,
        {"testId": test_id, "type": body.type, "status": "running", "deadline": now + perftest.lock_ttl_s(tranches)},
    )
    perftest.start_background(state, test_id, body, tranches)
    return {
        "testId": test_id,
        "status": "running",
        "type": body.type,
        "duration": body.duration,
        "cameras": body.camera_count,
        "peakCameras": perftest.peak_cameras(tranches),
        "location": f"/api/v1/performance/test/{test_id}",
    }


@router.get(
    "/test/{test_id}",
    dependencies=[Depends(require("superadmin"))],
    summary="Status (running | done | failed) and results of a test (superadmin)",
)
async def get_test(request: Request, test_id: str = TestId) -> dict[str, Any]:
    state = request.app.state
    result = await perftest.load_result(state.redis, state.settings.kafka.topic_prefix, test_id)
    if result is None:
        raise HTTPException(404, f"unknown performance test {test_id!r} (results are kept for a day)")
    return result
