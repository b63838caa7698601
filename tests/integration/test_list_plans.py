"""Every documented filter, with every sort order, first page and deep, is planned without a
sequential scan of items at 100,000 rows: a later change cannot lose an index unnoticed.
(bench/filters.py measures the same combinations at a million rows.)"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row
from werkzeug.datastructures import MultiDict

from itemsapi.db import list_query, sized
from itemsapi.db.statements import text
from itemsapi.web.listing import parse_list_query

ROWS = 100_000
# One example of each filter the API documents (docs/api.md, "Filtering and searching").
FILTERS = {
    "none": {},
    "ids": {"ids": ",".join(str(n * 997) for n in range(1, 40))},
    "price range": {"min_price": "10", "max_price": "12.50"},
    "has price": {"has_price": "true"},
    "has no price": {"has_price": "false"},
    "quantity range": {"min_quantity": "5", "max_quantity": "6"},
    "created range": {
        "created_from": "2026-03-01T00:00:00Z", "created_before": "2026-03-08T00:00:00Z"
    },
    "updated since": {"updated_from": "2026-12-20T00:00:00Z"},
    "attributes": {"attributes": '{"color": "c3"}'},
    "attr.key": {"attr.size": "7"},
    "search": {"search": "w17"},
    "search phrase": {"search": '"w17 w18"'},
}  # fmt: skip
SORTS = ["id", "name", "price", "created_at", "updated_at"]
# The rows bench/filters.py loads too, at its own scale.
LOAD = """
INSERT INTO items (name, description, price, quantity, attributes, created_at, updated_at)
SELECT 'w' || (n %% 97) || ' w' || (n %% 89) || ' item ' || n,
       'w' || (n %% 83) || ' described',
       CASE WHEN n %% 10 = 0 THEN NULL ELSE (n %% 5000) / 100.0 END,
       n %% 1000,
       jsonb_build_object('color', 'c' || (n %% 10), 'size', n %% 50, 'serial', n),
       timestamptz '2026-01-01' + n * interval '5 minutes',
       timestamptz '2026-01-01' + n * interval '5 minutes' + (n %% 7) * interval '1 day'
FROM generate_series(1, %(rows)s) AS n
"""


def plan(sql, args: dict[str, str], deep: bool) -> str:
    query = parse_list_query(MultiDict(args))
    if deep:  # a page deep in the walk: the keyset condition of a cursor, as the next page has
        moment = "2026-06-01T00:00:00Z"
        row = {"id": 50_000, "name": "w1", "price": 25.0, "rank": 0.1,
               "created_at": moment, "updated_at": moment}  # fmt: skip
        key = list_query.sort_key(row, query.sort)
        query = list_query.ListQuery(query.limit, query.sort, query.descending, key, query.filters)
    statement = text(sized.list_sql, *list_query.list_shape(query))
    params = {**list_query.list_params(query), "budget": 4 * 1024 * 1024}
    rows = sql.execute("EXPLAIN " + statement, params).fetchall()
    return "\n".join(row["QUERY PLAN"] for row in rows)


@pytest.fixture(scope="module")
def loaded(database_url: str) -> Iterator[psycopg.Connection]:
    """The rows, loaded once for this module's tests (each other test empties the table)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("TRUNCATE items RESTART IDENTITY")
        conn.execute(LOAD, {"rows": ROWS})
        # Statistics from every row, not a sample of 30,000: the same plans on every run.
        conn.execute("SET default_statistics_target = 10000")
        conn.execute("VACUUM ANALYZE items")
        conn.execute("RESET default_statistics_target")
        yield conn
        conn.execute("TRUNCATE items RESTART IDENTITY")


def test_no_documented_filter_and_sort_scans_the_whole_table(loaded):
    scans = []
    for name, args in FILTERS.items():
        sorts = SORTS + (["relevance"] if "search" in args else [])
        for sort in sorts:
            for direction in ("", "-"):
                for deep in (False, True):
                    text_plan = plan(loaded, {**args, "sort": direction + sort}, deep)
                    if "Seq Scan on items" in text_plan:
                        scans.append((name, direction + sort, deep, text_plan))
    assert scans == []


# A selective value of each filter, sorted by name (whose index cannot serve the filter): the
# filter's own index must. Without it the planner walks the whole name index instead, which no
# "Seq Scan" shows.
OWN_INDEX = {
    "items_pkey": {"ids": "17,4242,99999"},
    "items_price_id_idx": {"min_price": "10", "max_price": "10"},
    "items_quantity_id_idx": {"min_quantity": "5", "max_quantity": "5"},
    "items_created_at_id_idx": {
        "created_from": "2026-03-01T00:00:00Z", "created_before": "2026-03-01T01:00:00Z"
    },
    "items_updated_at_id_idx": {"updated_from": "2027-01-01T00:00:00Z"},
    "items_attributes_idx": {"attr.serial": "4242"},
    "items_search_idx": {"search": "item 4242"},
}  # fmt: skip


@pytest.mark.parametrize(("index", "args"), OWN_INDEX.items(), ids=list(OWN_INDEX))
def test_each_filter_is_served_by_its_own_index_when_it_is_selective(loaded, index, args):
    text_plan = plan(loaded, {**args, "sort": "-name"}, deep=False)
    assert index in text_plan, text_plan


@pytest.mark.parametrize(
    ("name", "index"),
    [("created range", "items_created_at_id_idx"), ("updated since", "items_updated_at_id_idx")],
)
def test_a_time_range_sorted_by_id_reads_the_ids_from_its_index_alone(loaded, name, index):
    """The first page of a time range sorted by id: when it is neither among the range's first
    matches nor within a bounded walk of the id index, the range's ids are read from its index's
    entries (list_query.walk_first_sql), not from the table's rows. Two index-only scans of it:
    one counts the range (`small`), the other reads its ids."""
    text_plan = plan(loaded, {**FILTERS[name], "sort": "-id"}, deep=False)
    assert text_plan.count(f"Index Only Scan using {index}") == 2, text_plan


@pytest.mark.parametrize("sort", ["price", "-price"])
def test_pages_by_price_of_items_without_one_start_at_the_cursor_in_the_index(loaded, sort):
    """Every key is -1: without an id bound beside the row comparison, the filter's equality on
    the index's first column leaves the scan to start at the first item without a price, and
    each page reads every earlier one again (list_query.pins_price)."""
    query = parse_list_query(MultiDict({"has_price": "false", "sort": sort}))
    query = list_query.ListQuery(
        query.limit, query.sort, query.descending, (Decimal(-1), 50_000), query.filters
    )
    statement = text(sized.list_sql, *list_query.list_shape(query))
    params = {**list_query.list_params(query), "budget": 4 * 1024 * 1024}
    rows = loaded.execute("EXPLAIN " + statement, params).fetchall()
    conditions = [row["QUERY PLAN"] for row in rows if "Index Cond" in row["QUERY PLAN"]]
    op = "<" if sort.startswith("-") else ">"
    assert any(f"(id {op} '50000'::bigint)" in line or f"(id {op} 50000)" in line
               for line in conditions), conditions  # fmt: skip
