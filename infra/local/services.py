"""The five processes of the local stack: what each needs, how it starts, how we know it answers.

Services as users name them map onto processes: ``kafka``, ``redis``, ``prometheus``, and ``db`` =
``pglite`` (TimescaleDB in WASM) + ``pgbouncer`` (the pool clients connect to). ``pglite`` and
``pgbouncer`` can also be named on their own, e.g. to restart the database behind the pool.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from infra.local import configs, probes
from infra.local.layout import (
    NODE_MODULES,
    PGBOUNCER_USER,
    PGLITE_SERVER,
    POM,
    PROMETHEUS_RULES,
    Layout,
    kafka_version,
)
from infra.local.procs import port_open

# Debian package to install for each program the stack runs.
APT_PACKAGE = {
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "node": "nodejs",
    "npm": "npm",
    "pgbouncer": "pgbouncer",
    "prometheus": "prometheus",
    "redis-server": "redis-server",
}


class StackError(RuntimeError):
    """One line for the user: which service, what failed, where its log is."""

    def __init__(self, proc: str, what: str, log: Path | None = None):
        self.proc = proc
        super().__init__(f"{proc}: {what}" + (f" (log: {log})" if log else ""))


def require_binary(proc: str, binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise StackError(
            proc,
            f"`{binary}` not found on PATH; install it with `sudo infra/local/bootstrap.sh` "
            f"or `apt-get install -y {APT_PACKAGE.get(binary, binary)}`",
        )
    return path


def _run_logged(proc: str, cmd: list[str], cwd: Path, log: Path, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n==== {what}: {' '.join(cmd)}\n".encode())
        out.flush()
        rc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise StackError(proc, f"{what} failed (exit {rc}): {' '.join(cmd[:3])} ...", log)


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


class Proc:
    name: str
    binaries: tuple[str, ...] = ()
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 20.0

    def __init__(self, lay: Layout):
        self.lay = lay
        self.dir = lay.proc_dir(self.name)
        self.log = lay.log_file(self.name)
        self.pid_file = lay.pid_file(self.name)

    def ports(self) -> list[tuple[str, int]]:
        raise NotImplementedError

    @property
    def token(self) -> str:
        """A string in this process's command line that no other stack's process has."""
        raise NotImplementedError

    def fetch(self) -> None:
        """Download what the process needs (once; no-op when present)."""

    def prepare(self) -> None:
        """Write configuration and initialise data; called before every start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def user(self) -> str | None:
        return None

    def probe(self) -> None:
        """One real request; raises if the process does not answer."""
        raise NotImplementedError


class Kafka(Proc):
    name = "kafka"
    binaries = ("java",)
    ready_timeout_s = 90.0
    stop_timeout_s = 30.0

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def libs(self) -> Path:
        # Keyed by the pom's content: a changed pin fetches into a fresh folder.
        return self.dir / "libs" / f"{kafka_version()}-{_digest(POM)}"

    def ports(self) -> list[tuple[str, int]]:
        return [(self.lay.kafka_host, self.lay.kafka_port), (self.lay.kafka_host, self.lay.controller_port)]

    @property
    def token(self) -> str:
        return str(self.properties)

    def fetch(self) -> None:
        if (self.libs / f"kafka_2.13-{kafka_version()}.jar").exists():
            return
        mvn = require_binary(self.name, "mvn")
        tmp = self.libs.with_name(self.libs.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime"]
        _run_logged(self.name, [*cmd, f"-DoutputDirectory={tmp}"], POM.parent, self.log, "fetching Kafka jars")
        tmp.rename(self.libs)

    def _java(self, main: str, *args: str) -> list[str]:
        jvm = configs.kafka_jvm_args(self.lay, self.libs)
        return [require_binary(self.name, "java"), *jvm, main, *args]

    def prepare(self) -> None:
        _write(self.properties, configs.kafka_server_properties(self.lay))
        _write(self.dir / "log4j2.properties", configs.kafka_log4j2())
        if not (self.dir / "data" / "meta.properties").exists():
            cmd = self._java(
                "kafka.tools.StorageTool", "format", "-t", configs.kafka_cluster_id(), "-c", str(self.properties)
            )
            _run_logged(self.name, cmd, self.dir, self.log, "formatting KRaft storage")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties))

    def probe(self) -> None:
        if not port_open(self.lay.kafka_host, self.lay.kafka_port):
            raise RuntimeError(f"nothing accepts connections on {self.lay.bootstrap}")
        probes.kafka_roundtrip(self.lay.bootstrap)


