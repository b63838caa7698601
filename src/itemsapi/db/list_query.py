"""The list's query: what GET /items asks (ListQuery), and its keyset-paged SELECT, built with
psycopg.sql as pure functions (no connection); the filters' conditions are filters.py's.

Each sort order walks a (key, id) keyset with a matching index in sql/init.sql, except relevance,
which ranks the search's matches (served by the search index) and pages through them by
(rank, id): every page costs what ranking the matches does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg import sql

from itemsapi.db import filters
from itemsapi.db.filters import Filters
from itemsapi.db.statements import select_columns

SORT_KEYS: dict[str, sql.Composable] = {
    "id": sql.SQL("id"),
    "name": sql.SQL("name"),
    "price": sql.SQL("COALESCE(price, -1)"),
    "created_at": sql.SQL("created_at"),
    "updated_at": sql.SQL("updated_at"),
    "relevance": filters.RANK,  # only with a search
}
RELEVANCE = "relevance"
COUNTS = ("exact", "planned", "estimated")

SortKey = tuple[Any, int]  # (value of the sort column, id) of the last row of a page


@dataclass(frozen=True)
class ListQuery:
    limit: int = 20
    sort: str = "id"
    descending: bool = False
    after: SortKey | None = None
    filters: Filters = field(default_factory=Filters)
    count: str | None = None  # one of COUNTS: a total is asked for (Prefer: count=...)


def list_shape(query: ListQuery) -> tuple[str, bool, bool, tuple[str, ...]]:
    """What the statement's text depends on (the values do not): few combinations, cached."""
    return (query.sort, query.descending, query.after is not None, query.filters.shape())


def list_sql(
    sort: str, descending: bool, after: bool, shape: tuple[str, ...], *, measured: bool = False
) -> sql.Composed:
    """`measured` adds attributes_bytes, and with the relevance sort the rank as `rank`."""
    key = SORT_KEYS[sort]
    keyset: list[sql.Composable] = []
    if after:
        op = sql.SQL("<" if descending else ">")
        if sort == "id":
            keyset.append(sql.SQL("id {} %(after_id)s").format(op))
        else:
            # A rank is a real: the cursor's decimal text of it is read back as one.
            after_key = sql.SQL("%(after_key)s::real" if sort == RELEVANCE else "%(after_key)s")
            keyset.append(sql.SQL("({}, id) {} ({}, %(after_id)s)").format(key, op, after_key))
    columns = select_columns(measured=measured)
    if measured and sort == RELEVANCE:
        columns = sql.SQL("{}, {} AS rank").format(columns, key)
    source: sql.Composable = sql.SQL("items")
    if "search" in shape:
        # The matches are found through the search index, always: the planner cannot tell how
        # many a search matches (its words are a parameter), and guessing many it would walk a
        # sort's index instead, which reads the whole index for a rare word. OFFSET 0 keeps the
        # subquery as written.
        source = sql.SQL("(SELECT * FROM items WHERE {} OFFSET 0) AS items").format(
            filters.CONDITIONS["search"]
        )
        shape = tuple(name for name in shape if name != "search")
    statement = sql.SQL("SELECT {columns} FROM {source}{where} ORDER BY {order} LIMIT %(limit)s")
    return statement.format(
        columns=columns, source=source, where=filters.where(shape, *keyset),
        order=list_order(sort, descending),
    )  # fmt: skip


def list_order(sort: str, descending: bool, *, ranked: bool = False) -> sql.Composable:
    """The ORDER BY of a sort: its key, then id, both in its direction. `ranked`: over rows
    that carry the rank as a column (list_sql's measured ones)."""
    direction = sql.SQL("DESC" if descending else "ASC")
    order = [sql.SQL("id {}").format(direction)]
    if sort != "id":
        key = sql.SQL("rank") if ranked and sort == RELEVANCE else SORT_KEYS[sort]
        order.insert(0, sql.SQL("{} {}").format(key, direction))
    return sql.SQL(", ").join(order)


def list_params(query: ListQuery) -> dict[str, Any]:
    """The values for list_sql's placeholders: exactly the ones its shape names."""
    params = filters.params(query.filters)
    params["limit"] = query.limit + 1  # one extra row says "there is more"
    if query.after is not None:
        if query.sort != "id":
            params["after_key"] = query.after[0]
        params["after_id"] = query.after[1]
    return params


def sort_key(row: dict[str, Any], sort: str) -> SortKey:
    """The keyset position of a row for a sort order, in the types the database compares."""
    if sort == "id":
        return (row["id"], row["id"])
    if sort == "price":
        price = row["price"]
        return (Decimal(-1) if price is None else Decimal(repr(price)), row["id"])
    if sort == RELEVANCE:
        return (row["rank"], row["id"])
    return (row[sort], row["id"])
