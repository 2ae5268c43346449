"""One typed settings object for every component.

Values come from environment variables prefixed ``FOOTFALL_`` (nested fields use ``__``,
e.g. ``FOOTFALL_KAFKA__BOOTSTRAP=broker:9092``) and from an optional ``.env`` file in the
working directory. Defaults match the local stack started by ``python -m infra.local up`` and
the ports published by ``docker-compose.yml``.

>>> s = Settings()
>>> s.kafka.bootstrap
'127.0.0.1:9092'
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "footfall"
    # Every camera-keyed topic has this many partitions; it bounds how many workers share the load.
    partitions: int = Field(default=12, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Security of every Kafka client the project creates (librdkafka and aiokafka/Faust alike, mapped
    # in models/kafka_security.py). PLAINTEXT leaves the clients' configuration exactly as without it.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None  # PEM CA bundle that signed the brokers' certificates; unset = system CAs
    ssl_certfile: Path | None = None  # client certificate (PEM) for mutual TLS
    ssl_keyfile: Path | None = None  # its private key (PEM); unset = in ssl_certfile

    @model_validator(mode="after")
    def _security_is_consistent(self) -> Self:
        """A SASL or TLS setting that the protocol would ignore is refused: it would silently leave
        the traffic in clear or unauthenticated."""
        protocol = self.security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")
        if sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"security_protocol {protocol} needs sasl_username and sasl_password")
        if not sasl and (self.sasl_username or self.sasl_password is not None):
            raise ValueError(f"sasl_username/sasl_password are set but security_protocol is {protocol}")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(f"ssl_cafile/ssl_certfile/ssl_keyfile are set but security_protocol is {protocol}")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ssl_keyfile needs ssl_certfile")
        return self


class DatabaseSettings(BaseModel):
    # Clients connect through pgbouncer (transaction pooling): no session state, no server-side
    # prepared statements across transactions. TLS is part of the URL (libpq parameters), e.g.
    # ...?sslmode=verify-full&sslrootcert=/etc/footfall/db-ca.pem
    url: SecretStr = SecretStr("postgresql://footfall:footfall@127.0.0.1:5432/footfall")
    pool_min: int = 1
    pool_max: int = 4
    # The database roles the API and the worker act as in every transaction (SET LOCAL ROLE;
    # migration 012): the API's without BYPASSRLS, the worker's writes every tenant.
    api_role: str = "footfall_api"
    writer_role: str = "footfall_writer"


class RedisSettings(BaseModel):
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    api_port: int = 8080  # HTTP API (issue 5)
    worker_web_port: int = 6066  # Faust web views
    metrics_port: int = 9108  # Prometheus metrics of the grabbers
    prometheus_port: int = 9090  # Prometheus of the local stack (infra/local; docker-compose's too)
    # The API serves HTTPS only when a certificate is set (PEM; the key may be in the same file).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # Larger request bodies are refused with 413 (api/security.py), with or without Content-Length.
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    # Browser origins allowed to call the API (CORS), e.g. '["https://dash.example.org"]'; empty = none.
    cors_origins: list[str] = []

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        """A browser sends ``scheme://host[:port]``; anything else (a path, a trailing slash) would
        never match and CORS would silently stay off for it."""
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin like https://dash.example.org[:8443]")
        return origins

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Self:
        if self.tls_keyfile and not self.tls_certfile:
            raise ValueError("tls_keyfile needs tls_certfile")
        return self


_ORIGIN = re.compile(r"https?://([^/\s:\[\]]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")


class WorkerSettings(BaseModel):
    """The Faust worker (``faust -A agents.app worker``): counting agents, sinks, live views."""

    # Consumer group / changelog prefix; empty = ``<topic_prefix>-worker`` so test runs with their
    # own topic prefix never share state with the main job.
    app_id: str = ""
    # How other workers reach this one's web server (live views are routed to the camera's owner);
    # empty = http://<http.host>:<http.worker_web_port>. Set it where host is 0.0.0.0 (containers).
    canonical_url: str = ""
    # Where Faust keeps its local data (table stores, offsets cache).
    datadir: Path = PROJECT_ROOT / ".local" / "faust"
    # Camera states changed in memory reach the changelog at most this long after a frame
    # (offsets are committed only behind them, so a crash replays from there).
    flush_interval_s: float = Field(default=1.0, gt=0)
    window_s: float = Field(default=60.0, gt=0)  # tumbling count windows
    grace_s: float = Field(default=30.0, ge=0)  # late frames within this are counted in their window
    rolling_s: float = Field(default=900.0, gt=0)  # rolling view (15 minutes)
    sinks: bool = True  # run the TimescaleDB sink agents in this worker
    push: bool = True  # publish crossings/occupancy to Redis for the API's live push
    # Sinks flush a batch when it holds this many messages or its oldest is this old (rows visible
    # within ~2 s); a slow or unreachable database blocks the sink, and Faust stops fetching.
    sink_batch_max: int = Field(default=2000, ge=1)
    sink_batch_within_s: float = Field(default=0.5, gt=0)
    # Materialize the continuous aggregates from the worker (leader only) every this many seconds.
    # On for the local stack, whose PGlite runs no background jobs; off where TimescaleDB's own
    # refresh policies run (docker-compose sets FOOTFALL_WORKER__CAGG_REFRESH=false).
    cagg_refresh: bool = True
    cagg_refresh_interval_s: float = Field(default=30.0, gt=0)


class AlertingSettings(BaseModel):
    """Alert evaluation and delivery (agents/alerting.py, agents/channels.py). Secrets come only
    from the environment, e.g.
    ``FOOTFALL_ALERTING__WEBHOOK_SECRET``, ``FOOTFALL_ALERTING__SMTP_PASSWORD``."""

    # HMAC-SHA256 key that signs webhook bodies (X-Footfall-Signature). Unset = sent unsigned (warned once).
    webhook_secret: SecretStr | None = None
    smtp_host: str = "127.0.0.1"  # SMTP server for e-mail channels
    smtp_port: int = 25
    smtp_user: str | None = None  # unset = no login
    smtp_password: SecretStr | None = None
    smtp_from: str = "footfall@localhost"  # From address; its domain also ends each Message-ID
    smtp_starttls: bool = False  # upgrade the SMTP connection with STARTTLS (certificate verified)
    # Tries per notification and channel (first try included) before it goes to the dead-letter topic.
    delivery_attempts: int = Field(default=4, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)  # wait before retry n: base * 2**(n-1) + jitter ...
    backoff_cap_s: float = Field(default=30.0, ge=0)  # ... capped here; also caps a server's Retry-After
    timeout_s: float = Field(default=10.0, gt=0)  # per attempt (HTTP: whole request; SMTP: each socket operation)
    # Evaluation (agents/alerting.py), run by the worker when true.
    enabled: bool = True
    # How often the timers look at every owned camera (absence, processing latency) and every open
    # alert (escalation, undelivered notifications). A rule's eval_interval_s paces it further.
    tick_s: float = Field(default=1.0, gt=0)
    # After the worker starts, absence is not judged for this long: the backlog of stream-stats
    # after a restart must be read before a silent camera can be told from a late report.
    startup_grace_s: float = Field(default=60.0, ge=0)
    # Channels of rules that name none, e.g. '["webhook:https://ops.example.org/hook"]'.
    default_channels: list[str] = []
    # The drift score compares a camera's detections once this many have come since the last score;
    # the first such batch of a model is the camera's baseline.
    drift_min_detections: int = Field(default=500, ge=10)
    # The worker's leader samples the database's health this often (sql/health.py -> topic
    # db-health -> table db_health, footfall_db_* gauges, db_* rules); 0 = not at all.
    db_health_interval_s: float = Field(default=30.0, ge=0)


class AuthSettings(BaseModel):
    """Who may call the API (api/auth.py, core/principals.py). Keys are made with
    ``python -m api keys create``; ``FOOTFALL_API_TOKEN`` is the platform's own superadmin token."""

    # Anonymous callers read this tenant as viewers (a demo: `make run` sets it to "default").
    # Unset (the default): every request names a key.
    demo_tenant: str | None = None
    # A verified key is not re-hashed for this long (its row is still read on every request, so
    # revocation and expiry act at once).
    key_cache_s: float = Field(default=300.0, ge=0)


