"""Totals of a list, on request (`Prefer: count=...`, PostgREST's meanings): `exact` counts the
matching rows; `planned` is the planner's estimate, read from EXPLAIN without touching a row;
`estimated` is exact while the estimate is below ESTIMATE_ABOVE, and the estimate above it,
where counting would read that many rows on every request."""

from __future__ import annotations

from typing import Any

from itemsapi.db import filters
from itemsapi.db.list_query import ListQuery
from itemsapi.db.pool import StatementConnection
from itemsapi.db.statements import text

ESTIMATE_ABOVE = 10_000


def total(conn: StatementConnection, query: ListQuery) -> int | None:
    """The total query.count asks for of the rows its filters match (every page); None when it
    asks for none."""
    if query.count is None:
        return None
    shape = query.filters.shape()
    values = filters.params(query.filters)
    if query.count == "exact":
        return _exact(conn, shape, values)
    planned = _planned(conn, shape, values)
    if query.count == "estimated" and planned < ESTIMATE_ABOVE:
        return _exact(conn, shape, values)
    return planned


def _exact(conn: StatementConnection, shape: tuple[str, ...], values: dict[str, Any]) -> int:
    return conn.run(text(filters.count_sql, shape), values).fetchone()["count"]


def _planned(conn: StatementConnection, shape: tuple[str, ...], values: dict[str, Any]) -> int:
    (plan,) = conn.run(text(filters.planned_count_sql, shape), values).fetchone().values()
    return int(plan[0]["Plan"]["Plan Rows"])
