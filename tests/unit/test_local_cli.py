"""The CLI's one-line errors. Each run uses its own local_dir and ports, so a running stack is
never touched, and fails before anything starts: no services are needed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        "FOOTFALL_LOCAL_DIR": str(tmp_path / "local"),
        "FOOTFALL_KAFKA__BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "FOOTFALL_DATABASE__URL": f"postgresql://footfall:footfall@127.0.0.1:{free_port()}/footfall",
        "FOOTFALL_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
        "FOOTFALL_HTTP__PROMETHEUS_PORT": str(free_port()),
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.local", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("footfall local stack: ")
    return lines[0]


@pytest.fixture
def taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_taken_redis_port_is_named(tmp_path: Path, taken_port: int):
    line = one_error_line(run_cli(tmp_path, "up", "redis", FOOTFALL_REDIS__URL=f"redis://127.0.0.1:{taken_port}/0"))
    assert f"redis: port {taken_port} on 127.0.0.1 is already taken by another process" in line


def test_a_taken_kafka_port_is_named_before_anything_starts(tmp_path: Path, taken_port: int):
    result = run_cli(tmp_path, "up", FOOTFALL_KAFKA__BOOTSTRAP=f"127.0.0.1:{taken_port}")
    assert f"kafka: port {taken_port} on 127.0.0.1 is already taken" in one_error_line(result)
    assert not (tmp_path / "local" / "run" / "redis.pid").exists()  # nothing was started


def test_a_missing_program_says_how_to_install_it(tmp_path: Path):
    line = one_error_line(run_cli(tmp_path, "up", "redis", PATH=str(tmp_path / "empty-bin")))
    assert "redis: `redis-server` not found on PATH" in line
    assert "apt-get install -y redis-server" in line and "bootstrap.sh" in line


def test_a_missing_prometheus_says_how_to_install_it(tmp_path: Path):
    line = one_error_line(run_cli(tmp_path, "up", "prometheus", PATH=str(tmp_path / "empty-bin")))
    assert "prometheus: `prometheus` not found on PATH" in line
    assert "apt-get install -y prometheus" in line


def test_a_taken_prometheus_port_is_named(tmp_path: Path, taken_port: int):
    line = one_error_line(run_cli(tmp_path, "up", "prometheus", FOOTFALL_HTTP__PROMETHEUS_PORT=str(taken_port)))
    assert f"prometheus: port {taken_port} on 127.0.0.1 is already taken by another process" in line


def test_a_remote_bootstrap_is_refused_naming_the_variable(tmp_path: Path):
    line = one_error_line(run_cli(tmp_path, "status", FOOTFALL_KAFKA__BOOTSTRAP="kafka:9092"))
    assert "FOOTFALL_KAFKA__BOOTSTRAP: host 'kafka' is not a loopback address" in line


def test_an_unknown_service_is_refused(tmp_path: Path):
    assert "zookeeper: unknown service" in one_error_line(run_cli(tmp_path, "up", "zookeeper"))


def test_down_of_a_stack_that_is_not_running_is_fine(tmp_path: Path):
    result = run_cli(tmp_path, "down")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("was not running") == 5
