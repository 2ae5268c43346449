"""The migration runner's pure parts: file discovery and order, checksums, history checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sql import migrate as m


def write(directory: Path, name: str, text: str = "SELECT 1;\n") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def applied(version: int, name: str, checksum: str) -> m.Applied:
    return m.Applied(version, name, checksum, datetime(2026, 1, 1, tzinfo=UTC))


def test_discover_orders_by_number_not_by_text(tmp_path: Path) -> None:
    write(tmp_path, "010_ten.sql")
    write(tmp_path, "002_two.sql")
    write(tmp_path, "1000_thousand.sql")
    write(tmp_path, "001_one.sql")
    (tmp_path / "README.md").write_text("not a migration")
    found = m.discover(tmp_path)
    assert [(x.version, x.name) for x in found] == [(1, "one"), (2, "two"), (10, "ten"), (1000, "thousand")]
    assert found[0].label == "001_one"


@pytest.mark.parametrize("name", ["1_short.sql", "001-dash.sql", "001_Upper.sql", "abc_x.sql", "001_.sql"])
def test_discover_refuses_badly_named_files(tmp_path: Path, name: str) -> None:
    write(tmp_path, name)
    with pytest.raises(m.MigrationError, match="NNN_name.sql"):
        m.discover(tmp_path)


def test_discover_refuses_duplicate_versions(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql")
    write(tmp_path, "0001_b.sql")
    with pytest.raises(m.MigrationError, match="version 1 is also"):
        m.discover(tmp_path)


def test_discover_refuses_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(m.MigrationError, match="does not exist"):
        m.discover(tmp_path / "nope")


def test_discover_refuses_transaction_control(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n")
    with pytest.raises(m.MigrationError, match="BEGIN, COMMIT"):
        m.discover(tmp_path)


def test_checksum_is_sha256_and_ignores_line_endings() -> None:
    assert m.checksum("SELECT 1;\n") == m.checksum("SELECT 1;\r\n")
    assert m.checksum("SELECT 1;\n") != m.checksum("SELECT 2;\n")
    assert len(m.checksum("")) == 64


@pytest.mark.parametrize(
    "text",
    [
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN NEW;\nEND;\n$$;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;",
        "DO $$ BEGIN PERFORM 1; END $$;",
        "-- COMMIT; is only mentioned here\nSELECT 1;",
        "/* BEGIN; */ SELECT 'COMMIT; END;';",
        'SELECT 1 AS "begin";',
        "SELECT CASE WHEN true THEN 1 END;",
    ],
)
def test_transaction_control_ignores_bodies_comments_and_strings(text: str) -> None:
    assert m.transaction_control(text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("begin;", ["BEGIN"]),
        ("START TRANSACTION; SELECT 1; ROLLBACK;", ["START", "ROLLBACK"]),
        ("SELECT 1;\ncommit\n;", ["COMMIT"]),
        ("SELECT 1; END;", ["END"]),
    ],
)
def test_transaction_control_finds_statements(text: str, found: list[str]) -> None:
    assert m.transaction_control(text) == found


def test_compare_and_history_checks(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "SELECT 1;")
    write(tmp_path, "002_b.sql", "SELECT 2;")
    write(tmp_path, "003_c.sql", "SELECT 3;")
    files = m.discover(tmp_path)
    one, two, three = files

    history = {1: applied(1, "a", one.checksum)}
    assert [r.state for r in m.compare(files, history)] == ["applied", "pending", "pending"]
    assert m._check_history(files, history, None) == [two, three]
    assert m._check_history(files, history, 2) == [two]
    assert m._check_history(files, {**history, 2: applied(2, "b", two.checksum)}, 2) == []

    changed = {1: applied(1, "a", "0" * 64)}
    assert m.compare(files, changed)[0].state == "changed"
    with pytest.raises(m.ChecksumMismatch, match="001_a"):
        m._check_history(files, changed, None)

    newer = {**history, 7: applied(7, "future", "f" * 64)}
    assert m.compare(files, newer)[-1].state == "missing"
    with pytest.raises(m.MigrationError, match="007_future"):
        m._check_history(files, newer, None)

    gap = {1: applied(1, "a", one.checksum), 3: applied(3, "c", three.checksum)}
    with pytest.raises(m.MigrationError, match="renumber"):
        m._check_history(files, gap, None)


def test_lock_key_is_stable_signed_64_bit_and_per_schema() -> None:
    key = m.lock_key("public")
    assert key == m.lock_key("public")
    assert -(2**63) <= key < 2**63
    assert key != m.lock_key("other")


def test_libpq_dsn_accepts_sqlalchemy_urls() -> None:
    assert m._libpq_dsn("postgresql+psycopg://u:p@h:5432/d") == "postgresql://u:p@h:5432/d"
    assert m._libpq_dsn("postgresql://u:p@h/d") == "postgresql://u:p@h/d"


def test_the_projects_migrations_are_well_formed() -> None:
    found = m.discover()
    assert [x.version for x in found] == list(range(1, len(found) + 1)), "versions are consecutive from 1"
    code = re.sub(r"--[^\n]*", "", "\n".join(x.sql for x in found))
    # Nothing that needs a run outside a transaction, nothing PGlite lacks.
    assert "WITH DATA" not in code.replace("WITH NO DATA", "")
    assert "refresh_continuous_aggregate" not in code
    assert "pgcrypto" not in code


def test_migrate_retries_a_lost_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """pgbouncer answers "server conn crashed?" once after the database restarts: retry, then go on."""
    import psycopg

    calls: list[int] = []

    def flaky(dsn, migrations, target, schema, out) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise psycopg.OperationalError("server conn crashed?")
        out.append(migrations[0])

    monkeypatch.setattr(m, "_migrate_once", flaky)
    monkeypatch.setattr(m.time, "sleep", lambda s: None)
    assert [x.version for x in m.migrate("postgresql://unused")] == [1]
    assert len(calls) == 2

    def down(*args: object) -> None:
        calls.append(1)
        raise psycopg.OperationalError("connection refused")

    calls.clear()
    monkeypatch.setattr(m, "_migrate_once", down)
    with pytest.raises(psycopg.OperationalError):
        m.migrate("postgresql://unused", attempts=2)
    assert len(calls) == 2
