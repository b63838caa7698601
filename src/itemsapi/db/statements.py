"""Every SQL statement on items, built with psycopg.sql: pure functions, no connection.

Identifiers come only from the allow-lists below; values always travel as query parameters.
ItemRepository (items.py) runs what these return; tests check them without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from psycopg import sql

# The columns a client may write, in the order every statement names them. PATCH shapes follow
# this order too, so the few shapes there are repeat (and their text is cached, see `text`).
WRITABLE_COLUMNS = ("name", "description", "price", "quantity", "attributes")
# Each writable column's type, for statements that must name it (the table's own types).
COLUMN_TYPES = {
    "name": "text", "description": "text", "price": "numeric", "quantity": "integer",
    "attributes": "jsonb",
}  # fmt: skip
# Who writes, set for the one statement (no round trip) for the change log's trigger to record
# (sql/migrations/0010): the API's principal, '' for none.
ATTRIBUTED = sql.SQL("set_config('itemsapi.principal', %(by)s, true) IS NOT NULL")

# price is numeric(10,2); float8 holds every such value exactly enough to round-trip its
# decimal text, and spares building a Decimal per row.
_SELECT_COLUMNS = sql.SQL(
    "id, name, description, price::float8 AS price, quantity, attributes, version, "
    "created_at, updated_at"
)

# With the stored length of attributes (sql/migrations/0008), for sized.py's budgets.
_MEASURED_COLUMNS = sql.SQL("{}, attributes_bytes").format(_SELECT_COLUMNS)


def select_columns(*, measured: bool = False) -> sql.Composable:
    """The columns every statement returns an item as; `measured` adds attributes_bytes."""
    return _MEASURED_COLUMNS if measured else _SELECT_COLUMNS


def _where_id(check_version: bool) -> sql.Composable:
    if check_version:
        return sql.SQL("id = %(id)s AND version = ANY(%(versions)s)")
    return sql.SQL("id = %(id)s")


def select_statement(*, check_version: bool = False) -> sql.Composed:
    return sql.SQL("SELECT {columns} FROM items WHERE {where}").format(
        columns=_SELECT_COLUMNS, where=_where_id(check_version)
    )


def recent_statement(*, measured: bool = False) -> sql.Composed:
    """The items changed last (items_updated_at_id_idx, read backwards): what primes a cache.
    `measured` adds attributes_bytes."""
    return sql.SQL(
        "SELECT {columns} FROM items ORDER BY updated_at DESC, id DESC LIMIT %(limit)s"
    ).format(columns=_MEASURED_COLUMNS if measured else _SELECT_COLUMNS)


def version_statement() -> sql.Composed:
    """The current version of one item: tells a missing item from a stale If-Match."""
    return sql.SQL("SELECT version FROM items WHERE {where}").format(where=_where_id(False))


def insert_statement() -> sql.Composed:
    """A SELECT rather than VALUES, to carry ATTRIBUTED: so each value is cast to its type."""
    values = [sql.SQL("{}::{}").format(sql.Placeholder(c), sql.SQL(COLUMN_TYPES[c]))
              for c in WRITABLE_COLUMNS]  # fmt: skip
    return sql.SQL(
        "INSERT INTO items ({columns}) SELECT {values} WHERE {by} RETURNING {returning}"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, WRITABLE_COLUMNS)),
        values=sql.SQL(", ").join(values), by=ATTRIBUTED, returning=_SELECT_COLUMNS,
    )  # fmt: skip


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
    return sql.SQL(
        "UPDATE items SET {assignments} WHERE {where} AND {by} RETURNING {returning}"
    ).format(
        assignments=sql.SQL(", ").join(assignments), where=_where_id(check_version), by=ATTRIBUTED,
        returning=_SELECT_COLUMNS,
    )  # fmt: skip


def _assignment(column: str, merge_attributes: bool) -> sql.Composed:
    if column == "attributes" and merge_attributes:
        return sql.SQL("attributes = jsonb_merge_patch(attributes, {})").format(
            sql.Placeholder("attributes")
        )
    return sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))


def delete_statement(*, check_version: bool = False) -> sql.Composed:
    return sql.SQL("DELETE FROM items WHERE {where} AND {by} RETURNING id").format(
        where=_where_id(check_version), by=ATTRIBUTED
    )


def notify_statement() -> sql.SQL:
    """Send a notification (delivered to listeners when it commits: at once, in autocommit)."""
    return sql.SQL("SELECT pg_notify(%(channel)s, %(payload)s)")


def announce_statement() -> sql.SQL:
    """Tell the read caches which items committed writes changed (sql/migrations/0004)."""
    return sql.SQL("SELECT itemsapi_announce_items(%(ids)s::bigint[], %(origin)s)")


@cache
def text(build: Any, *args: Any, **kwargs: Any) -> str:
    """A statement's SQL text, composed once per shape and reused. Passing the text instead of
    the Composed object spares psycopg quoting every identifier again on each execute, and
    keeps the text identical, so its prepared-statement cache recognises the shape."""
    return build(*args, **kwargs).as_string()
