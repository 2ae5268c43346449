"""Apply the versioned SQL files in ``sql/migrations`` in order, each in one transaction.

    python -m sql.migrate up [--to N]   apply pending migrations (up to version N)
    python -m sql.migrate status        list every file and whether it is applied
    python -m sql.migrate verify        exit 1 unless every file is applied, unchanged
    options: --dir PATH (default sql/migrations), --dsn DSN (default: settings, FOOTFALL_DATABASE__URL),
             --schema NAME (default public)

From code and tests::

    applied = migrate(dsn)                    # -> list[Migration] applied by this call
    rows = status(dsn); problems = verify(dsn)

Rules:

- Files are ``NNN_name.sql`` (``name`` in ``[a-z0-9_]``), applied in version order, forward only.
  What ran is recorded in ``schema_migrations`` (version, name, checksum, applied_at, ...).
- An applied file whose checksum (SHA-256 of its text) changed stops everything: fix by adding a
  new migration, never by editing one that ran. A pending file numbered below an applied version,
  or an applied version whose file is gone, is refused too.
- Each migration runs in ONE transaction together with its ``schema_migrations`` row, so a failing
  migration leaves the database at the previous version with nothing half-applied. Files must not
  contain transaction control (BEGIN/COMMIT/...): the runner refuses them before running anything.
- Concurrency: every transaction starts with ``pg_advisory_xact_lock`` and re-reads the applied set
  after taking it, so two processes (or two deploys) may run ``up`` at once: each migration is
  applied exactly once and both succeed. Session-level advisory locks are not used because clients
  reach the database through pgbouncer in transaction mode, where a session lock would be taken on
  one server connection and released on another. For the same reason psycopg runs with
  ``prepare_threshold=None`` and ``search_path`` is set with ``SET LOCAL`` in each transaction.
- ``schema`` puts the history table and every unqualified object of the files into that schema
  (``search_path = schema, public``): production uses ``public``; tests use throw-away schemas.
- Statements that cannot run inside a transaction block: on TimescaleDB 2.23 (checked on the PGlite
  build, same on the official image) these are ``CREATE MATERIALIZED VIEW ... WITH DATA`` for a
  continuous aggregate and ``CALL refresh_continuous_aggregate(...)``. Hypertables, compression
  settings, ``compress_chunk``, continuous aggregates ``WITH NO DATA`` (stacked too) and every
  ``add_*_policy`` work transactionally. So no migration needs to run outside a transaction: the
  aggregates are created ``WITH NO DATA`` and ``materialized_only = false`` (real-time aggregation
  answers until the refresh policies have run; see 003). A one-off refresh is an operator's
  command, documented in 003, not a migration.

Why not a library: yoyo-migrations 9 (checked) keys applied migrations by a hash of their id, not of
their content, so an edited file goes unnoticed; it serialises runs with a row in a ``yoyo_lock``
table that a killed process leaves behind (``yoyo break-lock``); and it opens its own psycopg
connection, where the default server-side prepared statements break behind pgbouncer's transaction
pooling. Alembic and friends bring a Python migration DSL where the design asks for plain SQL
files. What is needed is ~200 lines: this module.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HISTORY_TABLE = "schema_migrations"

_FILE_NAME = re.compile(r"^(?P<version>\d{3,})_(?P<name>[a-z0-9][a-z0-9_]*)\.sql$")
# Comments, string literals, quoted identifiers and dollar-quoted bodies: blanked out before looking
# for transaction control at the start of a statement (a function body's BEGIN is not one).
_NOT_CODE = re.compile(
    r"""--[^\n]*
      | /\*.*?\*/
      | '(?:[^']|'')*'
      | "(?:[^"]|"")*"
      | \$\$.*?\$\$
      | \$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)\$.*?\$(?P=tag)\$""",
    re.S | re.X,
)
_TRANSACTION_CONTROL = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"}


class MigrationError(Exception):
    """Something about the migrations or the database's history is wrong; nothing was applied."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file no longer matches what ran."""


class MigrationFailed(MigrationError):
    """A migration raised an error; its transaction was rolled back."""

    def __init__(self, migration: Migration, at_version: int, cause: psycopg.Error) -> None:
        self.migration = migration
        self.at_version = at_version
        self.cause = cause
        where = migration.path.name
        position = cause.diag.statement_position if cause.diag else None
        if position and position.isdigit():
            line = migration.sql[: int(position)].count("\n") + 1
            where += f" line {line}"
        super().__init__(
            f"migration {migration.label} failed ({where}): {cause}".rstrip()
            + f"\nrolled back; the database is still at version {at_version}"
        )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class Status:
    version: int
    name: str
    state: str  # applied | pending | changed | missing
    applied_at: datetime | None = None


# --------------------------------------------------------------------------- pure parts


