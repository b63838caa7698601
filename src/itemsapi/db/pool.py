"""The connection pool: one per server process, created inside that process (Granian builds the
app in each worker, so no pool is ever inherited across a fork), opened without waiting for the
database, with the connection class and per-connection settings every statement relies on.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Mapping
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from itemsapi import tracing
from itemsapi.config import Settings

Row = dict[str, Any]

log = logging.getLogger(__name__)

# psycopg_pool retries a failed connection with a doubling delay for reconnect_timeout
# (default 5 minutes), and while a retry is pending it opens no other connection: after a long
# outage a worker could wait a minute after the database is back. With a short timeout the pool
# retries once (about 1 s later) and then gives the slot up, and the next request that needs a
# connection makes a fresh attempt at once: recovery follows demand, within about a second.
RECONNECT_TIMEOUT = 0.1


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


def use_orjson(conn: psycopg.Connection) -> None:
    """jsonb in and out through orjson, as every response is encoded."""
    set_json_dumps(orjson.dumps, conn)
    set_json_loads(orjson.loads, conn)


class ConnectionEvents:
    """What the pool last managed: to connect (each new connection is configured) or not (it
    gave a reconnection up). Read by the readiness check, to answer at once while the server
    refuses connections instead of waiting for the pool's timeout."""

    def __init__(self) -> None:
        self.connected_once = False
        self.failing = False

    def configure(self, conn: psycopg.Connection) -> None:
        use_orjson(conn)
        self.connected_once, self.failing = True, False

    def reconnect_failed(self, _pool: ConnectionPool) -> None:
        self.failing = True


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


def create_pool(settings: Settings, events: ConnectionEvents) -> ConnectionPool:
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
        configure=events.configure,
        check=_discard_if_closed_by_server,
        reconnect_timeout=RECONNECT_TIMEOUT,
        reconnect_failed=events.reconnect_failed,
        name="itemsapi",
        open=False,
    )


class StatementConnection(psycopg.Connection[Row]):
    """The pool's connections: each keeps one cursor for the repositories' statements.

    A cursor is reusable, and a pooled connection serves one thread at a time, so its cursor
    does too. Making a cursor per statement (as Connection.execute does) copies the
    connection's adapters every time, a large part of a short statement's cost."""

    _statements: psycopg.Cursor[Row] | None = None

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> psycopg.Cursor[Row]:
        cursor = self._statements
        if cursor is None or cursor.closed:
            cursor = self._statements = self.cursor()
        if tracing.enabled and tracing.in_request():
            text = query if isinstance(query, str) else query.as_string(self)
            with tracing.statement(text):
                return cursor.execute(query, params)
        return cursor.execute(query, params)