class PGlite(Proc):
    name = "pglite"
    binaries = ("node",)
    ready_timeout_s = 90.0

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def ports(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.lay.pglite_port)]

    @property
    def token(self) -> str:
        return str(self.data)

    def fetch(self) -> None:
        lock = PGLITE_SERVER.parent / "package-lock.json"
        stamp = NODE_MODULES / ".footfall-lock"
        if stamp.exists() and stamp.read_text() == _digest(lock):
            return
        npm = require_binary(self.name, "npm")
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        _run_logged(self.name, cmd, PGLITE_SERVER.parent, self.log, "installing npm packages")
        stamp.write_text(_digest(lock))

    def prepare(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        node = require_binary(self.name, "node")
        return [node, str(PGLITE_SERVER), "--data", str(self.data), "--port", str(self.lay.pglite_port)]

    def probe(self) -> None:
        if not port_open("127.0.0.1", self.lay.pglite_port):
            raise RuntimeError(f"nothing accepts connections on 127.0.0.1:{self.lay.pglite_port}")


class PgBouncer(Proc):
    name = "pgbouncer"
    binaries = ("pgbouncer",)

    @property
    def ini(self) -> Path:
        return self.dir / "pgbouncer.ini"

    def ports(self) -> list[tuple[str, int]]:
        return [(self.lay.db.host, self.lay.db.port)]

    @property
    def token(self) -> str:
        return str(self.ini)

    def user(self) -> str | None:
        # pgbouncer refuses to run as root; as root, run it as a system user of its own.
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PGBOUNCER_USER)
        except KeyError:
            useradd = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
            subprocess.run([*useradd, "--shell", "/usr/sbin/nologin", PGBOUNCER_USER], check=True)
        return PGBOUNCER_USER

    def prepare(self) -> None:
        _write(self.ini, configs.pgbouncer_ini(self.lay))
        _write(self.dir / "userlist.txt", configs.pgbouncer_userlist(self.lay), mode=0o600)
        user = self.user()
        if user:
            for p in (self.dir, self.ini, self.dir / "userlist.txt"):
                shutil.chown(p, user, user)

    def command(self) -> list[str]:
        return [require_binary(self.name, "pgbouncer"), str(self.ini)]

    def probe(self) -> None:
        probes.db_select_one(self.lay.db_dsn)


class Redis(Proc):
    name = "redis"
    binaries = ("redis-server",)

    @property
    def conf(self) -> Path:
        return self.dir / "redis.conf"

    def ports(self) -> list[tuple[str, int]]:
        return [(self.lay.redis_host, self.lay.redis_port)]

    @property
    def token(self) -> str:
        return str(self.conf)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        _write(self.conf, configs.redis_conf(self.lay))

    def command(self) -> list[str]:
        return [require_binary(self.name, "redis-server"), str(self.conf)]

    def probe(self) -> None:
        probes.redis_ping(self.lay.redis_host, self.lay.redis_port)


class Prometheus(Proc):
    """Debian's ``prometheus`` on loopback: scrapes the worker, API and grabber metrics ports and
    evaluates ``infra/prometheus/rules.yml`` (no Alertmanager: alerts show at ``/alerts``)."""

    name = "prometheus"
    binaries = ("prometheus",)

    @property
    def config(self) -> Path:
        return self.dir / "prometheus.yml"

    def ports(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.lay.prometheus_port)]

    @property
    def token(self) -> str:
        return str(self.config)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        _write(self.config, configs.prometheus_yml(self.lay, PROMETHEUS_RULES))

    def command(self) -> list[str]:
        return [
            require_binary(self.name, "prometheus"),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{self.lay.prometheus_port}",
        ]

    def probe(self) -> None:
        probes.prometheus_ready("127.0.0.1", self.lay.prometheus_port)


# Start order; stopped in reverse.
PROCS: dict[str, type[Proc]] = {
    "redis": Redis,
    "pglite": PGlite,
    "pgbouncer": PgBouncer,
    "kafka": Kafka,
    "prometheus": Prometheus,
}
SERVICES: dict[str, tuple[str, ...]] = {
    "kafka": ("kafka",),
    "db": ("pglite", "pgbouncer"),
    "redis": ("redis",),
    "prometheus": ("prometheus",),
    "pglite": ("pglite",),
    "pgbouncer": ("pgbouncer",),
}


def expand(names: list[str] | tuple[str, ...]) -> list[str]:
    """Service names -> process names in start order; no names = all."""
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise StackError(unknown[0], f"unknown service; known: {', '.join(SERVICES)}")
    wanted = {p for n in names for p in SERVICES[n]} if names else set(PROCS)
    return [p for p in PROCS if p in wanted]
