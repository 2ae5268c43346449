"""Helpers for the grabber integration tests: services, footage, topics, a topic reader and
grabber processes. Imported by ``test_grabber_*.py`` (fixtures are re-exported there)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT, get_settings

ASSETS = PROJECT_ROOT.parent / "shared" / "assets"
CLIP = ASSETS / "crosswalk-640x360.mp4"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _stack(request: pytest.FixtureRequest):
    """The shared ``stack`` fixture of tests/conftest.py (it brings the local stack up), if there is one."""
    try:
        return request.getfixturevalue("stack")
    except pytest.FixtureLookupError:
        return None


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The local stack's Kafka; without the ``stack`` fixture, skipped unless a broker answers."""
    stack = _stack(request)
    if stack is not None:
        return stack.bootstrap
    bootstrap = get_settings().kafka.bootstrap
    host, _, port = bootstrap.rpartition(":")
    if not _reachable(host, int(port)):
        pytest.skip(f"no Kafka at {bootstrap} (start it with `python -m infra.local up`)")
    return bootstrap


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    url = get_settings().redis.url.get_secret_value()
    if _stack(request) is None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if not _reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
            pytest.skip(f"no Redis at {parts.hostname}:{parts.port} (start it with `python -m infra.local up`)")
    return url


@pytest.fixture(scope="session")
def clip() -> Path:
    if not CLIP.is_file():
        pytest.skip(f"test footage not found: {CLIP} (../shared/assets beside the checkout)")
    return CLIP


@pytest.fixture(scope="session")
def short_gop_clip(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crosswalk clip with a keyframe every 12 frames: the original's ~10 s GOP would make every
    RTSP client that joins mid-stream wait up to 10 s for its first decodable frame."""
    out = tmp_path_factory.mktemp("footage") / "crosswalk-gop12.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-i", str(clip), "-an"]
        + ["-c:v", "libx264", "-preset", "veryfast", "-g", "12", "-bf", "0", str(out)],
        check=True,
        timeout=120,
    )
    return out


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[tuple[str, str]]:
    """A fresh (detections, stream-stats) topic pair for one test, deleted afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    run = uuid.uuid4().hex[:8]
    names = (f"test.grabber.{run}.detections", f"test.grabber.{run}.stream-stats")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=30).values():
        fut.result()
    yield names
    for fut in admin.delete_topics(list(names), operation_timeout=30).values():
        with contextlib.suppress(Exception):
            fut.result()


@dataclass
class Message:
    topic: str
    key: str | None
    value: dict
    headers: dict[str, str]
    received: float  # time.time() when read


class TopicReader:
    """Reads topics from the beginning in a background thread; ``wait_for`` polls a predicate."""

    def __init__(self, bootstrap: str, names: tuple[str, ...] | list[str]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
        self._consumer.assign([TopicPartition(n, 0, 0) for n in names])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self._consumer.poll(0.2)
            if m is None or m.error():
                continue
            msg = Message(
                m.topic(),
                m.key().decode() if m.key() else None,
                json.loads(m.value()),
                {k: v.decode() for k, v in (m.headers() or [])},
                time.time(),
            )
            with self._lock:
                self.messages.append(msg)
        self._consumer.close()

    def snapshot(self, topic: str | None = None, key: str | None = None) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if (topic is None or m.topic == topic) and (key is None or m.key == key)]

    def wait_for(self, pred: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = pred()
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def reader(kafka_bootstrap: str, topics: tuple[str, str]) -> Iterator[TopicReader]:
    r = TopicReader(kafka_bootstrap, topics)
    yield r
    r.close()


def write_config(path: Path, cameras: list[dict]) -> Path:
    path.write_text(json.dumps({"cameras": cameras}, indent=2))
    return path


class GrabberProcess:
    """``python -m streams run`` in a subprocess; its stdout+stderr go to ``log``."""

    def __init__(
        self, config: Path | None, topics: tuple[str, str], log: Path, *extra: str, env: dict | None = None
    ) -> None:
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "streams", "run"] + (["--config", str(config)] if config else [])
        cmd += ["--detections-topic", topics[0], "--stats-topic", topics[1], "--stats-interval", "1"]
        cmd += ["--torch-threads", "1", "--imgsz", "320", "--device", "cpu", *extra]
        if "--metrics-port" not in extra:
            cmd += ["--metrics-port", "0"]
        self.proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """``kill -9``: no clean shutdown, leases are not released."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        return self.proc.returncode

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
