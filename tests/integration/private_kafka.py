"""A private single-node Kafka for tests that kill the broker: its own ports and data directory,
the shared stack's already-fetched jars, started and SIGKILLed at will. The shared stack's broker
is never touched (other test runs and developers use it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from core.settings import KafkaSettings, Settings, get_settings
from infra.local import procs
from infra.local.layout import Layout
from infra.local.services import Kafka


def free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` (the KRaft controller) both free on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535 and procs.port_free("127.0.0.1", port + 1):
            return port
    raise RuntimeError("no two free adjacent ports")


class _Kafka(Kafka):
    """The stack's Kafka process with another layout, reusing the shared stack's jars."""

    def __init__(self, lay: Layout, libs: Path) -> None:
        super().__init__(lay)
        self._libs = libs

    @property
    def libs(self) -> Path:
        return self._libs


class PrivateKafka:
    """``start()`` / ``kill()`` (SIGKILL) / ``start()`` again on the same data; ``stop()`` at the end."""

    def __init__(self, root: Path) -> None:
        shared = Layout.from_settings(get_settings())
        port = free_port_pair()
        settings = Settings(local_dir=root, kafka=KafkaSettings(bootstrap=f"127.0.0.1:{port}"))
        self.layout = Layout.from_settings(settings)
        self.proc = _Kafka(self.layout, Kafka(shared).libs)
        self.bootstrap = self.layout.bootstrap
        self.pid: int | None = None
        self.down_at: float | None = None
        self.up_at: float | None = None

    def start(self, timeout_s: float = 90.0) -> PrivateKafka:
        """Start (or restart) the broker and wait until a record goes round trip."""
        p = self.proc
        if not p.libs.exists():
            raise RuntimeError(f"no Kafka jars at {p.libs}: start the local stack once (`make up`)")
        p.prepare()
        self.pid = procs.spawn(p.command(), p.pid_file, p.log, cwd=p.dir)
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if procs.running_pid(p.pid_file, p.token) is None:
                raise RuntimeError(f"private Kafka exited during start-up: {procs.last_line(p.log)}")
            try:
                p.probe()
                self.up_at = time.monotonic()
                return self
            except Exception as exc:  # not ready yet
                last = str(exc)
            time.sleep(0.3)
        raise TimeoutError(f"private Kafka not ready after {timeout_s} s: {last} (log {p.log})")

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut of the broker's machine would."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        while procs.running_pid(self.proc.pid_file, self.proc.token) is not None:
            time.sleep(0.05)
        self.pid = None
        self.down_at = time.monotonic()

    def stop(self) -> None:
        if self.pid is not None:
            procs.stop(self.pid, self.proc.token, 20.0)
            self.pid = None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.proc.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""