class SnapshotSettings(BaseModel):
    """Camera snapshots (streams/snapshots.py): each grabber, and the simulator, stores a downscaled
    JPEG of every camera it runs in Redis every ``interval_s`` (0 = none), expiring after ``ttl_s``
    so a stopped camera's picture does not linger; the API serves it at
    ``/api/v1/cameras/{id}/snapshot.jpg``."""

    interval_s: float = Field(default=5.0, ge=0)
    max_width: int = Field(default=640, ge=64, le=3840)  # wider frames are scaled down to this
    quality: int = Field(default=75, ge=10, le=95)  # JPEG quality
    ttl_s: int = Field(default=300, ge=10)


class PreviewSettings(BaseModel):
    """The grabber's annotated MJPEG preview (streams/preview.py): off unless ``enabled``; served
    on ``host:port`` (loopback by default), at most ``max_fps`` frames a second per camera."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9110, ge=1, le=65535)
    max_fps: float = Field(default=5.0, gt=0, le=15)
    max_width: int = Field(default=960, ge=160, le=3840)


class LifecycleSettings(BaseModel):
    """Hot, warm, cold (sql/archive.py): raw events stay in the database for ``hot_days``, are
    compressed after ``compress_after_days``, then ``python -m sql.archive run`` writes each old
    chunk as Parquet under ``archive_url`` and only then drops it. Aggregates keep their own
    retention policies (years)."""

    # The longest aggregate refresh window over raw rows is 3 days (003): dropping raw rows younger
    # than that would let a refresh policy delete aggregated history.
    hot_days: int = Field(default=30, ge=3)
    compress_after_days: int = Field(default=7, ge=1)
    # A directory, or an object store URI pyarrow.fs understands: s3://bucket/prefix?region=... (credentials
    # from the usual AWS_* variables; add &endpoint_override=host:port&scheme=http for S3-compatible stores).
    archive_url: str = str(PROJECT_ROOT / ".local" / "archive")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FOOTFALL_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    http: HttpSettings = HttpSettings()
    worker: WorkerSettings = WorkerSettings()
    alerting: AlertingSettings = AlertingSettings()
    auth: AuthSettings = AuthSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    snapshots: SnapshotSettings = SnapshotSettings()
    preview: PreviewSettings = PreviewSettings()
    # Where the local stack keeps its data, logs and downloaded jars/npm packages.
    local_dir: Path = PROJECT_ROOT / ".local"
    # The platform's superadmin bearer token (every tenant, every endpoint; for bootstrapping and
    # automation: people get API keys). Unset = only API keys are accepted.
    api_token: SecretStr | None = None
    # Key that encrypts camera stream passwords at rest (sql/credentials.py, Fernet). Unset = passwords refused.
    secret_key: SecretStr | None = None
    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
