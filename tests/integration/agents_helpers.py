"""Helpers for the counting-agent tests and benchmark: a Faust worker as a subprocess on its own
topic prefix, hand-made walking people, producing and draining topics."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT
from models.records import CameraConfig, CountingLine, FrameDetections, Zone
from models.topics import catalogue, ensure_topics, topic_name

PARTITIONS = 4
WORKER_TOKEN = "test-worker-" + uuid.uuid4().hex  # the platform token of the workers these tests start
FAUST = str(Path(sys.executable).parent / "faust")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Scratch:
    """A unique topic prefix with the catalogue topics created; deletes every topic of the prefix
    (catalogue, changelogs, Faust internals) on :meth:`close`."""

    def __init__(self, bootstrap: str, partitions: int = PARTITIONS) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.partitions = partitions
        self.prefix = f"test-{uuid.uuid4().hex[:12]}"
        ensure_topics(bootstrap, catalogue(self.prefix, partitions))
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def topic(self, name: str) -> str:
        return topic_name(self.prefix, name)

    def close(self) -> None:
        names = [t for t in self.admin.list_topics(timeout=10).topics if t.startswith(self.prefix)]
        if names:
            for fut in self.admin.delete_topics(names, operation_timeout=30).values():
                with contextlib.suppress(Exception):  # best effort cleanup
                    fut.result(timeout=30)


class Worker:
    """``faust -A agents.app worker`` on the scratch prefix, logs to a file."""

    def __init__(self, scratch: Scratch, workdir: Path, name: str = "w1", env: dict[str, str] | None = None) -> None:
        self.scratch = scratch
        self.port = free_port()
        self.log_path = workdir / f"worker-{name}-{self.port}.log"
        self.env = {
            **os.environ,
            "FOOTFALL_KAFKA__BOOTSTRAP": scratch.bootstrap,
            "FOOTFALL_KAFKA__TOPIC_PREFIX": scratch.prefix,
            "FOOTFALL_KAFKA__PARTITIONS": str(scratch.partitions),
            "FOOTFALL_WORKER__SINKS": "false",
            "FOOTFALL_WORKER__PUSH": "false",
            "FOOTFALL_WORKER__DATADIR": str(workdir / f"faust-{name}"),
            "FOOTFALL_WORKER__FLUSH_INTERVAL_S": "0.5",
            "FOOTFALL_HTTP__WORKER_WEB_PORT": str(self.port),
            "FOOTFALL_API_TOKEN": WORKER_TOKEN,  # the live views need a caller
            # a killed member must leave the group quickly
            "BROKER_SESSION_TIMEOUT": "8",
            "BROKER_HEARTBEAT_INTERVAL": "1",
            "BROKER_REBALANCE_TIMEOUT": "10",
            "BROKER_COMMIT_INTERVAL": "0.5",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.cmd = [FAUST]  # e.g. [python, -m, cProfile, -o, FILE, -m, faust] to profile

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*self.cmd, "-A", "agents.app", "worker", "-l", "info", "--web-port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def get(self, path: str, timeout: float = 5.0, key: str | None = None) -> tuple[int, Any]:
        """GET a live view as the platform (or with ``key``; "" sends no credentials)."""
        key = WORKER_TOKEN if key is None else key
        try:
            request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {key}"} if key else {})
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the worker has partitions assigned and its web server answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.tail()}")
            if b"Ready" in self.log_path.read_bytes():
                try:
                    status, _ = self.get("/footfall/cameras/", timeout=2)
                    if status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


# --------------------------------------------------------------------------- data


def line_config(camera_id: str, x: float = 320.0, zone: bool = False, capacity: int = 10) -> CameraConfig:
    """A vertical line at ``x`` drawn downwards: left-to-right is ``out``, right-to-left is ``in``
    (see ``CountingLine``); optionally a zone over the left half."""
    zones = [Zone(zone_id="left", polygon=[[0, 0], [x, 0], [x, 360], [0, 360]], capacity=capacity)] if zone else []
    return CameraConfig(
        camera_id=camera_id,
        lines=[CountingLine(line_id="door", start=[x, 0], end=[x, 360])],
        zones=zones,
    )


def walkers(
    camera_id: str,
    people: Iterable[tuple[float, float, float]],
    t0: float,
    fps: float = 10.0,
    duration_s: float = 10.0,
    seq0: int = 1,
) -> Iterator[FrameDetections]:
    """Frames of people walking horizontally: each person ``(x0, vx_px_per_s, start_s)`` appears at
    ``start_s`` at ``x0`` and walks at ``vx`` until it leaves the 640 px wide frame."""
    people = list(people)
    n = int(round(duration_s * fps))
    for k in range(n):
        t = k / fps
        boxes = []
        for i, (x0, vx, start) in enumerate(people):
            if t < start:
                continue
            x = x0 + vx * (t - start)
            if not 20 <= x <= 620:
                continue
            y = 120 + 60 * (i % 3)
            boxes.append([x - 15.0, float(y), x + 15.0, float(y + 100), 0.9])
        yield FrameDetections(
            camera_id=camera_id,
            frame_seq=seq0 + k,
            captured_at=t0 + t,
            frame_width=640,
            frame_height=360,
            boxes=boxes,
            model_name="hand",
            model_version="1",
            inference_ms=1.0,
            published_at=t0 + t,
        )


def produce(bootstrap: str, topic: str, items: Iterable[tuple[str, bytes | None]], **conf: Any) -> int:
    """Produce ``(key, value)`` pairs with librdkafka's default partitioner (like the grabbers)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **conf})
    n = 0
    for key, value in items:
        while True:
            try:
                p.produce(topic, key=key.encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0, "messages left unsent"
    return n


def drain(bootstrap: str, topic: str, until: Any = None, idle_s: float = 3.0, timeout_s: float = 60.0) -> list[Any]:
    """Every message of ``topic`` from the beginning (confluent ``Message`` objects); stops when
    ``until(messages)`` is true and nothing new came for a short while, or after ``idle_s`` of
    silence when ``until`` is None, or at ``timeout_s``."""
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = c.consume(500, timeout=0.3)
            got = [m for m in batch if m.error() is None]
            if got:
                out += got
                last_new = time.monotonic()
                continue
            quiet = time.monotonic() - last_new
            if until is None and quiet >= idle_s:
                break
            if until is not None and until(out) and quiet >= min(idle_s, 1.0):
                break
    finally:
        c.close()
    return out


def values(messages: Iterable[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in messages if m.value() is not None]


def final_window_counts(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str, float], int]:
    """Last count per (camera, line, direction, window_start): what an upserting sink keeps."""
    out: dict[tuple[str, str, str, float], int] = {}
    for r in rows:
        k = (r["camera_id"], r["line_id"], r["direction"], r["window_start"])
        out[k] = max(out.get(k, 0), r["count"])
    return out
