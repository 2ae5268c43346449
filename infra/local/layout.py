"""Where each part of the local stack lives (files, ports, credentials), derived from Settings.

Ports not in Settings are derived: the KRaft controller listens on the broker port + 1 and PGlite
on the pgbouncer port + 1 (9093 and 5433 by default), so a second stack started with other ports
in the environment never collides with the first. Prometheus listens on
``FOOTFALL_HTTP__PROMETHEUS_PORT`` and scrapes footfall's own processes where Settings puts them:
the worker's web port and the grabbers' metrics port, on loopback.

>>> from core.settings import Settings
>>> lay = Layout.from_settings(Settings(local_dir="/tmp/ff"))
>>> (lay.kafka_port, lay.controller_port, lay.db.port, lay.pglite_port, lay.redis_port)
(9092, 9093, 5432, 5433, 6379)
>>> (lay.prometheus_port, lay.worker_web_port, lay.grabber_metrics_port)
(9090, 6066, 9108)
>>> str(lay.proc_dir("kafka"))
'/tmp/ff/kafka'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.settings import Settings

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
# Recording and alerting rules the project ships; the local Prometheus and docker-compose's load them.
PROMETHEUS_RULES = HERE.parent / "prometheus" / "rules.yml"
PGLITE_SERVER = HERE / "pglite-server.mjs"
NODE_MODULES = HERE / "node_modules"
# Unix user pgbouncer runs as when the stack is started by root (pgbouncer refuses to run as root).
PGBOUNCER_USER = "footfall-pgbouncer"


class ConfigError(ValueError):
    """Settings that the local stack cannot serve (named field, what is wrong)."""


def kafka_version() -> str:
    """The pinned Kafka version, read from the pom (the one place it is written)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise ConfigError(f"{POM}: no <kafka.version> property")
    return match.group(1).strip()


def _loopback(host: str, field: str) -> str:
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{field}: host {host!r} is not a loopback address; the local stack only listens on 127.0.0.1"
        )
    return "127.0.0.1" if host == "localhost" else host


def parse_host_port(value: str, field: str) -> tuple[str, int]:
    """``host:port`` (the first of a comma-separated bootstrap list) -> (loopback host, port)."""
    first = value.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{field}: expected host:port, got {value!r}")
    return _loopback(host, field), int(port)


@dataclass(frozen=True)
class DbUrl:
    host: str
    port: int
    user: str
    password: str
    dbname: str


def parse_db_url(url: str, field: str = "FOOTFALL_DATABASE__URL") -> DbUrl:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{field}: expected a postgresql:// URL, got scheme {parts.scheme!r}")
    missing = [name for name, v in (("user", parts.username), ("password", parts.password)) if not v]
    dbname = parts.path.lstrip("/")
    if not dbname:
        missing.append("database name")
    if missing:
        raise ConfigError(f"{field}: the URL has no {' or '.join(missing)}")
    return DbUrl(
        host=_loopback(parts.hostname or "", field),
        port=parts.port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


@dataclass(frozen=True)
class Layout:
    root: Path
    kafka_host: str
    kafka_port: int
    controller_port: int
    db: DbUrl
    pglite_port: int
    redis_host: str
    redis_port: int
    topic_prefix: str
    partitions: int
    prometheus_port: int
    worker_web_port: int
    grabber_metrics_port: int
    api_port: int

    @classmethod
    def from_settings(cls, s: Settings) -> Layout:
        kafka_host, kafka_port = parse_host_port(s.kafka.bootstrap, "FOOTFALL_KAFKA__BOOTSTRAP")
        db = parse_db_url(s.database.url.get_secret_value())
        redis = urlsplit(s.redis.url.get_secret_value())
        if redis.scheme != "redis":
            raise ConfigError(f"FOOTFALL_REDIS__URL: expected a redis:// URL, got scheme {redis.scheme!r}")
        return cls(
            root=Path(s.local_dir).resolve(),
            kafka_host=kafka_host,
            kafka_port=kafka_port,
            controller_port=kafka_port + 1,
            db=db,
            pglite_port=db.port + 1,
            redis_host=_loopback(redis.hostname or "", "FOOTFALL_REDIS__URL"),
            redis_port=redis.port or 6379,
            topic_prefix=s.kafka.topic_prefix,
            partitions=s.kafka.partitions,
            prometheus_port=s.http.prometheus_port,
            worker_web_port=s.http.worker_web_port,
            grabber_metrics_port=s.http.metrics_port,
            api_port=s.http.api_port,
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def db_dsn(self) -> str:
        d = self.db
        return f"host={d.host} port={d.port} user={d.user} password={d.password} dbname={d.dbname} sslmode=disable"

    def proc_dir(self, proc: str) -> Path:
        """Config and data of one process; its log is ``<proc>.log`` in here."""
        return self.root / proc

    def log_file(self, proc: str) -> Path:
        return self.proc_dir(proc) / f"{proc}.log"

    def pid_file(self, proc: str) -> Path:
        return self.root / "run" / f"{proc}.pid"
