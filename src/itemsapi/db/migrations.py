"""Versioned schema migrations: sql/init.sql is the baseline (version 0), then the numbered files
of sql/migrations (`NNNN_short_name.sql`) are applied in order, each exactly once, and recorded
in the schema_migrations table with their sha256."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import psycopg
from psycopg.pq import TransactionStatus

from itemsapi.db import search_config as db_search_config

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"([0-9]{4})_([a-z0-9_]+)\.sql")
NO_TRANSACTION_MARKER = b"-- itemsapi: no-transaction"
# In a no-transaction file, a line of its own that separates two statements, each run alone.
NEXT_STATEMENT_MARKER = "-- itemsapi: next-statement"
# 'itemsmig' in ASCII, as a bigint: one runner at a time. Not init.sql's key: a bare init.sql run
# (an older `itemsapi init-db`) queued on it would wait inside its transaction, holding a
# snapshot, and so deadlock with a CREATE INDEX CONCURRENTLY migration (see _lock).
LOCK_KEY = int.from_bytes(b"itemsmig", "big")
LOCK_POLL_SECONDS = 0.2
RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"


class MigrationError(Exception):
    """The schema cannot be brought up to date; the message is one line naming the file."""


class MigrationFileError(MigrationError):
    """The migrations folder holds something that is not a well-named migration."""


class ChangedMigrationError(MigrationError):
    """A migration already applied has been edited since."""


class MigrationFailedError(MigrationError):
    """PostgreSQL refused a migration; its own changes were rolled back (unless no-transaction)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    content: bytes

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def no_transaction(self) -> bool:
        return self.content.split(b"\n", 1)[0].rstrip() == NO_TRANSACTION_MARKER


class MigrationStatus(NamedTuple):
    version: int
    name: str
    state: str  # applied | pending | changed | no-file (applied by a newer release)


def _sql_path(name: str) -> Path:
    """sql/<name>: packaged inside wheels, at the repository top in a source checkout."""
    packaged = resources.files("itemsapi") / "sql" / name
    if packaged.is_file() or packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "sql" / name


def baseline_path() -> Path:
    return _sql_path("init.sql")


def migrations_folder() -> Path:
    return _sql_path("migrations")


