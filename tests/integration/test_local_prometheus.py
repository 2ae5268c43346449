"""The local stack's Prometheus: up, scraping footfall's jobs, with the project's rules loaded.

The worker and grabber targets are configured whether or not those processes run (``make run``
starts the worker; a grabber only runs with ``--source``), so only their presence is checked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from core.settings import PROJECT_ROOT
from infra.local.layout import PROMETHEUS_RULES

pytestmark = pytest.mark.integration


def api(stack, path: str) -> dict:
    url = f"http://127.0.0.1:{stack.prometheus_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_is_ready(stack):
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.prometheus_port}/-/ready", timeout=5) as resp:
        assert resp.status == 200


def test_targets_include_the_worker_and_grabber(stack):
    # Targets appear a few seconds after start-up (discovery is applied in batches).
    deadline = time.monotonic() + 30
    while True:
        scraped = {t["labels"]["job"]: t["scrapeUrl"] for t in api(stack, "/api/v1/targets")["activeTargets"]}
        if {"worker", "grabber"} <= set(scraped) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert scraped.get("worker") == f"http://127.0.0.1:{stack.worker_web_port}/metrics", scraped
    assert scraped.get("grabber") == f"http://127.0.0.1:{stack.grabber_metrics_port}/metrics", scraped


def test_the_project_rules_are_loaded(stack):
    shipped = {
        r.get("alert") or r["record"]
        for g in yaml.safe_load(PROMETHEUS_RULES.read_text())["groups"]
        for r in g["rules"]
    }
    loaded = {r["name"]: r for g in api(stack, "/api/v1/rules")["groups"] for r in g["rules"]}
    assert shipped <= set(loaded)
    # "unknown" until the first evaluation (15 s after start-up); "err" if a rule cannot run
    failing = {name: r.get("lastError") for name, r in loaded.items() if r["health"] == "err"}
    assert not failing


def test_up_status_down_of_a_private_prometheus(tmp_path: Path):
    """``python -m infra.local up|status|down prometheus`` on a stack of its own (own local_dir and
    port): the shared one is not touched."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FOOTFALL_LOCAL_DIR": str(tmp_path), "FOOTFALL_HTTP__PROMETHEUS_PORT": str(port)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "infra.local", *args, "prometheus"]
        return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)

    try:
        up = cli("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "prometheus started" in up.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as resp:
            assert resp.status == 200
        config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
        assert config["rule_files"] == [str(PROMETHEUS_RULES)]
        assert (tmp_path / "prometheus" / "data").is_dir()
        status = cli("status")
        assert status.returncode == 0 and " running " in status.stdout, status.stdout + status.stderr
    finally:
        down = cli("down")
    assert down.returncode == 0 and "prometheus stopped" in down.stdout, down.stdout + down.stderr
    status = cli("status")
    assert status.returncode == 1 and " stopped " in status.stdout
