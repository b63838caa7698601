"""ItemRepository: the only door to the items table, and the one place where driver errors
become the domain errors of errors.py. Nothing here knows about HTTP.

Statements come from statements.py and run on a pooled connection's reused cursor
(StatementConnection.run); psycopg prepares each statement shape once it has run
`prepare_threshold` times on a connection (configuration, see db.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from itemsapi import statements
from itemsapi.errors import (
    Conflict,
    ConstraintViolation,
    DatabaseUnavailable,
    ItemNotFound,
    PreconditionFailed,
    QueryTimeout,
    SchemaMissing,
)
from itemsapi.statements import WRITABLE_COLUMNS, ListQuery, SortKey, text

log = logging.getLogger(__name__)

Row = dict[str, Any]
T = TypeVar("T")

# Seconds the current request may still wait for a pooled connection; None: the pool's own
# timeout. Admission control sets it for a request that has already waited for a run slot, so
# that both waits together stay within the pool timeout.
pool_wait_left: ContextVar[float | None] = ContextVar("pool_wait_left", default=None)

_SELECT = text(statements.select_statement)
_INSERT = text(statements.insert_statement)
_VERSION = text(statements.version_statement)
_RECENT = text(statements.recent_statement)
_PING = text(statements.ping_statement)
_APPLIED = text(statements.applied_versions_statement)
_NOTIFY = text(statements.notify_statement)
_ANNOUNCE = text(statements.announce_statement)


class StatementConnection(psycopg.Connection[Row]):
    """The pool's connections: each keeps one cursor for the repository's statements.

    A cursor is reusable, and a pooled connection serves one thread at a time, so its cursor
    does too. Making a cursor per statement (as Connection.execute does) copies the
    connection's adapters every time, a large part of a short statement's cost."""

    _statements: psycopg.Cursor[Row] | None = None

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> psycopg.Cursor[Row]:
        cursor = self._statements
        if cursor is None or cursor.closed:
            cursor = self._statements = self.cursor()
        return cursor.execute(query, params)


@dataclass(frozen=True)
class Page:
    items: list[Row]
    next_key: SortKey | None


class _ConnectionLost(DatabaseUnavailable):
    """The connection broke under a statement; safe to retry only for reads."""


class ItemRepository:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def create(self, values: Mapping[str, Any]) -> Row:
        params = _with_jsonb(values)

        return self.write(lambda conn: conn.run(_INSERT, params).fetchone())

    def get(self, item_id: int) -> Row:
        row = self.read(lambda conn: conn.run(_SELECT, {"id": item_id}).fetchone())
        if row is None:
            raise ItemNotFound(item_id)
        return row

    def recent(self, limit: int) -> list[Row]:
        """The `limit` items changed last, newest first."""
        return self.read(lambda conn: conn.run(_RECENT, {"limit": limit}).fetchall())

    def list(self, query: ListQuery) -> Page:
        statement = text(statements.list_sql, *statements.list_shape(query))
        params = statements.list_params(query)
        rows = self.read(lambda conn: conn.run(statement, params).fetchall())
        if len(rows) <= query.limit:
            return Page(rows, None)
        rows = rows[: query.limit]
        return Page(rows, statements.sort_key(rows[-1], query.sort))

    def replace(self, item_id: int, values: Mapping[str, Any], versions: list[int] | None) -> Row:
        statement = text(
            statements.update_statement, WRITABLE_COLUMNS, check_version=versions is not None
        )
        return self._change(item_id, statement, values, versions)

    def patch(self, item_id: int, changes: Mapping[str, Any], versions: list[int] | None) -> Row:
        # A column outside the allow-list makes update_statement raise.
        statement = text(
            statements.update_statement, tuple(changes), merge_attributes=True,
            check_version=versions is not None,
        )  # fmt: skip
        return self._change(item_id, statement, changes, versions)

    def delete(self, item_id: int, versions: list[int] | None) -> None:
        statement = text(statements.delete_statement, check_version=versions is not None)
        self._change(item_id, statement, {}, versions)

    def notify(self, channel: str, payload: str) -> None:
        """Tell every worker of every replica listening on `channel` (listener.py)."""
        self.write(lambda conn: conn.run(_NOTIFY, {"channel": channel, "payload": payload}))

    def announce(self, ids: list[int] | None, origin: str) -> None:
        """Tell every worker's read cache that committed writes of the server `origin` changed
        these items (None: any item). The items triggers leave this API's own writes to this
        (sql/migrations/0002, 0004); announcer.py sends it off the request path."""
        self.write(lambda conn: conn.run(_ANNOUNCE, {"ids": ids, "origin": origin}))

    def ping(self, timeout: float) -> frozenset[int]:
        """The schema versions applied, read on a pooled connection (waiting at most `timeout`
        for the pool) after checking the schema is in place: without it every item request
        would fail."""
        with self._connection(timeout) as conn:
            if not conn.run(_PING).fetchone()["in_place"]:
                raise SchemaMissing()
            versions = conn.run(_APPLIED).fetchone()["versions"]
        return frozenset(versions or ())

    def _change(
        self, item_id: int, statement: str, values: Mapping[str, Any], versions: list[int] | None
    ) -> Row:
        params = {**_with_jsonb(values), "id": item_id}
        if versions is not None:
            params["versions"] = versions

        def run(conn: StatementConnection) -> Row:
            row = conn.run(statement, params).fetchone()
            if row is not None:
                return row
            # Nothing matched: tell a missing item from a stale If-Match.
            current = conn.run(_VERSION, {"id": item_id}).fetchone()
            if current is None:
                raise ItemNotFound(item_id)
            raise PreconditionFailed(item_id, current["version"])

        return self.write(run)

    def read(self, work: Callable[[StatementConnection], T]) -> T:
        """Run `work` as a read, with this repository's error mapping and one retry on a lost
        connection; also for the stores of the other tables sharing the pool (auth.keys)."""
        # A read is idempotent: if its connection turns out to be dead (the server restarted
        # since it was pooled), one more try on a fresh connection is safe.
        try:
            with self._connection() as conn:
                return work(conn)
        except _ConnectionLost:
            log.warning("connection lost during a read; retrying once")
            with self._connection() as conn:
                return work(conn)

    def write(self, work: Callable[[StatementConnection], T]) -> T:
        """Run `work` as a write (never retried), with this repository's error mapping."""
        # Writes are never retried: the first attempt may have committed.
        with self._connection() as conn:
            return work(conn)

    @contextmanager
    def _connection(self, timeout: float | None = None) -> Iterator[StatementConnection]:
        """A pooled connection; every driver error raised while it is held leaves as a domain
        error, with the server's words kept for the log, never for the client."""
        conn = None
        try:
            wait = timeout if timeout is not None else pool_wait_left.get()
            with self._pool.connection(timeout=wait) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable("no database connection available", "pool_timeout") from exc
        except pg_errors.QueryCanceled as exc:
            raise QueryTimeout("statement timed out") from exc
        except (
            pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.UndefinedFunction
        ) as exc:  # fmt: skip
            # The statements are fixed: an object they name is missing only when the database
            # lacks sql/init.sql (or has an older one).
            raise SchemaMissing(exc.diag.message_primary) from exc
        except pg_errors.UniqueViolation as exc:
            raise Conflict(exc.diag.message_primary or "unique violation") from exc
        except (pg_errors.IntegrityError, pg_errors.DataError) as exc:
            raise ConstraintViolation(_constraint_message(exc)) from exc
        except psycopg.OperationalError as exc:
            if conn is not None and conn.closed:
                raise _ConnectionLost(str(exc)) from exc
            raise DatabaseUnavailable(str(exc)) from exc


def _with_jsonb(values: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(values)
    if params.get("attributes") is not None:
        params["attributes"] = Jsonb(params["attributes"])
    return params


def _constraint_message(exc: psycopg.Error) -> str:
    # The constraint's name says which rule was broken without quoting any SQL or data.
    name = exc.diag.constraint_name
    return f"violates {name}" if name else "value out of range for its column"
