"""The Prometheus rules and configurations the project ships, checked by Debian's ``promtool``:
``infra/prometheus/rules.yml`` (``check rules`` and its unit tests in ``tests/prometheus/``), the
docker-compose configuration and the one the local stack generates (``check config``, offline:
host names are not resolved). No services needed; ``promtool`` is installed by bootstrap and a
run without it fails, naming how to install it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import PROJECT_ROOT, Settings
from infra.local import configs
from infra.local.layout import PROMETHEUS_RULES, Layout

PROM_DIR = PROJECT_ROOT / "infra" / "prometheus"
RULES = PROM_DIR / "rules.yml"
COMPOSE_CONFIG = PROM_DIR / "prometheus.yml"
RULES_TEST = PROJECT_ROOT / "tests" / "prometheus" / "rules_test.yml"
METRIC_SOURCES = [PROJECT_ROOT / "agents" / "metrics.py", PROJECT_ROOT / "streams" / "health.py"]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: these tests need it. Install it with `sudo infra/local/bootstrap.sh` "
            "or `apt-get install -y --no-install-recommends prometheus` (Debian's package ships promtool)",
            pytrace=False,
        )
    return path


def run(promtool: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [promtool, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture
def local_config(tmp_path: Path, monkeypatch) -> Path:
    """The configuration ``python -m infra.local up`` writes, for a stack under tmp_path."""
    for var in [v for v in os.environ if v.startswith("FOOTFALL_")]:
        monkeypatch.delenv(var)
    lay = Layout.from_settings(Settings(_env_file=None, local_dir=tmp_path))
    path = tmp_path / "prometheus" / "prometheus.yml"
    path.parent.mkdir(parents=True)
    path.write_text(configs.prometheus_yml(lay, PROMETHEUS_RULES))
    return path


@pytest.mark.promtool
def test_rules_file_is_valid(promtool: str):
    out = run(promtool, "check", "rules", str(RULES)).stdout
    assert "SUCCESS" in out


@pytest.mark.promtool
def test_alerts_fire_after_their_for_and_not_below_threshold(promtool: str):
    """tests/prometheus/rules_test.yml: every alert and recording rule, at and around its threshold."""
    out = run(promtool, "test", "rules", str(RULES_TEST)).stdout
    assert "SUCCESS" in out


@pytest.mark.promtool
def test_compose_config_is_valid_and_loads_the_rules(promtool: str):
    out = run(promtool, "check", "config", str(COMPOSE_CONFIG)).stdout
    assert "1 rule files found" in out and "rules.yml" in out


@pytest.mark.promtool
def test_generated_local_config_is_valid_and_loads_the_rules(promtool: str, local_config: Path):
    out = run(promtool, "check", "config", str(local_config)).stdout
    assert "1 rule files found" in out and str(RULES) in out


def jobs(config: dict) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]] for job in config["scrape_configs"]
    }


def test_local_config_scrapes_the_worker_grabber_and_api_on_loopback(local_config: Path):
    local = yaml.safe_load(local_config.read_text())
    s = Settings(_env_file=None)
    assert jobs(local) == {
        "prometheus": [f"127.0.0.1:{s.http.prometheus_port}"],
        "grabber": [f"127.0.0.1:{s.http.metrics_port}"],
        "worker": [f"127.0.0.1:{s.http.worker_web_port}"],
        "api": [f"127.0.0.1:{s.http.api_port}"],
    }
    assert local["rule_files"] == [str(RULES)]
    # the same job names as docker-compose's, so the rules (up{job=...}) mean the same on both
    assert set(jobs(local)) == set(jobs(yaml.safe_load(COMPOSE_CONFIG.read_text())))


def test_compose_mounts_the_rules_beside_its_config():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./infra/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "./infra/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in volumes
    assert yaml.safe_load(COMPOSE_CONFIG.read_text())["rule_files"] == ["rules.yml"]


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_rules_use_only_metrics_the_code_exports():
    """A renamed metric must not leave a rule that silently never matches."""
    source = "\n".join(p.read_text() for p in METRIC_SOURCES)
    exported = set(re.findall(r'"(footfall_\w+)"', source))
    used = {name for r in rules() for name in re.findall(r"(?<![\w:])footfall_\w+", r["expr"])}
    assert used, "no footfall_ metric in the rules"
    unknown = {n for n in used if re.sub(r"_(total|bucket|sum|count)$", "", n) not in exported}
    assert not unknown, f"rules use metrics that agents/metrics.py and streams/health.py do not export: {unknown}"


def test_every_alert_has_unit_tests_and_a_severity():
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    tested = {
        t["alertname"]
        for case in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for t in case.get("alert_rule_test", [])
    }
    assert set(alerts) == tested
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "error", "warning"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
