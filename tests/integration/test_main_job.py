"""The main job end to end, as `make run` runs it: simulator -> Kafka -> Faust worker (counting,
sinks, config sink, push) -> TimescaleDB, with the API beside it. The crossings the database holds,
read from the stacked continuous aggregates, equal the simulator's ground truth (within the
passages the simulator itself marks as under way at the cut-off), and the cameras reached the
reference tables through the config topic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sums(pg, view: str, prefix: str) -> dict[tuple[str, str, str], int]:
    rows = pg.execute(
        f"SELECT camera_id, line_id, direction, sum(crossings)::int FROM {view} "
        "WHERE camera_id LIKE %s GROUP BY 1, 2, 3",
        (prefix + "%",),
    ).fetchall()
    return {(c, line, d): n for c, line, d, n in rows}


def test_simulator_to_database_equals_ground_truth(stack, pg, tmp_path):
    run = uuid.uuid4().hex[:8]
    prefix = f"e2e{run}-"
    env = {
        **os.environ,
        "FOOTFALL_KAFKA__TOPIC_PREFIX": f"test-{run}",
        "FOOTFALL_KAFKA__PARTITIONS": "4",
        "FOOTFALL_HTTP__WORKER_WEB_PORT": str(free_port()),
        "FOOTFALL_HTTP__API_PORT": str(free_port()),
        "FOOTFALL_LOCAL_DIR": str(tmp_path),
        "FOOTFALL_WORKER__DATADIR": str(tmp_path / "faust"),
    }
    cmd = [sys.executable, "-m", "infra.main_job", "--cameras", "6", "--fps", "10", "--duration", "45"]
    cmd += ["--camera-prefix", prefix, "--report-every", "15"]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"main job did not finish: {exc.stdout}\n{exc.stderr}")
    worker_log = tmp_path / "logs" / "worker.log"
    logs = worker_log.read_text()[-3000:] if worker_log.exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    assert "final: crossings in the database" in done.stdout, done.stdout

    truth = json.loads((tmp_path / "run" / "truth.json").read_text())
    expected: dict[tuple[str, str, str], int] = {}
    for camera, lines in truth["lines"].items():
        for line, by_dir in lines.items():
            for direction, n in by_dir.items():
                expected[(camera, line, direction)] = n
    slack: dict[tuple[str, str], int] = defaultdict(int)
    for camera, keys in truth.get("under_way", {}).items():
        for key, n in keys.items():
            slack[(camera, key)] = n["at_start"] + n["at_end"]
    assert sum(expected.values()) >= 10, f"too few crossings in 45 s to say anything: {expected}"

    per_minute = sums(pg, "crossings_1m", prefix)
    for key, n in expected.items():
        got = per_minute.get(key, 0)
        assert abs(got - n) <= slack[key[:2]], f"{key}: database {got}, ground truth {n}"
    unexpected = set(per_minute) - set(expected)
    assert not unexpected, f"crossings on lines the simulator never configured: {unexpected}"
    total_error = sum(abs(per_minute.get(k, 0) - n) for k, n in expected.items())
    assert total_error <= 0.01 * sum(expected.values()) + sum(slack.values())

    # the stacked aggregates agree with the minute one, and the raw events are each stored once
    assert sums(pg, "crossings_1h", prefix) == per_minute
    assert sums(pg, "crossings_1d", prefix) == per_minute
    raw = pg.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM crossing_events WHERE camera_id LIKE %s", (prefix + "%",)
    ).fetchone()
    assert raw[0] == raw[1] == sum(per_minute.values())

    # the config sink put every simulated camera, with its lines, in the reference tables
    cameras = pg.execute("SELECT count(*) FROM cameras WHERE camera_id LIKE %s", (prefix + "%",)).fetchone()[0]
    assert cameras == 6
    lines = pg.execute("SELECT count(*) FROM counting_lines WHERE camera_id LIKE %s", (prefix + "%",)).fetchone()[0]
    assert lines == len({(c, line) for c, line, _ in expected})
