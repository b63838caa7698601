"""Database: the pool as the repositories use it. Every statement runs inside `read` or `write`,
and this is the one place where driver errors become the domain errors of errors.py (the
server's words kept for the log, never for the client).

A request's wait for a connection is bounded by its deadline (a time.monotonic() value the
caller passes, see web/context.py): admission control counts the time a request already waited
for a run slot against the same pool timeout. Without one the pool's own timeout applies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, NullConnectionPool, PoolTimeout

from itemsapi import tracing
from itemsapi.db.pool import ConnectionEvents, StatementConnection
from itemsapi.errors import (
    Conflict,
    ConstraintViolation,
    DatabaseUnavailable,
    QueryTimeout,
    SchemaMissing,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[StatementConnection], T]
REFUSED_CONNECT_TIMEOUT = 1  # seconds a direct connection attempt may take when none is pooled
DIRECT_TIMEOUT = 10.0  # seconds a command waits for its connection


class _ConnectionLost(DatabaseUnavailable):
    """The connection broke under a statement; safe to retry only for reads."""


class Database:
    def __init__(self, pool: ConnectionPool, events: ConnectionEvents | None = None) -> None:
        self._pool = pool
        self._events = events

    def read(self, work: Work[T], deadline: float | None = None) -> T:
        """Run `work` as a read, with one retry on a lost connection."""
        # A read is idempotent: if its connection turns out to be dead (the server restarted
        # since it was pooled), one more try on a fresh connection is safe.
        try:
            with self.connection(_wait(deadline)) as conn:
                return work(conn)
        except _ConnectionLost:
            log.warning("connection lost during a read; retrying once")
            with self.connection(_wait(deadline)) as conn:
                return work(conn)

    def write(self, work: Work[T], deadline: float | None = None) -> T:
        """Run `work` as a write: never retried, as the first attempt may have committed."""
        with self.connection(_wait(deadline)) as conn:
            return work(conn)

    def _checkout(self, timeout: float | None) -> AbstractContextManager[Any]:
        if tracing.enabled and tracing.in_request():
            return _traced_checkout(self._pool, timeout)
        return self._pool.connection(timeout=timeout)

    def stats(self) -> dict[str, int]:
        return self._pool.get_stats()

    def refuses_connections(self) -> bool:
        """True when the pool has no idle connection, has not been able to connect (never yet,
        or its last attempt failed, or it holds none), and a fresh attempt fails: the server is
        down or refusing, and waiting for the pool would only run its timeout out. Costs a
        connection attempt only in that state, never while the pool is healthy."""
        stats = self._pool.get_stats()
        if stats.get("pool_available", 0):
            return False
        events = self._events
        doubtful = events is None or not events.connected_once or events.failing
        if not doubtful and stats.get("pool_size", 0):
            return False
        try:
            psycopg.connect(self._pool.conninfo, connect_timeout=REFUSED_CONNECT_TIMEOUT).close()
        except psycopg.OperationalError:
            return True
        return False

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[StatementConnection]:
        """A pooled connection, waiting at most `timeout` (None: the pool's timeout)."""
        conn = None
        try:
            with self._checkout(timeout) as conn:
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


@contextmanager
def _traced_checkout(pool: ConnectionPool, timeout: float | None) -> Iterator[Any]:
    """pool.connection() with its wait in a span of its own: getconn, the connection's
    transaction context, putconn, as psycopg_pool's connection() does them."""
    with tracing.pool_wait(pool.name):
        conn = pool.getconn(timeout=timeout)
    try:
        with conn:
            yield conn
    finally:
        pool.putconn(conn)


def _wait(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.001, deadline - time.monotonic())


def _constraint_message(exc: psycopg.Error) -> str:
    # The constraint's name says which rule was broken without quoting any SQL or data.
    name = exc.diag.constraint_name
    return f"violates {name}" if name else "value out of range for its column"


@contextmanager
def direct(database_url: str, options: dict[str, object]) -> Iterator[Database]:
    """A Database for a command (the CLI, the embedded default's key) rather than a server: a
    fresh connection for each statement, closed after it (psycopg_pool's NullConnectionPool)."""
    pool = NullConnectionPool(
        database_url,
        connection_class=StatementConnection,
        kwargs=options,
        timeout=DIRECT_TIMEOUT,
        open=False,
    )
    pool.open(wait=False)
    try:
        yield Database(pool)
    finally:
        pool.close()
