"""The filters' SQL and their parsing, without a database: one condition per filter on the
expression its index holds, values only as parameters, and canonical values from the query
string (so equal requests share a cached page and a cursor)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from werkzeug.datastructures import MultiDict

from itemsapi.db import filters
from itemsapi.db.filters import Filters
from itemsapi.db.list_query import ListQuery, list_params, list_shape, list_sql
from itemsapi.errors import BadParameter
from itemsapi.web.listing import parse_fields, parse_list_query
from itemsapi.web.prefer import preferences


def rendered(query: ListQuery) -> str:
    return list_sql(*list_shape(query)).as_string()


def test_each_filter_is_one_condition_on_an_indexed_expression_with_its_value_as_a_parameter():
    chosen = Filters(
        ids=(3, 9), min_price=Decimal(1), max_price=Decimal(2), has_price=True, min_quantity=1,
        max_quantity=5, created_from=datetime(2026, 1, 1, tzinfo=UTC),
        created_before=datetime(2026, 2, 1, tzinfo=UTC), attributes='{"color":"red"}',
        search="red -apple",
    )  # fmt: skip
    text = rendered(ListQuery(filters=chosen))
    for condition in (
        "id = ANY(%(ids)s::bigint[])",
        "COALESCE(price, -1) >= %(min_price)s",
        "COALESCE(price, -1) BETWEEN 0 AND %(max_price)s",
        "COALESCE(price, -1) >= 0",
        "quantity >= %(min_quantity)s AND quantity <= %(max_quantity)s",
        "created_at >= %(created_from)s AND created_at < %(created_before)s",
        "attributes @> %(attributes)s::jsonb",
        "search_vector @@ (SELECT websearch_to_tsquery(config::regconfig, %(search)s)"
        " FROM search_settings)",
    ):
        assert condition in text
    for value in ("red", "apple", "2026", "color"):
        assert value not in text
    params = list_params(ListQuery(filters=chosen))
    assert params["ids"] == [3, 9]
    assert params["search"] == "red -apple"
    assert "has_price" not in params


def test_has_price_false_is_its_own_shape():
    assert "COALESCE(price, -1) = -1" in rendered(ListQuery(filters=Filters(has_price=False)))
    assert Filters(has_price=False).shape() != Filters(has_price=True).shape()


@pytest.mark.parametrize(
    ("descending", "after", "bound"),
    [
        (False, (Decimal(-1), 70), 70),  # a page of items without a price: the cursor's id
        (True, (Decimal(-1), 70), 70),
        (False, (Decimal("2.50"), 70), 0),  # after a priced key: no id excluded by it
        (True, (Decimal("2.50"), 70), 2**63 - 1),
    ],
)
def test_pages_by_price_of_items_without_one_bound_the_id_beside_the_row_comparison(
    descending, after, bound
):
    query = ListQuery(sort="price", descending=descending, after=after,
                      filters=Filters(has_price=False))  # fmt: skip
    op = "<" if descending else ">"
    text = rendered(query)
    assert f"(COALESCE(price, -1), id) {op} (%(after_key)s, %(after_id)s)" in text
    assert f"id {op} %(pinned_after_id)s" in text
    assert list_params(query)["pinned_after_id"] == bound
    priced = ListQuery(sort="price", after=after, filters=Filters(has_price=True))
    assert "pinned_after_id" not in rendered(priced)
    assert "pinned_after_id" not in list_params(priced)


def test_a_shape_name_outside_the_allow_list_is_refused():
    with pytest.raises(ValueError, match="not a filter"):
        filters.conditions(("ids", "1=1; DROP TABLE items"))


def test_relevance_pages_compare_the_rank_as_a_real():
    query = ListQuery(sort="relevance", descending=True, after=(0.25, 7),
                      filters=Filters(search="pear"))  # fmt: skip
    text = rendered(query)
    assert "(ts_rank(search_vector, (SELECT websearch_to_tsquery(" in text
    assert ", id) < (%(after_key)s::real, %(after_id)s)" in text
    assert text.endswith("DESC, id DESC LIMIT %(limit)s")


WEEK = {"created_from": datetime(2026, 3, 1, tzinfo=UTC),
        "created_before": datetime(2026, 3, 8, tzinfo=UTC)}  # fmt: skip


@pytest.mark.parametrize(
    ("sort", "chosen", "walks"),
    [
        ("id", Filters(**WEEK), True),
        ("updated_at", Filters(**WEEK, min_quantity=1), True),
        ("created_at", Filters(**WEEK), False),  # the range's own index is the sort's
        ("created_at", Filters(updated_from=WEEK["created_from"]), True),
        ("id", Filters(**WEEK, search="pear"), False),  # the search index serves it
        ("id", Filters(**WEEK, ids=(1, 2)), False),  # the primary key serves it
        ("id", Filters(min_quantity=1), False),  # no time range
        ("name", Filters(**WEEK), False),  # names do not rise with time
        ("price", Filters(**WEEK), False),
    ],
)
def test_a_time_range_sorted_by_another_key_walks_the_sorts_index_a_bounded_way_first(
    sort, chosen, walks
):
    query = ListQuery(sort=sort, after=("2026-03-02", 5), filters=chosen)
    text, params = rendered(query), list_params(query)
    assert ("walked" in text) is walks
    assert ("few" in params and "walk" in params and "range_read" in params) is walks
    if walks:
        # The walk reads at most %(walk)s entries past the cursor, filtered afterwards; the
        # range's own read applies the cursor and the filters together, read only when the walk
        # found too few.
        keyset = "(%(after_key)s, %(after_id)s)" if sort != "id" else "%(after_id)s"
        assert f"FROM items WHERE {'id >' if sort == 'id' else '(' + sort + ', id) >'} " in text
        assert keyset + " ORDER BY" in text
        assert "LIMIT %(walk)s)" in text
        # Each step is read only when the ones before it did not find the page.
        assert "WHERE (SELECT count(*) FROM few) < %(few)s" in text
        assert "(SELECT count(*) FROM walked) >= %(limit)s" in text
        assert "(SELECT count(*) FROM walked) < %(limit)s AND (SELECT yes FROM small)" in text
        assert "(SELECT count(*) FROM walked) < %(limit)s AND NOT (SELECT yes FROM small)" in text
        # The range read whole sorts the matches' keys alone, then fetches the page by id.
        assert (
            "WHERE id = ANY(ARRAY(SELECT id FROM (SELECT id, created_at, updated_at FROM items"
            " WHERE "
        ) in text
    whole = list_sql(*list_shape(query), one_page=False).as_string()  # an export's: every page
    assert "walked" not in whole


def test_counts_share_the_filters_conditions_without_keyset_or_limit():
    shape = Filters(min_quantity=2).shape()
    assert filters.count_sql(shape).as_string() == (
        "SELECT count(*) AS count FROM items WHERE quantity >= %(min_quantity)s"
    )
    assert filters.planned_count_sql(()).as_string() == "EXPLAIN (FORMAT JSON) SELECT 1 FROM items"


def test_parsed_values_are_canonical():
    one = parse_list_query(MultiDict({
        "ids": "9,3,9", "created_from": "2026-01-01T01:00:00+01:00",
        "attributes": '{"size": 2, "color": "red"}',
    }))  # fmt: skip
    other = parse_list_query(MultiDict({
        "ids": "3,9", "created_from": "2026-01-01T00:00:00Z",
        "attr.color": "red", "attr.size": "2",
    }))  # fmt: skip
    assert one.filters == other.filters
    assert one.filters.ids == (3, 9)
    assert one.filters.attributes == '{"color":"red","size":2}'


@pytest.mark.parametrize(
    ("raw", "value"),
    [("red", "red"), ('"10"', "10"), ("10", 10), ("1.5", 1.5), ("true", True), ("null", None),
     ("not json {", "not json {")],
)  # fmt: skip
def test_attr_values_are_json_scalars_or_else_the_text_itself(raw, value):
    query = parse_list_query(MultiDict({"attr.k": raw}))
    assert query.filters.attributes == orjson.dumps({"k": value}).decode()


def test_every_bad_parameter_is_named_at_once():
    with pytest.raises(BadParameter) as raised:
        parse_list_query(MultiDict({
            "ids": "0", "has_price": "yes", "updated_before": "2026-01-01", "search": "-x",
            "attributes": "[1]", "max_quantity": "1e3",
        }))  # fmt: skip
    named = sorted(e.field for e in raised.value.errors)
    assert named == ["attributes", "has_price", "ids", "max_quantity", "search", "updated_before"]


def test_fields_keep_the_items_order_and_refuse_unknown_names():
    assert parse_fields("price,id") == ("id", "price")
    assert parse_fields(None) is None
    with pytest.raises(BadParameter):
        parse_fields("id,secret")


@pytest.mark.parametrize(
    ("header", "count"),
    [("count=exact", "exact"), ("Count=Planned", "planned"),
     ("return=minimal, count=estimated", "estimated"), ("count=exact, count=planned", "exact"),
     ("count=roughly", None), (None, None)],
)  # fmt: skip
def test_prefer_count_is_read_as_rfc_7240_says(header, count):
    assert parse_list_query(MultiDict(), header).count == count


def test_preferences_keep_the_first_of_a_name():
    assert preferences("Return=Minimal; x=1, count=exact, return=representation") == {
        "return": "minimal", "count": "exact"
    }  # fmt: skip