def checksum(text: str) -> str:
    """SHA-256 of a migration's text, with line endings normalised (a CRLF checkout is not a change).

    >>> checksum("SELECT 1;\\r\\n") == checksum("SELECT 1;\\n")
    True
    """
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def transaction_control(text: str) -> list[str]:
    """Statements in ``text`` that would end or open a transaction (which the runner owns).

    >>> transaction_control("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;")
    []
    >>> transaction_control("BEGIN; CREATE TABLE t (); COMMIT;")
    ['BEGIN', 'COMMIT']
    """
    code = _NOT_CODE.sub(" ", text)
    found = []
    for statement in code.split(";"):
        words = statement.split()
        if words and words[0].upper() in _TRANSACTION_CONTROL:
            found.append(words[0].upper())
    return found


def discover(directory: Path | str | None = None) -> list[Migration]:
    """The migrations in ``directory``, in version order. Every ``*.sql`` file must be named
    ``NNN_name.sql``; versions must be unique; no file may contain transaction control."""
    directory = Path(directory) if directory is not None else MIGRATIONS_DIR
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql (name in a-z, 0-9, _)")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is also {found[version].path.name}")
        text = path.read_text(encoding="utf-8")
        control = transaction_control(text)
        if control:
            raise MigrationError(
                f"{path.name}: contains {', '.join(control)}; each migration already runs in one "
                "transaction owned by the runner: remove the transaction control"
            )
        found[version] = Migration(version, match["name"], path, text, checksum(text))
    return [found[v] for v in sorted(found)]


def compare(migrations: Sequence[Migration], applied: dict[int, Applied]) -> list[Status]:
    """Each file's state against the history, plus applied versions whose file is missing."""
    rows = []
    for m in migrations:
        done = applied.get(m.version)
        if done is None:
            rows.append(Status(m.version, m.name, "pending"))
        else:
            state = "applied" if done.checksum == m.checksum else "changed"
            rows.append(Status(m.version, m.name, state, done.applied_at))
    known = {m.version for m in migrations}
    rows += [Status(a.version, a.name, "missing", a.applied_at) for a in applied.values() if a.version not in known]
    return sorted(rows, key=lambda r: r.version)


def lock_key(schema: str) -> int:
    """The advisory lock key for one schema's history: a stable signed 64-bit integer."""
    digest = hashlib.sha256(f"footfall.sql.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _check_history(migrations: Sequence[Migration], applied: dict[int, Applied], target: int | None) -> list[Migration]:
    """Refuse a history that does not match the files; return what is pending (up to ``target``)."""
    rows = compare(migrations, applied)
    changed = [r for r in rows if r.state == "changed"]
    if changed:
        names = ", ".join(f"{r.version:03d}_{r.name}" for r in changed)
        raise ChecksumMismatch(
            f"applied migration(s) {names} changed since they ran; add a new migration instead of editing one"
        )
    missing = [r for r in rows if r.state == "missing"]
    if missing:
        names = ", ".join(f"{r.version:03d}_{r.name}" for r in missing)
        raise MigrationError(f"the database has migration(s) {names} that are not in this checkout; it is newer")
    top = max(applied, default=0)
    pending = [m for m in migrations if m.version not in applied]
    late = [m for m in pending if m.version < top]
    if late:
        raise MigrationError(
            f"{late[0].path.name} is pending but version {top} is already applied; renumber it above {top}"
        )
    return [m for m in pending if target is None or m.version <= target]


# --------------------------------------------------------------------------- database


def _libpq_dsn(dsn: str) -> str:
    # Accept SQLAlchemy-style URLs too (postgresql+psycopg://...).
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", dsn)


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(
        _libpq_dsn(dsn), prepare_threshold=None, autocommit=False, application_name="footfall-migrate"
    )


def _table(schema: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(HISTORY_TABLE))


def _begin(cur: psycopg.Cursor, schema: str) -> None:
    """First statements of every transaction: serialise runners, then point unqualified names at
    ``schema`` (public stays on the path for the extension's functions)."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
    path = [sql.Identifier(schema)] if schema == "public" else [sql.Identifier(schema), sql.Identifier("public")]
    cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.SQL(", ").join(path)))


def _ensure_history(conn: psycopg.Connection, schema: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _begin(cur, schema)
        if schema != "public":
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                       version      integer PRIMARY KEY,
                       name         text NOT NULL,
                       checksum     text NOT NULL,
                       applied_at   timestamptz NOT NULL DEFAULT now(),
                       applied_by   text NOT NULL DEFAULT current_user,
                       execution_ms integer NOT NULL
                   )"""
            ).format(_table(schema))
        )


