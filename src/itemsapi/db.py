"""The database around the items: the connection pool's lifecycle, applying the schema, the
server facts `itemsapi serve` checks at start, and creating the embedded default's database.

One ConnectionPool per server process, created by the app factory inside that process (Granian
calls the factory in each worker, so no pool is ever inherited across a fork), opened
explicitly without waiting for the database, and closed at exit.
"""

from __future__ import annotations

import logging
import select
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.util import Finalize

import orjson
import psycopg
from flask import Flask
from psycopg import errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from itemsapi.config import Settings
from itemsapi.errors import DatabaseUnavailable
from itemsapi.migrations import baseline_path
from itemsapi.repository import ItemRepository, StatementConnection
from itemsapi.statements import server_facts_statement

log = logging.getLogger(__name__)

# psycopg_pool retries a failed connection with a doubling delay for reconnect_timeout
# (default 5 minutes), and while a retry is pending it opens no other connection: after a long
# outage a worker could wait a minute after the database is back. With a short timeout the pool
# retries once (about 1 s later) and then gives the slot up, and the next request that needs a
# connection makes a fresh attempt at once: recovery follows demand, within about a second.
RECONNECT_TIMEOUT = 0.1

POOL_KEY = "itemsapi.pool"
REPOSITORY_KEY = "itemsapi.repository"
CLOSER_KEY = "itemsapi.pool_closer"


def connection_options(settings: Settings) -> dict[str, object]:
    """Per-connection settings, sent in the startup packet (no extra round trip).

    A transaction-mode pooler (PgBouncer) refuses the `options` startup parameter, and a SET
    would stay on whichever shared server connection ran it: with session_settings "server"
    statement_timeout and TimeZone come from the role instead (ALTER ROLE ... SET), which every
    server connection the pooler opens starts with. TimeZone matters: psycopg hands back
    timestamptz values in the session's zone, and responses print that offset (a Z for UTC).
    """
    options: dict[str, object] = {
        "autocommit": True,  # every statement is its own transaction: no BEGIN/COMMIT trips
        "row_factory": dict_row,
        "prepare_threshold": settings.prepare_threshold,
        "application_name": "itemsapi",  # a startup parameter PgBouncer passes on
    }
    if settings.session_settings == "startup":
        # itemsapi.announce: this session announces its writes to the read caches itself, after
        # commit (ItemRepository), so the items triggers do not (sql/migrations/0002). Behind
        # a pooler the role carries it, with the other two (docs/operations.md).
        options["options"] = (
            f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC"
            " -c itemsapi.announce=after_commit"
        )
    return options


@dataclass(frozen=True)
class SessionSettings:
    statement_timeout_ms: int
    timezone: str


def session_settings(database_url: str, settings: Settings) -> SessionSettings:
    """The statement_timeout and TimeZone a session of the API gets (through a pooler too)."""
    with psycopg.connect(database_url, connect_timeout=3, **connection_options(settings)) as conn:
        row = conn.execute(
            "SELECT current_setting('TimeZone') AS timezone, (SELECT setting::int FROM"
            " pg_settings WHERE name = 'statement_timeout') AS statement_timeout_ms"
        ).fetchone()
    return SessionSettings(**row)


def _configure(conn: psycopg.Connection) -> None:
    set_json_dumps(orjson.dumps, conn)
    set_json_loads(orjson.loads, conn)


def _discard_if_closed_by_server(conn: psycopg.Connection) -> None:
    """Pool check on checkout, with no round trip: an idle connection has nothing to read
    unless the server has hung up on it (a restart sends a FATAL message, then EOF).

    The pool takes back a connection whose check raised and keeps it unless it is closed, so
    close it first: then the pool discards it, opens a replacement, and tries another."""
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        log.warning("discarding a pooled connection the server has closed")
        conn.close()
        raise psycopg.OperationalError("the server closed this idle connection")


def create_pool(settings: Settings) -> ConnectionPool:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    return ConnectionPool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        max_idle=settings.pool_max_idle,
        max_lifetime=settings.pool_max_lifetime,
        connection_class=StatementConnection,
        kwargs=connection_options(settings),
        configure=_configure,
        check=_discard_if_closed_by_server,
        reconnect_timeout=RECONNECT_TIMEOUT,
        name="itemsapi",
        open=False,
    )


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    pool = create_pool(settings)
    # Don't wait: the API serves /live and answers 503 until the database can be reached.
    pool.open(wait=False)
    app.extensions[POOL_KEY] = pool
    app.extensions[REPOSITORY_KEY] = ItemRepository(pool)
    # Close the pool at exit. A Granian worker is a multiprocessing child, which skips atexit
    # handlers but runs multiprocessing finalizers; a plain process runs those at exit too.
    app.extensions[CLOSER_KEY] = Finalize(pool, pool.close, exitpriority=10)


def close_app(app: Flask) -> None:
    closer = app.extensions.pop(CLOSER_KEY, None)
    if closer is not None:
        closer()  # runs pool.close once and unregisters it
    app.extensions.pop(POOL_KEY, None)


def apply_schema(database_url: str) -> None:
    """Run the baseline, sql/init.sql (idempotent), as the postgres image does on an empty
    volume. Bringing a database up to date is migrations.migrate's job."""
    script = baseline_path().read_text()
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(script)  # no parameters: sent as one multi-statement simple query


@dataclass(frozen=True)
class ServerFacts:
    connections_allowed: int  # max_connections less the connections reserved for superusers
    schema_in_place: bool


def inspect_server(database_url: str) -> ServerFacts:
    """What `itemsapi serve` checks once before it starts, on a connection of its own."""
    try:
        with psycopg.connect(
            database_url, connect_timeout=3, autocommit=True, row_factory=dict_row
        ) as conn:
            facts = conn.execute(server_facts_statement()).fetchone()
    except psycopg.Error as exc:
        raise DatabaseUnavailable(str(exc).strip()) from exc
    return ServerFacts(**facts)


def create_database(admin_url: str, name: str) -> None:
    """Create database `name` through `admin_url` unless it exists (the embedded default)."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        # Another process (a second `itemsapi` command on the same folder) may create it between
        # the check and the CREATE: PostgreSQL reports that clash on its catalog's unique index.
        with suppress(errors.DuplicateDatabase, errors.UniqueViolation):
            conn.execute(statement)
