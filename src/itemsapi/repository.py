"""The only door to the database: every SQL statement the service runs is in this module.

Statements are built with psycopg.sql over an allow-list of columns; values always travel as
query parameters. The builders are pure functions (tested without a database); ItemRepository
runs them on a connection pool and turns driver errors into the domain errors of exceptions.py.
Nothing here knows about HTTP.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg import errors, pq, sql
from psycopg.adapt import PyFormat, Transformer
from psycopg.postgres import types as postgres_types
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from itemsapi.exceptions import (
    Conflict,
    ConstraintViolation,
    DatabaseUnavailable,
    ItemNotFound,
    PreconditionFailed,
    QueryTimeout,
    SchemaMissing,
)

log = logging.getLogger(__name__)

WRITABLE_COLUMNS = ("name", "description", "price", "quantity", "attributes")

# price is numeric(10,2); float8 holds every such value exactly enough to round-trip its
# decimal text, and spares building a Decimal per row.
_SELECT_COLUMNS = sql.SQL(
    "id, name, description, price::float8 AS price, quantity, attributes, version, "
    "created_at, updated_at"
)

# The keyset each sort order walks; each has a matching (key, id) index in sql/init.sql.
SORT_KEYS: dict[str, sql.Composable] = {
    "id": sql.SQL("id"),
    "name": sql.SQL("name"),
    "price": sql.SQL("COALESCE(price, -1)"),
    "created_at": sql.SQL("created_at"),
    "updated_at": sql.SQL("updated_at"),
}

Row = dict[str, Any]
SortKey = tuple[Any, int]  # (value of the sort column, id) of the last row of a page


@dataclass(frozen=True)
class ListQuery:
    limit: int = 20
    sort: str = "id"
    descending: bool = False
    after: SortKey | None = None
    q: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None


@dataclass(frozen=True)
class Page:
    items: list[Row]
    next_key: SortKey | None


# --- statement builders (pure) -----------------------------------------------------------


def _where_id(check_version: bool) -> sql.Composable:
    if check_version:
        return sql.SQL("id = %(id)s AND version = ANY(%(versions)s)")
    return sql.SQL("id = %(id)s")


def select_statement(*, check_version: bool = False) -> sql.Composed:
    return sql.SQL("SELECT {columns} FROM items WHERE {where}").format(
        columns=_SELECT_COLUMNS, where=_where_id(check_version)
    )


def insert_statement() -> sql.Composed:
    return sql.SQL("INSERT INTO items ({columns}) VALUES ({values}) RETURNING {returning}").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, WRITABLE_COLUMNS)),
        values=sql.SQL(", ").join(map(sql.Placeholder, WRITABLE_COLUMNS)),
        returning=_SELECT_COLUMNS,
    )


def update_statement(
    columns: Sequence[str], *, merge_attributes: bool = False, check_version: bool = False
) -> sql.Composed:
    """UPDATE the given columns (from the allow-list), bump version and updated_at, RETURNING
    the row. With merge_attributes, `attributes` is merged as RFC 7396 says instead of
    replaced. An empty change set writes nothing: it becomes the matching SELECT."""
    unknown = [c for c in columns if c not in WRITABLE_COLUMNS]
    if unknown:
        raise ValueError(f"not writable columns: {unknown}")
    if not columns:
        return select_statement(check_version=check_version)
    assignments = [_assignment(c, merge_attributes) for c in columns]
    assignments.append(sql.SQL("version = version + 1"))
    assignments.append(sql.SQL("updated_at = now()"))
    return sql.SQL("UPDATE items SET {assignments} WHERE {where} RETURNING {returning}").format(
        assignments=sql.SQL(", ").join(assignments),
        where=_where_id(check_version),
        returning=_SELECT_COLUMNS,
    )


def _assignment(column: str, merge_attributes: bool) -> sql.Composed:
    if column == "attributes" and merge_attributes:
        return sql.SQL("attributes = jsonb_merge_patch(attributes, {})").format(
            sql.Placeholder("attributes")
        )
    return sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))


def delete_statement(*, check_version: bool = False) -> sql.Composed:
    return sql.SQL("DELETE FROM items WHERE {where} RETURNING id").format(
        where=_where_id(check_version)
    )


def list_statement(query: ListQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """A keyset-paginated SELECT: filters, then rows after query.after in sort order."""
    key = SORT_KEYS[query.sort]
    params: dict[str, Any] = {"limit": query.limit + 1}  # one extra row says "there is more"
    conditions: list[sql.Composable] = []
    if query.q is not None:
        conditions.append(sql.SQL("name ILIKE %(q)s"))
        params["q"] = "%" + escape_like(query.q) + "%"
    if query.min_price is not None:
        conditions.append(sql.SQL("price >= %(min_price)s"))
        params["min_price"] = query.min_price
    if query.max_price is not None:
        conditions.append(sql.SQL("price <= %(max_price)s"))
        params["max_price"] = query.max_price
    if query.after is not None:
        op = sql.SQL("<" if query.descending else ">")
        if query.sort == "id":
            conditions.append(sql.SQL("id {} %(after_id)s").format(op))
        else:
            conditions.append(sql.SQL("({}, id) {} (%(after_key)s, %(after_id)s)").format(key, op))
            params["after_key"] = query.after[0]
        params["after_id"] = query.after[1]
    direction = sql.SQL("DESC" if query.descending else "ASC")
    order = [sql.SQL("id {}").format(direction)]
    if query.sort != "id":
        order.insert(0, sql.SQL("{} {}").format(key, direction))
    statement = sql.SQL("SELECT {columns} FROM items{where} ORDER BY {order} LIMIT %(limit)s")
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return (
        statement.format(columns=_SELECT_COLUMNS, where=where, order=sql.SQL(", ").join(order)),
        params,
    )


def escape_like(text: str) -> str:
    """Make LIKE wildcards in user text match literally (backslash is LIKE's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sort_key(row: Row, sort: str) -> SortKey:
    """The keyset position of a row for a sort order, in the types the database compares."""
    if sort == "id":
        return (row["id"], row["id"])
    if sort == "price":
        price = row["price"]
        return (Decimal(-1) if price is None else Decimal(repr(price)), row["id"])
    return (row[sort], row["id"])


@cache
def _text(build: Callable[..., sql.Composed], *args: Any, **kwargs: Any) -> str:
    """A statement's SQL text, composed with psycopg.sql once per shape and then reused: quoting
    every identifier again on each request costs more than the cache lookup. Shapes are few:
    PATCH columns always come in WRITABLE_COLUMNS order."""
    return build(*args, **kwargs).as_string()


# --- running statements -------------------------------------------------------------------


class _OneCallStatement:
    """A statement run with one libpq call (PQexecPrepared) instead of through a cursor.

    A psycopg cursor builds its machinery per execute and talks to libpq in three calls (send,
    wait, read), each letting go of the GIL: on one thread that overhead is as large as the
    libpq call itself, and with a worker's threads contending for the GIL it is larger. For
    GET, POST and PATCH this path took 1-25% less CPU per request in all 22 side-by-side
    rounds, and a list page 3% less on average (README, Performance), so every statement an
    item route runs goes this way. Each statement shape is prepared on each connection the
    first time it runs there, with its parameter types declared (the type of a keyset
    position is left for the server to infer from the sort column it is compared with); values
    are dumped to text and rows loaded by psycopg's own adapters (the connection's), and errors
    are the exceptions psycopg raises on the cursor path."""

    def __init__(self, name: str, text: str, params: Sequence[str]) -> None:
        for number, param in enumerate(params, 1):  # %(id)s -> $1, as PREPARE wants
            text = text.replace(f"%({param})s", f"${number}")
        if "%(" in text:
            raise ValueError(f"a parameter of {text!r} is not among {params}")
        self._name = name.encode()
        self._text = text.encode()
        self._params = tuple(params)
        self._types = [_PARAMETER_TYPES[param] for param in params]
        self._prepared_on: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()

    def run(self, conn: psycopg.Connection, params: Mapping[str, Any]) -> list[Row]:
        """Run with the named parameters the statement's placeholders name; rows as dicts."""
        values = [params[param] for param in self._params]
        adapters = Transformer(conn)
        dumped = adapters.dump_sequence(values, [PyFormat.TEXT] * len(values))
        result = self._execute(conn, dumped)
        if result.status == pq.ExecStatus.FATAL_ERROR and _sqlstate(result) == "26000":
            # Someone deallocated it on this session (DISCARD ALL, a pooler): prepare again,
            # once; a session that keeps losing it gets the error.
            self._prepared_on.discard(conn)
            result = self._execute(conn, dumped)
        self._check(conn, result)
        adapters.set_pgresult(result)
        names = [result.fname(i).decode() for i in range(result.nfields)]

        def make_row(values: Sequence[Any]) -> Row:
            return dict(zip(names, values, strict=True))

        return adapters.load_rows(0, result.ntuples, make_row)

    def _execute(self, conn: psycopg.Connection, dumped: Sequence[Any]) -> pq.abc.PGresult:
        if conn not in self._prepared_on:
            self._check(conn, conn.pgconn.prepare(self._name, self._text, self._types))
            self._prepared_on.add(conn)
        return conn.pgconn.exec_prepared(self._name, dumped)

    @staticmethod
    def _check(conn: psycopg.Connection, result: pq.abc.PGresult) -> None:
        if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            return
        if conn.closed:  # the connection broke under the statement
            raise psycopg.OperationalError(result.get_error_message(conn.info.encoding))
        raise errors.error_from_result(result, encoding=conn.info.encoding)


def _sqlstate(result: pq.abc.PGresult) -> str:
    return (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()


def _oid(type_name: str) -> int:
    return postgres_types[type_name].oid


# The types of the statements' parameters, declared when they are prepared (pg_type oids)
_PARAMETER_TYPES = {
    "id": _oid("int8"), "name": _oid("text"), "description": _oid("text"),
    "price": _oid("numeric"), "quantity": _oid("int4"), "attributes": _oid("jsonb"),
    "versions": postgres_types["int8"].array_oid,
    "q": _oid("text"), "min_price": _oid("numeric"), "max_price": _oid("numeric"),
    "after_id": _oid("int8"), "limit": _oid("int8"),
    "after_key": 0,  # the sort column's type: left for the server to infer
}  # fmt: skip
_statement_numbers = itertools.count(1)


@cache
def _one_call(text: str, params: tuple[str, ...]) -> _OneCallStatement:
    """The _OneCallStatement of a statement shape (shapes are few, see _text), named once."""
    return _OneCallStatement(f"itemsapi_{next(_statement_numbers)}", text, params)


T = TypeVar("T")


class _ConnectionLost(DatabaseUnavailable):
    """The connection broke under a statement; safe to retry only for reads."""


class ItemRepository:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def create(self, values: Mapping[str, Any]) -> Row:
        params = _with_jsonb(values)
        statement = _one_call(_text(insert_statement), WRITABLE_COLUMNS)
        return self._write(lambda conn: statement.run(conn, params)[0])

    def get(self, item_id: int) -> Row:
        def fetch(conn: psycopg.Connection) -> Row:
            rows = _one_call(_text(select_statement), ("id",)).run(conn, {"id": item_id})
            if not rows:
                raise ItemNotFound(item_id)
            return rows[0]

        return self._read(fetch)

    def list(self, query: ListQuery) -> Page:
        statement, params = list_statement(query)
        one_call = _one_call(statement.as_string(), tuple(params))
        rows = self._read(lambda conn: one_call.run(conn, params))
        if len(rows) <= query.limit:
            return Page(rows, None)
        rows = rows[: query.limit]
        return Page(rows, sort_key(rows[-1], query.sort))

    def replace(self, item_id: int, values: Mapping[str, Any], versions: list[int] | None) -> Row:
        statement = _text(update_statement, WRITABLE_COLUMNS, check_version=versions is not None)
        return self._change(item_id, statement, values, versions)

    def patch(self, item_id: int, changes: Mapping[str, Any], versions: list[int] | None) -> Row:
        # validate_patch yields columns in WRITABLE_COLUMNS order, so shapes repeat; a column
        # outside the allow-list still makes update_statement raise.
        statement = _text(
            update_statement, tuple(changes), merge_attributes=True,
            check_version=versions is not None,
        )  # fmt: skip
        return self._change(item_id, statement, changes, versions)

    def delete(self, item_id: int, versions: list[int] | None) -> None:
        statement = _text(delete_statement, check_version=versions is not None)
        self._change(item_id, statement, {}, versions)

    def ping(self, timeout: float) -> None:
        """One round trip on a pooled connection, waiting at most `timeout` for the pool, that
        also asks whether the schema is in place: without it every item request would fail."""
        with self._connection(timeout) as conn:
            row = conn.execute(_PING).fetchone()
        if not row["in_place"]:
            raise SchemaMissing()

    def _change(
        self,
        item_id: int,
        statement: str,
        values: Mapping[str, Any],
        versions: list[int] | None,
    ) -> Row:
        params = {**_with_jsonb(values), "id": item_id}
        if versions is not None:
            params["versions"] = versions
        one_call = _one_call(statement, tuple(params))

        def run(conn: psycopg.Connection) -> Row:
            rows = one_call.run(conn, params)
            if rows:
                return rows[0]
            # Nothing matched: tell a missing item from a stale If-Match.
            current = conn.execute("SELECT version FROM items WHERE id = %s", (item_id,))
            found = current.fetchone()
            if found is None:
                raise ItemNotFound(item_id)
            raise PreconditionFailed(item_id, found["version"])

        return self._write(run)

    def _read(self, work: Callable[[psycopg.Connection], T]) -> T:
        # A read is idempotent: if its connection turns out to be dead (the server restarted
        # since it was pooled), one more try on a fresh connection is safe.
        try:
            with self._connection() as conn:
                return work(conn)
        except _ConnectionLost:
            log.warning("connection lost during a read; retrying once")
            with self._connection() as conn:
                return work(conn)

    def _write(self, work: Callable[[psycopg.Connection], T]) -> T:
        # Writes are never retried: the first attempt may have committed.
        with self._connection() as conn:
            return work(conn)

    @contextmanager
    def _connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        conn = None
        try:
            with self._pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable("no database connection available", "pool_timeout") from exc
        except errors.QueryCanceled as exc:
            raise QueryTimeout("statement timed out") from exc
        except (errors.UndefinedTable, errors.UndefinedColumn, errors.UndefinedFunction) as exc:
            # The statements are fixed: an object they name is missing only when the database
            # lacks sql/init.sql (or has an older one). The server's words go to the log only.
            raise SchemaMissing(exc.diag.message_primary) from exc
        except errors.UniqueViolation as exc:
            raise Conflict(exc.diag.message_primary or "conflict") from exc
        except (errors.IntegrityError, errors.DataError) as exc:
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


# --- the server as a whole ----------------------------------------------------------------

# What the item statements need from sql/init.sql (the trigram index is optional).
_SCHEMA_IN_PLACE = sql.SQL(
    "to_regclass('items') IS NOT NULL"
    " AND to_regprocedure('jsonb_merge_patch(jsonb, jsonb)') IS NOT NULL"
)
_PING = sql.SQL("SELECT {} AS in_place").format(_SCHEMA_IN_PLACE)
_SERVER_FACTS = sql.SQL(
    "SELECT current_setting('max_connections')::int"
    " - current_setting('superuser_reserved_connections')::int, {}"
).format(_SCHEMA_IN_PLACE)


@dataclass(frozen=True)
class ServerFacts:
    connections_allowed: int  # max_connections less the connections reserved for superusers
    schema_in_place: bool


def inspect_server(database_url: str) -> ServerFacts:
    """What `itemsapi serve` checks once before it starts, on a connection of its own."""
    try:
        with psycopg.connect(database_url, connect_timeout=3, autocommit=True) as conn:
            allowed, in_place = conn.execute(_SERVER_FACTS).fetchone()
    except psycopg.Error as exc:
        raise DatabaseUnavailable(str(exc).strip()) from exc
    return ServerFacts(connections_allowed=allowed, schema_in_place=in_place)


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