def _read_applied(cur: psycopg.Cursor, schema: str) -> dict[int, Applied]:
    cur.execute("SELECT to_regclass(%s)", (_table(schema).as_string(cur),))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return {}
    cur.execute(sql.SQL("SELECT version, name, checksum, applied_at FROM {} ORDER BY version").format(_table(schema)))
    return {r[0]: Applied(*r) for r in cur.fetchall()}


def _migrate_once(dsn: str, migrations: list[Migration], target: int | None, schema: str, out: list[Migration]) -> None:
    with _connect(dsn) as conn:
        _ensure_history(conn, schema)
        while True:
            with conn.transaction(), conn.cursor() as cur:
                _begin(cur, schema)
                applied = _read_applied(cur, schema)  # re-read under the lock: another runner may have won
                pending = _check_history(migrations, applied, target)
                if not pending:
                    return
                m = pending[0]
                started = time.perf_counter()
                try:
                    cur.execute(m.sql)  # no parameters: simple protocol, all statements of the file
                except psycopg.Error as e:
                    if conn.broken:
                        raise  # connection lost: the transaction died with it, migrate() retries
                    raise MigrationFailed(m, max(applied, default=0), e) from e
                if conn.info.transaction_status != TransactionStatus.INTRANS:
                    raise MigrationError(f"{m.path.name} ended the runner's transaction")
                elapsed_ms = round((time.perf_counter() - started) * 1000)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (version, name, checksum, execution_ms, applied_at)"
                        " VALUES (%s, %s, %s, %s, clock_timestamp())"
                    ).format(_table(schema)),
                    (m.version, m.name, m.checksum, elapsed_ms),
                )
            log.info("applied %s in %d ms", m.label, elapsed_ms)
            out.append(m)


def migrate(
    dsn: str,
    directory: Path | str | None = None,
    *,
    target: int | None = None,
    schema: str = "public",
    attempts: int = 3,
) -> list[Migration]:
    """Apply pending migrations (up to version ``target``) and return those this call applied.

    Safe to run twice and from several processes at once. Raises :class:`MigrationFailed` (the
    failing migration rolled back, earlier ones of this call stay applied), :class:`ChecksumMismatch`
    or :class:`MigrationError` (nothing applied). A lost connection (pgbouncer reports "server conn
    crashed?" once after the database restarts) is retried ``attempts`` times.
    """
    migrations = discover(directory)
    done: list[Migration] = []
    for attempt in range(1, attempts + 1):
        try:
            _migrate_once(dsn, migrations, target, schema, done)
            return done
        except psycopg.OperationalError as e:
            if attempt == attempts:
                raise
            log.warning("database connection failed (%s); retrying (%d/%d)", str(e).strip(), attempt, attempts)
            time.sleep(1.0)
    return done


def status(dsn: str, directory: Path | str | None = None, *, schema: str = "public") -> list[Status]:
    """Every migration file and applied version with its state: applied, pending, changed, missing."""
    migrations = discover(directory)
    with _connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        applied = _read_applied(cur, schema)
    return compare(migrations, applied)


def verify(dsn: str, directory: Path | str | None = None, *, schema: str = "public") -> list[Status]:
    """The rows of :func:`status` that are not ``applied``: empty means the database matches the files."""
    return [r for r in status(dsn, directory, schema=schema) if r.state != "applied"]


# --------------------------------------------------------------------------- command line


def _default_dsn() -> str:
    from core.settings import get_settings

    return get_settings().database.url.get_secret_value()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sql.migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="up", choices=["up", "status", "verify"])
    parser.add_argument("--to", type=int, default=None, metavar="N", help="apply up to version N (up only)")
    parser.add_argument("--dir", type=Path, default=MIGRATIONS_DIR, help="migrations directory")
    parser.add_argument("--dsn", default=None, help="database URL (default: FOOTFALL_DATABASE__URL / settings)")
    parser.add_argument("--schema", default="public", help="schema for the history table and objects")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dsn = args.dsn or _default_dsn()
    try:
        if args.command == "up":
            applied = migrate(dsn, args.dir, target=args.to, schema=args.schema)
            rows = status(dsn, args.dir, schema=args.schema)
            at = max((r.version for r in rows if r.state == "applied"), default=0)
            print(f"applied {len(applied)} migration(s); database at version {at}")
            return 0
        rows = status(dsn, args.dir, schema=args.schema) if args.command == "status" else []
        if args.command == "verify":
            rows = verify(dsn, args.dir, schema=args.schema)
        for r in rows:
            when = r.applied_at.isoformat(timespec="seconds") if r.applied_at else ""
            print(f"{r.version:03d}  {r.name:<32} {r.state:<8} {when}")
        if args.command == "verify":
            print("ok: every migration applied, unchanged" if not rows else f"{len(rows)} problem(s)")
            return 1 if rows else 0
        return 0
    except MigrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
