"""The migration runner against the real database, each test in a throw-away schema of its own
(``migrate(..., schema=...)`` puts the history table and every object there), dropped afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.settings import PROJECT_ROOT
from sql.migrate import ChecksumMismatch, MigrationFailed, discover, migrate, status, verify

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dsn(request: pytest.FixtureRequest) -> str:
    """The local stack's database: through the shared ``stack`` fixture when tests/conftest.py has
    one (it starts the stack); without one, skipped unless a database answers."""
    from core.settings import get_settings

    try:
        request.getfixturevalue("stack")
        have_stack = True
    except pytest.FixtureLookupError:
        have_stack = False
    url = get_settings().database.url.get_secret_value()
    if not have_stack:
        try:
            psycopg.connect(url, connect_timeout=5, prepare_threshold=None).close()
        except psycopg.OperationalError as e:
            pytest.skip(f"no database (start it with `python -m infra.local up`): {e}")
    return url


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    name = f"test_sql_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def one(dsn: str, query: str, params: object = None) -> object:
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def history(dsn: str, schema: str) -> list[int]:
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        return [r[0] for r in conn.execute(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')]


def cli(dsn: str, schema: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sql.migrate", *args, "--dsn", dsn, "--schema", schema],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_second_run_applies_nothing(dsn: str, schema: str) -> None:
    first = migrate(dsn, schema=schema)
    assert [m.label for m in first] == [m.label for m in discover()]
    assert first[0].label == "001_reference_tables"
    assert migrate(dsn, schema=schema) == []
    assert verify(dsn, schema=schema) == []
    hypertables = one(
        dsn, "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = %s", (schema,)
    )
    assert hypertables >= 6  # all the objects went into the test's schema


def test_two_processes_at_once_apply_each_migration_once(dsn: str, schema: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sql.migrate", "up", "--dsn", dsn, "--schema", schema],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    counts = [int(re.search(r"applied (\d+) migration", out).group(1)) for out in outputs]
    versions = [m.version for m in discover()]
    assert sum(counts) == len(versions), outputs  # however the two interleaved, each migration ran once
    assert history(dsn, schema) == versions


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


BROKEN = """-- Without one transaction per migration, everything above the last line would stay behind.
CREATE TABLE half_done (at timestamptz NOT NULL, v integer);
SELECT create_hypertable('half_done', by_range('at', INTERVAL '1 day'));
INSERT INTO base_table VALUES (2);
CREATE MATERIALIZED VIEW half_done_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', at) AS bucket, count(*) AS n FROM half_done GROUP BY 1 WITH NO DATA;
SELECT add_retention_policy('half_done', drop_after => INTERVAL '1 day');
INSERT INTO no_such_table VALUES (1);
"""


def test_failing_migration_leaves_the_previous_version(dsn: str, schema: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "001_base.sql",
        "CREATE TABLE base_table (id integer PRIMARY KEY);\nINSERT INTO base_table VALUES (1);\n",
    )
    write(tmp_path, "002_broken.sql", BROKEN)

    with pytest.raises(MigrationFailed) as failed:
        migrate(dsn, tmp_path, schema=schema)
    err = failed.value
    assert err.migration.label == "002_broken" and err.at_version == 1
    assert "002_broken.sql line 8" in str(err) and "no_such_table" in str(err)
    assert "still at version 1" in str(err)

    # 001 stayed applied; nothing of 002 is left: no table, no hypertable, no aggregate, no job, no row.
    assert history(dsn, schema) == [1]
    assert one(dsn, f'SELECT count(*) FROM "{schema}".base_table') == 1
    assert one(dsn, "SELECT to_regclass(%s)", (f'"{schema}".half_done',)) is None
    assert one(dsn, "SELECT to_regclass(%s)", (f'"{schema}".half_done_1h',)) is None
    ts_objects = one(
        dsn,
        """SELECT (SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = %(s)s)
                + (SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_schema = %(s)s)
                + (SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_schema = %(s)s)""",
        {"s": schema},
    )
    assert ts_objects == 0
    assert [(r.version, r.state) for r in status(dsn, tmp_path, schema=schema)] == [(1, "applied"), (2, "pending")]

    # The CLI says the same and exits non-zero.
    run = cli(dsn, schema, "up", "--dir", str(tmp_path))
    assert run.returncode == 2 and "still at version 1" in run.stderr

    # Fixed (it never ran, so editing it is fine), it applies.
    write(tmp_path, "002_broken.sql", BROKEN.replace("INSERT INTO no_such_table VALUES (1);\n", ""))
    assert [m.version for m in migrate(dsn, tmp_path, schema=schema)] == [2]
    assert one(dsn, f'SELECT count(*) FROM "{schema}".base_table') == 2
    assert one(dsn, "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_schema = %s", (schema,)) == 1


def test_changed_checksum_is_refused(dsn: str, schema: str, tmp_path: Path) -> None:
    write(tmp_path, "001_one.sql", "CREATE TABLE one (id integer);\n")
    migrate(dsn, tmp_path, schema=schema)
    write(tmp_path, "001_one.sql", "CREATE TABLE one (id bigint);\n")
    write(tmp_path, "002_two.sql", "CREATE TABLE two (id integer);\n")

    with pytest.raises(ChecksumMismatch, match="001_one"):
        migrate(dsn, tmp_path, schema=schema)
    assert history(dsn, schema) == [1]  # and 002 was not applied either
    assert [(r.version, r.state) for r in verify(dsn, tmp_path, schema=schema)] == [(1, "changed"), (2, "pending")]
    assert cli(dsn, schema, "verify", "--dir", str(tmp_path)).returncode == 1
    assert cli(dsn, schema, "up", "--dir", str(tmp_path)).returncode == 2


def test_up_to_a_version(dsn: str, schema: str, tmp_path: Path) -> None:
    for v in (1, 2, 3):
        write(tmp_path, f"00{v}_t{v}.sql", f"CREATE TABLE t{v} (id integer);\n")
    assert [m.version for m in migrate(dsn, tmp_path, schema=schema, target=2)] == [1, 2]
    run = cli(dsn, schema, "status", "--dir", str(tmp_path))
    assert run.returncode == 0 and re.search(r"003\s+t3\s+pending", run.stdout)
    assert cli(dsn, schema, "verify", "--dir", str(tmp_path)).returncode == 1
    run = cli(dsn, schema, "up", "--dir", str(tmp_path))
    assert run.returncode == 0 and "database at version 3" in run.stdout
    assert cli(dsn, schema, "verify", "--dir", str(tmp_path)).returncode == 0
