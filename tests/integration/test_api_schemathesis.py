"""Schemathesis against the API's own OpenAPI document: generated requests to every operation of a
real server (uvicorn on a free port, wired to the local stack) must never get a server error.
Bounded (few examples per operation) so it runs in seconds. Requests carry a viewer key of a
tenant of their own: reads run through the tenant's transaction (row-level security, the scoped
views), writes are refused (403), so generated camera ids never touch real rows; the write paths are
covered by test_api_contract and test_tenancy."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest
import schemathesis
import uvicorn
from api_helpers import drop_prefix, settings_for
from hypothesis import HealthCheck, settings

from api.app import create_app

pytestmark = pytest.mark.integration

PREFIX = f"test-{uuid.uuid4().hex[:12]}"
schema = schemathesis.openapi.from_dict(create_app(settings_for(PREFIX)).openapi()).exclude(
    path="/api/v1/live/events"  # an endless stream: covered by test_api_live
)


@pytest.fixture(scope="module")
def base_url(stack):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings_for(PREFIX)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        drop_prefix(stack, PREFIX)


@pytest.fixture(scope="module")
def viewer(stack):
    import psycopg
    from api_helpers import bearer, cleanup_tenant, make_key

    tenant = f"test-st-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as pg:
        yield bearer(make_key(pg, tenant, "viewer"))
        cleanup_tenant(pg, tenant)


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_errors(case, base_url, viewer):
    case.call_and_validate(base_url=base_url, headers=viewer, checks=[schemathesis.checks.not_a_server_error])
