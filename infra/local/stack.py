"""up / down / status of the local stack; the CLI and the tests' ``stack`` fixture both call these."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from infra.local import procs
from infra.local.layout import ConfigError, Layout
from infra.local.services import PROCS, Proc, StackError, expand, require_binary


@dataclass(frozen=True)
class Row:
    """One process's line in ``status`` (and what ``up``/``down`` did to it)."""

    name: str
    state: str  # status: running/unhealthy/stopped; up: started/already running; down: stopped/killed
    pid: int | None
    ports: list[int]
    log: Path
    detail: str = ""

    def line(self) -> str:
        pid = f"pid {self.pid}" if self.pid else "no pid"
        ports = ",".join(map(str, self.ports))
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{self.name:<10} {self.state:<16} {pid:<10} port {ports:<10} log {self.log}{detail}"


def layout(settings: Settings) -> Layout:
    try:
        return Layout.from_settings(settings)
    except ConfigError as exc:
        raise StackError("settings", str(exc)) from None


@contextlib.contextmanager
def _locked(lay: Layout) -> Iterator[None]:
    """One up/down at a time per stack (two test sessions may call ``up`` together)."""
    lock = lay.root / "run" / "stack.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _row(p: Proc, state: str, pid: int | None, detail: str = "") -> Row:
    return Row(p.name, state, pid, [port for _, port in p.ports()], p.log, detail)


def _check_can_start(p: Proc) -> None:
    for binary in p.binaries:
        require_binary(p.name, binary)
    for host, port in p.ports():
        if not procs.port_free(host, port):
            raise StackError(
                p.name,
                f"port {port} on {host} is already taken by another process "
                f"(see `ss -ltnp 'sport = :{port}'`); stop it or choose other ports via FOOTFALL_ settings",
            )


def _wait_ready(p: Proc, pid: int) -> None:
    """Poll ``p.probe()`` until it passes; fail fast if the process exits."""
    deadline = time.monotonic() + p.ready_timeout_s
    last_error = "no answer yet"
    while True:
        if procs.running_pid(p.pid_file, p.token) is None:
            code = procs.exit_status(pid)
            how = f"exited with code {code}" if code is not None else "is no longer running"
            tail = procs.last_line(p.log)
            raise StackError(p.name, f"{how} during start-up" + (f"; last log line: {tail}" if tail else ""), p.log)
        try:
            p.probe()
            return
        except Exception as exc:  # any failure of the probe means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}".strip()
        if time.monotonic() > deadline:
            raise StackError(p.name, f"did not answer within {p.ready_timeout_s:.0f} s: {last_error}", p.log)
        time.sleep(0.3)


def fetch(settings: Settings) -> None:
    """Download Kafka's jars and the npm packages if missing (what bootstrap runs)."""
    lay = layout(settings)
    for name in PROCS:
        PROCS[name](lay).fetch()


def up(
    settings: Settings,
    names: list[str] | tuple[str, ...] = (),
    ensure_topics: bool = True,
    migrate_db: bool = True,
) -> list[Row]:
    """Start what is not running, then wait until every named service answers a real request.

    Everything that could stop a start (missing programs, ports taken) is checked before
    anything starts. With Kafka up, the topic catalogue is created; with the database up, the
    migrations in ``sql/migrations`` are applied (both idempotent).
    """
    lay = layout(settings)
    ps = [PROCS[n](lay) for n in expand(names)]
    rows: list[Row] = []
    with _locked(lay):
        pids = {p.name: procs.running_pid(p.pid_file, p.token) for p in ps}
        to_start = [p for p in ps if pids[p.name] is None]
        for p in to_start:
            _check_can_start(p)
        for p in to_start:
            p.fetch()
            p.prepare()
            pids[p.name] = procs.spawn(p.command(), p.pid_file, p.log, cwd=p.dir, user=p.user())
        for p in ps:
            _wait_ready(p, pids[p.name])
            rows.append(_row(p, "started" if p in to_start else "already running", pids[p.name]))
    if ensure_topics and any(p.name == "kafka" for p in ps):
        from models.topics import catalogue
        from models.topics import ensure_topics as create

        try:
            create(lay.bootstrap, catalogue(lay.topic_prefix, lay.partitions))
        except Exception as exc:
            raise StackError("kafka", f"creating the topic catalogue failed: {exc}", lay.log_file("kafka")) from exc
    if migrate_db and any(p.name == "pgbouncer" for p in ps):
        from sql.migrate import MigrationError, migrate

        try:
            migrate(lay.db_dsn)
        except (MigrationError, OSError) as exc:
            raise StackError("pgbouncer", f"applying the migrations failed: {exc}", lay.log_file("pglite")) from exc
    return rows


def down(settings: Settings, names: list[str] | tuple[str, ...] = ()) -> list[Row]:
    """Stop the named services (all by default): SIGTERM, wait, then SIGKILL."""
    lay = layout(settings)
    rows = []
    with _locked(lay):
        for name in reversed(expand(names)):
            p = PROCS[name](lay)
            pid = procs.running_pid(p.pid_file, p.token)
            if pid is None:
                rows.append(_row(p, "was not running", None))
                continue
            graceful = procs.stop(pid, p.token, p.stop_timeout_s)
            p.pid_file.unlink(missing_ok=True)
            rows.append(_row(p, "stopped" if graceful else "killed", pid, "" if graceful else "no exit after SIGTERM"))
    return rows


def status(settings: Settings, names: list[str] | tuple[str, ...] = ()) -> list[Row]:
    """One row per process: running (and answering), unhealthy, or stopped."""
    lay = layout(settings)
    rows = []
    for name in expand(names):
        p = PROCS[name](lay)
        pid = procs.running_pid(p.pid_file, p.token)
        if pid is None:
            rows.append(_row(p, "stopped", None))
            continue
        try:
            p.probe()
            rows.append(_row(p, "running", pid))
        except Exception as exc:
            rows.append(_row(p, "unhealthy", pid, f"{type(exc).__name__}: {exc}"))
    return rows
