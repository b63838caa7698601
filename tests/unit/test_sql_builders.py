"""The repository's statement builders, rendered without a database."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from itemsapi.db.filters import Filters, escape_like
from itemsapi.db.list_query import ListQuery, list_params, list_shape, list_sql, sort_key
from itemsapi.db.statements import delete_statement, insert_statement, update_statement

RETURNING = (
    "RETURNING id, name, description, price::float8 AS price, quantity, attributes, version, "
    "created_at, updated_at"
)


# The principal, set for the one statement (the change log's trigger reads it).
BY = "set_config('itemsapi.principal', %(by)s, true) IS NOT NULL"


def render(statement) -> str:
    return statement.as_string()


def test_insert_names_every_writable_column_as_a_named_placeholder():
    assert render(insert_statement()) == (
        'INSERT INTO items ("name", "description", "price", "quantity", "attributes") '
        "SELECT %(name)s::text, %(description)s::text, %(price)s::numeric, %(quantity)s::integer,"
        " %(attributes)s::jsonb WHERE " + BY + " " + RETURNING
    )


def test_every_write_says_who_makes_it_for_the_statement_alone():
    for statement in (insert_statement(), update_statement(["name"]), delete_statement()):
        assert BY in render(statement)
    assert "set_config" not in render(update_statement([]))  # a read, not a write


def test_update_sets_only_the_given_columns_and_bumps_version():
    text = render(update_statement(["price", "name"]))
    assert text == (
        'UPDATE items SET "price" = %(price)s, "name" = %(name)s, '
        "version = version + 1, updated_at = now() WHERE id = %(id)s AND " + BY + " " + RETURNING
    )


def test_update_with_precondition_checks_version_in_the_same_statement():
    text = render(update_statement(["quantity"], check_version=True))
    assert "WHERE id = %(id)s AND version = ANY(%(versions)s)" in text
    assert text.startswith("UPDATE items SET")


def test_patch_merges_attributes_instead_of_replacing_them():
    text = render(update_statement(["attributes"], merge_attributes=True))
    assert "attributes = jsonb_merge_patch(attributes, %(attributes)s)" in text
    replace = render(update_statement(["attributes"]))
    assert '"attributes" = %(attributes)s' in replace


def test_empty_change_set_becomes_a_select_not_broken_sql():
    text = render(update_statement([], check_version=True))
    assert text.startswith("SELECT id, name")
    assert "SET" not in text
    assert text.endswith("FROM items WHERE id = %(id)s AND version = ANY(%(versions)s)")


@pytest.mark.parametrize("column", ["id", "version", "created_at", "name; DROP TABLE items", ""])
def test_columns_outside_the_allow_list_are_refused(column):
    with pytest.raises(ValueError, match="not writable"):
        update_statement(["name", column])


def list_statement(query: ListQuery) -> tuple[Any, dict[str, Any]]:
    return list_sql(*list_shape(query)), list_params(query)


def test_values_never_appear_in_the_sql_text():
    statement, params = list_statement(
        ListQuery(filters=Filters(q="'; DROP TABLE items; --", min_price=Decimal("1.50")))
    )
    text = render(statement)
    assert "DROP" not in text
    assert params["q"] == "%'; DROP TABLE items; --%"
    assert params["min_price"] == Decimal("1.50")


def test_delete_with_and_without_precondition():
    assert render(delete_statement()) == (
        "DELETE FROM items WHERE id = %(id)s AND " + BY + " RETURNING id"
    )
    assert "version = ANY(%(versions)s)" in render(delete_statement(check_version=True))


def test_list_first_page_by_id():
    statement, params = list_statement(ListQuery(limit=20))
    assert render(statement).endswith("FROM items ORDER BY id ASC LIMIT %(limit)s")
    assert params == {"limit": 21}  # one more than asked, to know whether a next page exists


def test_list_after_cursor_descending_price_uses_the_indexed_keyset():
    statement, params = list_statement(
        ListQuery(sort="price", descending=True, after=(Decimal("9.99"), 42), limit=5)
    )
    text = render(statement)
    assert "WHERE (COALESCE(price, -1), id) < (%(after_key)s, %(after_id)s)" in text
    assert text.endswith("ORDER BY COALESCE(price, -1) DESC, id DESC LIMIT %(limit)s")
    assert params["after_key"] == Decimal("9.99")
    assert params["after_id"] == 42


def test_list_filters_combine_with_and():
    statement, _ = list_statement(
        ListQuery(filters=Filters(q="x", min_price=Decimal(1), max_price=Decimal(2)), after=(7, 7))
    )
    assert (
        "WHERE name ILIKE %(q)s AND COALESCE(price, -1) >= %(min_price)s"
        " AND COALESCE(price, -1) BETWEEN 0 AND %(max_price)s AND id > %(after_id)s"
    ) in render(statement)


def test_like_wildcards_in_user_text_are_escaped():
    assert escape_like(r"50%_off\now") == r"50\%\_off\\now"


def test_sort_key_of_a_row_uses_database_types():
    created = datetime(2026, 1, 2, tzinfo=UTC)
    row = {"id": 3, "name": "b", "price": 19.99, "created_at": created}
    assert sort_key(row, "price") == (Decimal("19.99"), 3)
    assert sort_key({**row, "price": None}, "price") == (Decimal(-1), 3)
    assert sort_key(row, "name") == ("b", 3)
    assert sort_key(row, "created_at") == (created, 3)
    assert sort_key(row, "id") == (3, 3)
