"""``POST /api/v1/performance/test`` against the real pipeline: a Faust worker (counting, sinks,
config sink) on a scratch topic prefix, the API on the same prefix. A 30 s load test finishes with
results (frames/s, latencies, counts against the simulator's truth), a second request while it
runs gets 409, and afterwards no row of its cameras is left in any table and no topic was added."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from api import perftest
from api.app import create_app
from tests.integration.agents_helpers import Scratch, Worker
from tests.integration.api_helpers import AUTH, settings_for

pytestmark = pytest.mark.integration


def test_load_test_runs_measures_and_leaves_nothing_behind(stack, pg, redis_client, tmp_path):
    scratch = Scratch(stack.bootstrap, partitions=2)
    env = {
        "FOOTFALL_WORKER__SINKS": "true",
        "FOOTFALL_WORKER__CAGG_REFRESH": "false",
        "FOOTFALL_WORKER__SINK_BATCH_WITHIN_S": "0.3",
    }
    worker = Worker(scratch, tmp_path, env=env).start()
    settings = settings_for(scratch.prefix)
    settings.kafka.partitions = scratch.partitions
    try:
        worker.wait_ready()
        with TestClient(create_app(settings), headers=AUTH) as client:
            # after the API's start, which creates the topics it writes if the worker has not yet
            topics_before = set(scratch.admin.list_topics(timeout=10).topics)
            body = {"type": "load", "duration": 30, "cameras": 4}
            r = client.post("/api/v1/performance/test", json=body, headers=AUTH)
            assert r.status_code == 202, r.text
            test_id = r.json()["testId"]
            assert r.json()["status"] == "running"

            again = client.post("/api/v1/performance/test", json={"type": "load", "duration": 10}, headers=AUTH)
            assert again.status_code == 409, again.text
            assert test_id in again.json()["detail"]
            assert client.get(f"/api/v1/performance/test/{uuid.uuid4().hex[:10]}").status_code == 404

            deadline = time.monotonic() + 110
            while True:
                res = client.get(f"/api/v1/performance/test/{test_id}").json()
                if res["status"] != "running" or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            print(json.dumps(res, indent=1))  # the measured figures, with pytest -s
            assert res["status"] == "done", f"{res}\n{worker.tail()}"
            out = res["results"]
            assert out["framesPerSecond"] > 0 and out["frames"] >= 4 * 10 * 30 * 0.95, out
            counts = out["counts"]
            assert counts["expected"] >= 5, counts
            assert counts["within_slack"], counts
            assert out["captureToCounted"]["n"] == out["crossingsCounted"] > 0
            assert 0 <= out["captureToCounted"]["p50_ms"] <= out["captureToCounted"]["p99_ms"] < 10_000
            assert out["captureToVisible"]["p50_ms"] >= out["captureToCounted"]["p50_ms"]
            assert res["cleanup"]["deleted"]["crossing_events"] >= counts["counted"]
            assert not res["errors"], res["errors"]

            # the lock is free again, and the SLA endpoint reports the measured capacity
            assert redis_client.get(perftest.lock_key(scratch.prefix)) is None
            sla = client.get("/api/v1/sla/status", params={"timeRange": "1h"}).json()
            assert sla["capacity"]["testId"] == test_id
            assert sla["capacity"]["framesPerSecond"] == out["framesPerSecond"]

        like = f"perf-{test_id}-%"
        for table in (*perftest.HYPERTABLES, "cameras", "counting_lines", "zones"):
            n = pg.execute(f"SELECT count(*) FROM {table} WHERE camera_id LIKE %s", (like,)).fetchone()[0]
            assert n == 0, f"{n} rows of the test's cameras left in {table}"
        for view in ("crossings_1m", "crossings_1h", "occupancy_1m"):
            n = pg.execute(f"SELECT count(*) FROM {view} WHERE camera_id LIKE %s", (like,)).fetchone()[0]
            assert n == 0, f"{n} rows of the test's cameras left in {view}"
        assert set(scratch.admin.list_topics(timeout=10).topics) == topics_before
    finally:
        worker.stop()
        scratch.close()
        for key in redis_client.scan_iter(match=f"{scratch.prefix}:*"):
            redis_client.delete(key)