def discover(folder: Path | None = None) -> list[Migration]:
    """The folder's migrations by version; anything else in it (bar dotfiles) is refused."""
    folder = folder or migrations_folder()
    if not folder.is_dir():
        raise MigrationFileError(f"migrations folder {folder} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):  # .gitkeep, editors' swap files
            continue
        match = FILE_NAME.fullmatch(path.name)
        if match is None or not path.is_file():
            raise MigrationFileError(
                f"{path.name} in {folder} is not a migration: name it NNNN_short_name.sql"
                " (four digits, then lower-case letters, digits and underscores)"
            )
        version = int(match[1])
        if version == 0:
            raise MigrationFileError(f"{path.name}: version 0 is the baseline, sql/init.sql")
        if version in found:
            raise MigrationFileError(
                f"{found[version].path.name} and {path.name} share version {version:04d}"
            )
        found[version] = Migration(version, match[2], path, path.read_bytes())
    return [found[version] for version in sorted(found)]


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, str | None]]:
    """version -> (name, checksum) of what the database records; empty before the baseline."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return {}
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations")
    return {version: (name, checksum) for version, name, checksum in rows}


def _plan(conn: psycopg.Connection, files: list[Migration]) -> list[Migration]:
    """What migrate would run, in order; refuses first if an applied file has changed."""
    applied = _applied(conn)
    for m in files:
        if m.version in applied and applied[m.version][1] != m.checksum:
            recorded = applied[m.version][1] or "nothing"
            raise ChangedMigrationError(
                f"{m.path.name} was applied with sha256 {recorded[:12]} but is now"
                f" {m.checksum[:12]}: restore it and put the change in a new migration"
            )
    plan = [m for m in files if m.version not in applied]
    if 0 not in applied:
        plan.insert(0, Migration(0, "baseline", baseline_path(), baseline_path().read_bytes()))
    return plan


def status(url: str, folder: Path | None = None) -> list[MigrationStatus]:
    """Every version the files or the database know of, with its state."""
    files = discover(folder)
    with _connect(url) as conn:
        applied = _applied(conn)
    rows = [MigrationStatus(0, "baseline", "applied" if 0 in applied else "pending")]
    for m in files:
        if m.version not in applied:
            state = "pending"
        else:
            state = "applied" if applied[m.version][1] == m.checksum else "changed"
        rows.append(MigrationStatus(m.version, m.name, state))
    shipped = {0} | {m.version for m in files}
    rows += [MigrationStatus(v, applied[v][0], "no-file") for v in applied if v not in shipped]
    return sorted(rows)


def pending(url: str, folder: Path | None = None) -> list[Migration]:
    """What migrate would apply now (the baseline first if the database lacks it)."""
    files = discover(folder)
    with _connect(url) as conn:
        return _plan(conn, files)


def migrate(
    url: str, folder: Path | None = None, dry_run: bool = False, search_config: str | None = None
) -> list[Migration]:
    """Apply the pending migrations in order and return them (dry_run: only return them); then,
    given `search_config`, make it the database's text search configuration (search_config.py)."""
    files = discover(folder)
    with _connect(url) as conn:  # closing the session releases its advisory lock
        if dry_run:
            return _plan(conn, files)
        _lock(conn)
        plan = _plan(conn, files)
        for m in plan:
            log.info("applying migration %s", m.path.name)
            started = time.monotonic()
            _apply(conn, m)
            log.info("applied migration %s in %.3f s", m.path.name, time.monotonic() - started)
        if search_config is not None:
            try:
                db_search_config.apply(conn, search_config)
            except db_search_config.UnknownSearchConfig as exc:
                raise MigrationError(str(exc)) from None
    return plan


def _lock(conn: psycopg.Connection) -> None:
    # Polled rather than pg_advisory_lock: a session blocked in that call holds a snapshot, and
    # CREATE INDEX CONCURRENTLY in the session holding the lock waits for every older snapshot
    # to end, so the two would deadlock.
    def locked() -> bool:
        return conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]

    if not locked():
        log.info("another migrate holds the lock; waiting for it to finish")
        while not locked():
            time.sleep(LOCK_POLL_SECONDS)


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    script = m.content.decode()
    try:
        if m.version == 0:
            conn.execute(script)  # init.sql is its own transaction and records version 0
        elif m.no_transaction:
            # Prepared, so the extended protocol carries each: PostgreSQL refuses a second
            # statement there instead of wrapping them all in one implicit transaction.
            for statement in _statements(script):
                conn.execute(statement, prepare=True)
            conn.execute(RECORD, (m.version, m.name, m.checksum))
        else:
            with conn.transaction():
                conn.execute(script)  # no parameters: one multi-statement simple query
                if conn.info.transaction_status != TransactionStatus.INTRANS:
                    raise MigrationFailedError(
                        f"migration {m.path.name} ended the runner's transaction: remove its"
                        " BEGIN/COMMIT/ROLLBACK (each file already runs in a transaction)"
                    )
                conn.execute(RECORD, (m.version, m.name, m.checksum))
    except psycopg.Error as error:
        reason = (str(error) or type(error).__name__).splitlines()[0]
        raise MigrationFailedError(f"migration {m.path.name} failed: {reason}") from error


def _statements(script: str) -> list[str]:
    """A no-transaction file's statements, split at NEXT_STATEMENT_MARKER lines."""
    parts, current = [], []
    for line in script.splitlines(keepends=True):
        if line.rstrip() == NEXT_STATEMENT_MARKER:
            parts.append("".join(current))
            current = []
        else:
            current.append(line)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]
