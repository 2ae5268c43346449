"""docker-compose.yml cannot run here (no Docker engine): check that it agrees with the code —
settings defaults, env var names, the topic catalogue — and keeps secrets out of the file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from core.settings import PROJECT_ROOT, Settings
from models.topics import catalogue

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
# A value that comes from the environment and makes compose fail when it is unset.
REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}$")
ENV_REF = re.compile(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")


def from_env(value: str) -> str:
    """Replace every required ``${VAR:?...}`` reference by FROM_ENV (so URLs parse)."""
    return ENV_REF.sub("FROM_ENV", value)


@pytest.fixture(autouse=True)
def no_footfall_env(monkeypatch):
    """Compared with the defaults: a developer's or CI's FOOTFALL_ variables must not leak in."""
    for var in [v for v in os.environ if v.startswith("FOOTFALL_")]:
        monkeypatch.delenv(var)


def defaults() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {k: str(v) for k, v in env.items()}


def published(service: dict) -> set[int]:
    return {int(str(p).split(":")[-2]) for p in service.get("ports", [])}


def test_every_part_is_there(services: dict):
    assert {"kafka", "timescaledb", "redis", "prometheus", "grafana", "grabber", "worker", "api"} <= set(services)


def test_images_are_pinned(services: dict):
    for name, svc in services.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} has no pinned tag"
        if "build" not in svc:
            assert re.search(r"\d", tag), f"{name}: image {image!r} is not pinned to a version"


def test_host_ports_match_settings_defaults(services: dict):
    s = defaults()
    assert published(services["kafka"]) == {int(s.kafka.bootstrap.rsplit(":", 1)[1])}
    assert published(services["timescaledb"]) == {urlsplit(s.database.url.get_secret_value()).port}
    assert published(services["redis"]) == {urlsplit(s.redis.url.get_secret_value()).port}
    assert published(services["api"]) == {s.http.api_port}
    assert published(services["worker"]) == {s.http.worker_web_port}
    assert published(services["grabber"]) == {s.http.metrics_port}
    assert published(services["prometheus"]) == {9090}
    assert published(services["grafana"]) == {3000}


def settings_field_exists(var: str) -> bool:
    """FOOTFALL_A__B -> Settings.a.b exists."""
    model: type[BaseModel] = Settings
    parts = var.removeprefix("FOOTFALL_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            model = field.annotation
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                return False
    return True


def test_footfall_variables_are_settings_fields(services: dict):
    seen = set()
    for name, svc in services.items():
        for var in env_of(svc):
            if var.startswith("FOOTFALL_") and name != "grafana":
                assert settings_field_exists(var), f"{name}: {var} is not a field of core.settings.Settings"
                seen.add(var)
    assert {"FOOTFALL_KAFKA__BOOTSTRAP", "FOOTFALL_DATABASE__URL", "FOOTFALL_REDIS__URL"} <= seen
    assert not settings_field_exists("FOOTFALL_KAFKA__NO_SUCH_FIELD")


def test_apps_share_one_configuration(services: dict):
    app_envs = [env_of(services[n]) for n in ("grabber", "worker", "api", "init")]
    # the worker adds only how other workers reach its web server
    worker_url = app_envs[1].pop("FOOTFALL_WORKER__CANONICAL_URL")
    assert worker_url == "http://worker:6066"
    assert all(e == app_envs[0] for e in app_envs)
    env = app_envs[0]
    assert env["FOOTFALL_KAFKA__TOPIC_PREFIX"] == defaults().kafka.topic_prefix
    assert catalogue(env["FOOTFALL_KAFKA__TOPIC_PREFIX"], 1)[0].name.startswith("footfall.")
    assert env["FOOTFALL_KAFKA__BOOTSTRAP"].startswith("kafka:")
    assert env["FOOTFALL_HTTP__HOST"] == "0.0.0.0"


def test_kafka_is_kraft_without_auto_create(services: dict):
    env = env_of(services["kafka"])
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"].split()[0])
    # The internal listener the apps use is one the broker advertises.
    internal = env_of(services["api"])["FOOTFALL_KAFKA__BOOTSTRAP"]
    assert f"://{internal}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "://localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_database_names_match_settings(services: dict):
    default = urlsplit(defaults().database.url.get_secret_value())
    env = env_of(services["timescaledb"])
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert env["POSTGRES_USER"] == default.username
    assert env["POSTGRES_DB"] == default.path.lstrip("/")
    app_url = urlsplit(from_env(env_of(services["worker"])["FOOTFALL_DATABASE__URL"]))
    assert (app_url.username, app_url.hostname, app_url.port, app_url.path) == (
        default.username,
        "timescaledb",
        5432,
        default.path,
    )


def test_no_secret_in_clear(services: dict):
    for name, svc in services.items():
        for var, value in env_of(svc).items():
            if SECRET_NAME.search(var):
                assert REQUIRED_VAR.match(value), f"{name}: {var} must come from ${{VAR:?...}}, not the file"
            if "://" in value and (password := urlsplit(from_env(value)).password):
                assert password == "FROM_ENV", f"{name}: {var} has a password in clear"


def test_commands(services: dict):
    assert services["worker"]["command"] == ["faust", "-A", "agents.app", "worker", "-l", "info"]
    assert services["grabber"]["command"] == ["python", "-m", "streams", "run", "--config", "/config/cameras.yaml"]
    assert services["api"]["command"] == ["python", "-m", "api"]


def test_mounted_files_exist(services: dict):
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), f"{name}: {source} does not exist"


def test_grafana_provisions_timescaledb():
    ds = yaml.safe_load((PROJECT_ROOT / "infra/grafana/provisioning/datasources/timescaledb.yml").read_text())
    (source,) = ds["datasources"]
    assert source["url"] == "timescaledb:5432"
    assert source["jsonData"]["database"] == "footfall" and source["jsonData"]["timescaledb"] is True
    assert source["secureJsonData"]["password"] == "$FOOTFALL_DB_PASSWORD"
    dash = yaml.safe_load((PROJECT_ROOT / "infra/grafana/provisioning/dashboards/footfall.yml").read_text())
    assert dash["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_the_grabber_metrics_port():
    prom = yaml.safe_load((PROJECT_ROOT / "infra/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert f"grabber:{defaults().http.metrics_port}" in targets


def test_dockerfile_and_dockerignore():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert re.search(r":\d+\.\d+\.\d+", base), f"base image {base} is not pinned"
    assert "USER " in dockerfile  # not root
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".local", ".env", ".git"} <= ignored
    assert Path(PROJECT_ROOT / ".gitignore").read_text().count(".env") >= 1
