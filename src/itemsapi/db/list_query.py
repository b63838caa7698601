"""The list's query: what GET /items asks (ListQuery), and its keyset-paged SELECT, built with
psycopg.sql as pure functions (no connection); the filters' conditions are filters.py's.

Each sort order walks a (key, id) keyset with a matching index in sql/init.sql, except relevance,
which ranks the search's matches (served by the search index) and pages through them by
(rank, id): every page costs what ranking the matches does. A time range sorted by another key
reads bounded stretches of the range's and the sort's indexes first (walk_first_sql).
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
# The filters that bound a timestamp, by the column they bound.
TIME_RANGES = {
    "created_at": ("created_from", "created_before"),
    "updated_at": ("updated_from", "updated_before"),
}
# The sort keys that rise together as rows are created (and mostly updated) over time.
RISING = ("id", "created_at", "updated_at")
RISING_COLUMNS = sql.SQL(", ").join(map(sql.SQL, RISING))  # what walk_first_sql sorts by
# A page of a time range sorted by another key (walk_first_sql): the most matches its first
# step reads, the most entries of the sort's index its second walks, and the most matches of a
# range read whole and sorted.
FEW = 100
WALK = 2000
RANGE_READ = 50_000
COUNTS = ("exact", "planned", "estimated")
ID_BOUND = 2**63 - 1  # above every id (a bigint)

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


def time_range(sort: str, shape: tuple[str, ...]) -> str | None:
    """The column of a time range that walk_first_sql finds a page of this shape by: a range on
    one of the keys that rise with the ids, sorted by another of them; None otherwise, and with
    a search or ids, whose own indexes always serve them. A name or a price does not rise with
    time, so the planner's even spread holds for them: its walk of their index finds a page
    sooner than reading the range would."""
    if "search" in shape or "ids" in shape or sort not in RISING:
        return None
    for column, names in TIME_RANGES.items():
        if column != sort and any(name in shape for name in names):
            return column
    return None


def pins_price(sort: str, shape: tuple[str, ...]) -> bool:
    """Sorted by price among items without one: every key is -1, and the filter's equality on the
    index's first column hides the row comparison's bound from the index scan, which would then
    read every earlier match of the walk on each page. A plain `id` bound beside it, from the
    cursor (pinned_after_id), starts the scan at the page."""
    return sort == "price" and "has_price=False" in shape


def list_sql(
    sort: str,
    descending: bool,
    after: bool,
    shape: tuple[str, ...],
    *,
    measured: bool = False,
    one_page: bool = True,
) -> sql.Composed:
    """`measured` adds attributes_bytes, and with the relevance sort the rank as `rank`.
    `one_page=False`: the statement for every page at once (an export, LIMIT NULL)."""
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
            if pins_price(sort, shape):
                keyset.append(sql.SQL("id {} %(pinned_after_id)s").format(op))
    columns = select_columns(measured=measured)
    ranged = time_range(sort, shape)
    if one_page and ranged:
        return walk_first_sql(columns, shape, keyset, list_order(sort, descending), ranged)
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


def walk_first_sql(
    columns: sql.Composable,
    shape: tuple[str, ...],
    keyset: list[sql.Composable],
    order: sql.Composable,
    range_column: str,
) -> sql.Composed:
    """A page of a time range sorted by another of the RISING keys. Rows are created, and
    mostly updated, in the order of their ids, so a range's matches lie together somewhere along
    the other keys' indexes; the planner, which takes them to be spread evenly, would walk that
    index from its start, passing every row before them. So the page is looked for in bounded
    steps, each read only when the ones before it did not find it:
    1. `few`: at most %(few)s matches, through the range's own index. Fewer than that are all
       the matches, so their first rows in the sort's order are the page.
    2. `walked`: the first %(walk)s entries of the sort's index past the cursor. The matches
       among them, when they fill the page, are the first in the sort's order: the page.
    3. A range of fewer than %(range_read)s rows (`small`, counted in its index): every match's
       sort key, read through that index (its entries alone, an index-only scan, when the key
       is id and no other filter needs the row), sorted; then the page's rows, fetched by id.
       (Counting and reading are two scans of the index: keeping the keys of the first for the
       second, in a materialized CTE, cost more than scanning again.)
    4. A larger one: the planner's own plan, as without these steps.
    So a page costs at most two short reads and the range's keys more than the planner's plan
    would, and instead of that plan, when the sort's walk fails, the range's keys while there
    are few enough to read whole."""
    bounds = [filters.CONDITIONS[name] for name in TIME_RANGES[range_column] if name in shape]
    return sql.SQL(
        "WITH few AS MATERIALIZED ("
        "SELECT {columns} FROM (SELECT * FROM items{where_all} ORDER BY {range_column}"
        " LIMIT %(few)s) AS items),"
        " walked AS MATERIALIZED ("
        "SELECT {columns} FROM (SELECT * FROM items{keyset} ORDER BY {order} LIMIT %(walk)s)"
        " AS items{where} ORDER BY {order} LIMIT %(limit)s),"
        " small AS MATERIALIZED ("
        "SELECT count(*) < %(range_read)s AS yes"
        " FROM (SELECT 1 FROM items{bounds} LIMIT %(range_read)s) AS counted)"
        " SELECT * FROM ("
        "SELECT * FROM (SELECT * FROM few ORDER BY {order} LIMIT %(limit)s) AS found"
        " WHERE (SELECT count(*) FROM few) < %(few)s"
        " UNION ALL"
        " SELECT * FROM walked"
        " WHERE (SELECT count(*) FROM few) >= %(few)s"
        " AND (SELECT count(*) FROM walked) >= %(limit)s"
        " UNION ALL"
        " SELECT * FROM ("
        "SELECT {columns} FROM items WHERE id = ANY(ARRAY("
        "SELECT id FROM (SELECT {keys} FROM items{where_all} OFFSET 0) AS items"
        " ORDER BY {order} LIMIT %(limit)s))) AS ranged"
        " WHERE (SELECT count(*) FROM few) >= %(few)s"
        " AND (SELECT count(*) FROM walked) < %(limit)s AND (SELECT yes FROM small)"
        " UNION ALL"
        " SELECT * FROM ("
        "SELECT {columns} FROM items{where_all} ORDER BY {order} LIMIT %(limit)s) AS planned"
        " WHERE (SELECT count(*) FROM few) >= %(few)s"
        " AND (SELECT count(*) FROM walked) < %(limit)s AND NOT (SELECT yes FROM small)"
        ") AS page ORDER BY {order}"
    ).format(
        columns=columns, keyset=filters.where((), *keyset), order=order,
        where=filters.where(shape), where_all=filters.where(shape, *keyset),
        range_column=sql.Identifier(range_column), bounds=filters.where((), *bounds),
        keys=RISING_COLUMNS,
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
    shape = query.filters.shape()
    if time_range(query.sort, shape):
        params |= {"few": FEW, "walk": WALK, "range_read": RANGE_READ}
    if query.after is not None:
        if query.sort != "id":
            params["after_key"] = query.after[0]
        params["after_id"] = query.after[1]
        if pins_price(query.sort, shape):
            # The id bound is the row comparison's own when the cursor's key is -1 (a page of
            # these items); after any other key it must let every row through to it.
            unbounded = ID_BOUND if query.descending else 0
            params["pinned_after_id"] = query.after[1] if query.after[0] == -1 else unbounded
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
