"""Pure parts of infra/local: layout from settings, rendered configuration, process helpers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from infra.local import configs, procs
from infra.local.layout import ConfigError, Layout, kafka_version, parse_db_url, parse_host_port
from infra.local.services import StackError, expand


def props(text: str) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in text.splitlines() if ln and not ln.startswith("#"))


@pytest.fixture(autouse=True)
def no_footfall_env(monkeypatch):
    """These tests are about defaults: a developer's or CI's FOOTFALL_ variables must not leak in."""
    for var in [v for v in os.environ if v.startswith("FOOTFALL_")]:
        monkeypatch.delenv(var)


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    return Layout.from_settings(settings(local_dir=tmp_path))


def test_layout_defaults_match_the_documented_ports(lay: Layout, tmp_path: Path):
    assert (lay.kafka_port, lay.controller_port, lay.db.port, lay.pglite_port, lay.redis_port) == (
        9092,
        9093,
        5432,
        5433,
        6379,
    )
    assert (lay.db.user, lay.db.password, lay.db.dbname) == ("footfall", "footfall", "footfall")
    assert lay.log_file("kafka") == tmp_path / "kafka" / "kafka.log"
    assert lay.pid_file("redis") == tmp_path / "run" / "redis.pid"


def test_layout_follows_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("FOOTFALL_KAFKA__BOOTSTRAP", "localhost:19092")
    monkeypatch.setenv("FOOTFALL_DATABASE__URL", "postgresql://u%40x:p%3Aw@127.0.0.1:15432/db1")
    lay = Layout.from_settings(settings(local_dir=tmp_path))
    assert (lay.kafka_host, lay.kafka_port, lay.controller_port) == ("127.0.0.1", 19092, 19093)
    assert (lay.db.user, lay.db.password, lay.db.dbname, lay.pglite_port) == ("u@x", "p:w", "db1", 15433)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("kafka:9092", "not a loopback address"),
        ("127.0.0.1", "expected host:port"),
        ("10.0.0.5:9092", "not a loopback address"),
    ],
)
def test_bad_bootstrap_is_refused_naming_the_field(value: str, message: str):
    with pytest.raises(ConfigError, match=f"FOOTFALL_KAFKA__BOOTSTRAP: .*{message}"):
        parse_host_port(value, "FOOTFALL_KAFKA__BOOTSTRAP")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://a:b@127.0.0.1/db", "expected a postgresql:// URL"),
        ("postgresql://a@127.0.0.1/db", "no password"),
        ("postgresql://a:b@127.0.0.1", "no database name"),
        ("postgresql://a:b@db.example/db", "not a loopback address"),
    ],
)
def test_bad_database_url_is_refused(url: str, message: str):
    with pytest.raises(ConfigError, match=f"FOOTFALL_DATABASE__URL: .*{message}"):
        parse_db_url(url)


def test_kafka_is_a_single_kraft_node_that_never_auto_creates(lay: Layout):
    p = props(configs.kafka_server_properties(lay))
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert p["auto.create.topics.enable"] == "false"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "min.insync.replicas",
    ):
        assert p[key] == "1", key
    assert p["log.dirs"] == str(lay.root / "kafka" / "data")


def test_kafka_jvm_is_modest_and_logs_through_our_log4j(lay: Layout, tmp_path: Path):
    args = configs.kafka_jvm_args(lay, tmp_path / "libs")
    assert "-Xmx1g" in args
    assert f"-Dlog4j2.configurationFile={lay.root / 'kafka' / 'log4j2.properties'}" in args
    assert args[args.index("-cp") + 1] == f"{tmp_path / 'libs'}/*"


def test_cluster_id_looks_like_kafka_storage_random_uuid():
    cid = configs.kafka_cluster_id()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
    assert cid != configs.kafka_cluster_id()


def test_kafka_version_is_pinned_in_the_pom():
    assert re.fullmatch(r"4\.\d+\.\d+", kafka_version())


def test_pgbouncer_pools_one_transaction_at_a_time(lay: Layout):
    ini = configs.pgbouncer_ini(lay)
    settings = dict((k.strip(), v.strip()) for k, v in (ln.split("=", 1) for ln in ini.splitlines() if " = " in ln))
    assert settings["pool_mode"] == "transaction"
    assert settings["default_pool_size"] == "1"
    assert settings["max_db_connections"] == "1"
    assert settings["server_login_retry"] == "1"
    assert settings["listen_addr"] == "127.0.0.1" and settings["listen_port"] == "5432"
    assert settings["footfall"] == "host=127.0.0.1 port=5433 dbname=template1 user=postgres"
    assert settings["auth_type"] == "scram-sha-256"


def test_pgbouncer_userlist_quotes_the_credentials(tmp_path: Path):
    lay = Layout.from_settings(
        settings(local_dir=tmp_path, database={"url": 'postgresql://us"er:pa%20ss@127.0.0.1:5432/footfall'})
    )
    assert configs.pgbouncer_userlist(lay) == '"us""er" "pa ss"\n'


def test_redis_keeps_an_append_only_file_under_local_dir(lay: Layout):
    conf = dict(ln.split(" ", 1) for ln in configs.redis_conf(lay).splitlines() if ln and not ln.startswith("#"))
    assert conf["bind"] == "127.0.0.1" and conf["port"] == "6379"
    assert conf["appendonly"] == "yes"
    assert conf["dir"] == str(lay.root / "redis" / "data")


def test_services_expand_to_processes_in_start_order():
    assert expand([]) == ["redis", "pglite", "pgbouncer", "kafka", "prometheus"]
    assert expand(["db"]) == ["pglite", "pgbouncer"]
    assert expand(["kafka", "redis"]) == ["redis", "kafka"]
    with pytest.raises(StackError, match="zookeeper: unknown service; known: kafka, db, redis"):
        expand(["zookeeper"])


def test_port_free_sees_a_listening_socket():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not procs.port_free("127.0.0.1", port)
        assert procs.port_open("127.0.0.1", port)
    assert procs.port_free("127.0.0.1", port)


def test_running_pid_needs_the_token_in_the_command_line(tmp_path: Path):
    pid_file = tmp_path / "x.pid"
    assert procs.running_pid(pid_file, "token") is None  # no file
    pid_file.write_text(f"{os.getpid()}\n")
    assert procs.running_pid(pid_file, "no-such-token-in-pytest-cmdline") is None  # a reused pid
    assert procs.running_pid(pid_file, "pytest") == os.getpid()


def test_spawn_and_stop(tmp_path: Path):
    token = str(tmp_path / "marker")
    cmd = [sys.executable, "-c", "import sys, time; print('hello', flush=True); time.sleep(60)", token]
    pid = procs.spawn(cmd, tmp_path / "p.pid", tmp_path / "p.log", cwd=tmp_path)
    assert procs.running_pid(tmp_path / "p.pid", token) == pid
    assert procs.stop(pid, token, timeout_s=10)
    assert procs.running_pid(tmp_path / "p.pid", token) is None
    assert "hello" in (tmp_path / "p.log").read_text()


def test_stop_kills_what_ignores_sigterm(tmp_path: Path):
    token = str(tmp_path / "stubborn")
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ign' + 'oring', flush=True); time.sleep(60)"
    )
    pid = procs.spawn([sys.executable, "-c", code, token], tmp_path / "s.pid", tmp_path / "s.log", cwd=tmp_path)
    while "ignoring" not in (tmp_path / "s.log").read_text():
        time.sleep(0.05)
    assert procs.stop(pid, token, timeout_s=0.5) is False
    assert procs.running_pid(tmp_path / "s.pid", token) is None


def test_last_line_is_short(tmp_path: Path):
    log = tmp_path / "l.log"
    log.write_text("first\n" + "x" * 500 + "\n\n")
    line = procs.last_line(log)
    assert len(line) == 200 and line.endswith("...")
    assert procs.last_line(tmp_path / "missing.log") == ""


def test_bootstrap_and_ci_scripts_parse():
    root = Path(__file__).resolve().parents[2]
    for script in ("infra/local/bootstrap.sh", ".ci/run", "infra/run_main.sh"):
        subprocess.run(["bash", "-n", str(root / script)], check=True)
