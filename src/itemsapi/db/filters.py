"""The list's filters and full-text search as SQL: pure builders over an allow-list, no connection.

Each filter is one condition on an indexed expression, so that every filter can be served by an
index (docs/performance.md, "Filters at a million rows"): the price bounds are written on the
expression items_price_id_idx holds (a price is never negative, so a missing one, -1 there,
falls below every bound), attributes containment on items_attributes_idx (jsonb_path_ops), the
quantity bounds on items_quantity_id_idx, the search on items_search_idx (sql/migrations/0009).
Values always travel as parameters; only which filters are present shapes the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import sql

# The text search configuration is the database's (search_settings, sql/migrations/0009): the
# one the stored vectors were made with, so a query is parsed as the vectors were. The tsquery is
# a subquery, made once per statement: as an expression of a subquery's result it would be
# parsed again for every row the plan filters or ranks.
SEARCH_QUERY = sql.SQL(
    "(SELECT websearch_to_tsquery(config::regconfig, %(search)s) FROM search_settings)"
)
RANK = sql.SQL("ts_rank(search_vector, {})").format(SEARCH_QUERY)

# Condition of each filter, by the Filters field that holds its value.
CONDITIONS: dict[str, sql.Composable] = {
    "ids": sql.SQL("id = ANY(%(ids)s::bigint[])"),
    "q": sql.SQL("name ILIKE %(q)s"),
    "min_price": sql.SQL("COALESCE(price, -1) >= %(min_price)s"),
    "max_price": sql.SQL("COALESCE(price, -1) BETWEEN 0 AND %(max_price)s"),
    "min_quantity": sql.SQL("quantity >= %(min_quantity)s"),
    "max_quantity": sql.SQL("quantity <= %(max_quantity)s"),
    "created_from": sql.SQL("created_at >= %(created_from)s"),
    "created_before": sql.SQL("created_at < %(created_before)s"),
    "updated_from": sql.SQL("updated_at >= %(updated_from)s"),
    "updated_before": sql.SQL("updated_at < %(updated_before)s"),
    "attributes": sql.SQL("attributes @> %(attributes)s::jsonb"),
    "search": sql.SQL("search_vector @@ {}").format(SEARCH_QUERY),
}
# has_price is a choice of two conditions, not a value: each is its own shape.
HAS_PRICE = {
    True: sql.SQL("COALESCE(price, -1) >= 0"),
    False: sql.SQL("COALESCE(price, -1) = -1"),
}


@dataclass(frozen=True)
class Filters:
    """What a list asks of its rows; None: no such filter. Hashable: a read cache key."""

    ids: tuple[int, ...] | None = None
    q: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    has_price: bool | None = None
    min_quantity: int | None = None
    max_quantity: int | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    updated_from: datetime | None = None
    updated_before: datetime | None = None
    attributes: str | None = None  # a JSON object as text: what the item's must contain
    search: str | None = None  # web search syntax (websearch_to_tsquery)

    def shape(self) -> tuple[str, ...]:
        """Which filters are present (has_price by its value): all the SQL text depends on."""
        present = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            present.append(f"has_price={value}" if field.name == "has_price" else field.name)
        return tuple(present)

    def given(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


def conditions(shape: tuple[str, ...]) -> list[sql.Composable]:
    """The conditions of a shape (Filters.shape), ANDed by the caller; a name outside the
    allow-list raises."""
    found: list[sql.Composable] = []
    for name in shape:
        if name.startswith("has_price="):
            found.append(HAS_PRICE[name == "has_price=True"])
        elif name in CONDITIONS:
            found.append(CONDITIONS[name])
        else:
            raise ValueError(f"not a filter: {name!r}")
    return found


def params(filters: Filters) -> dict[str, Any]:
    """The values for the placeholders the shape's conditions name."""
    values = filters.given()
    values.pop("has_price", None)
    if "ids" in values:
        values["ids"] = list(values["ids"])
    if "q" in values:
        values["q"] = "%" + escape_like(values["q"]) + "%"
    return values


def escape_like(text: str) -> str:
    """Make LIKE wildcards in user text match literally (backslash is LIKE's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(shape: tuple[str, ...], *more: sql.Composable) -> sql.Composable:
    """` WHERE a AND b ...` of a shape's conditions and `more`; empty without any."""
    found = [*conditions(shape), *more]
    if not found:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(found)


def count_sql(shape: tuple[str, ...]) -> sql.Composed:
    """How many rows match the filters (every page of them)."""
    return sql.SQL("SELECT count(*) AS count FROM items{}").format(where(shape))


def planned_count_sql(shape: tuple[str, ...]) -> sql.Composed:
    """The planner's estimate of count_sql's answer, without reading the rows: EXPLAIN's."""
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM items{}").format(where(shape))
