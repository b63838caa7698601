"""The export and import statements and the import's line reader, without a database: values
never in the SQL, no limit on an export, only writable columns imported, and every line held to
a single POST's rules, the fast path included."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from itemsapi import strict_json
from itemsapi.db import list_query
from itemsapi.db.export_rows import CSV, NDJSON, export_params, export_sql
from itemsapi.db.filters import Filters
from itemsapi.db.list_query import ListQuery
from itemsapi.db.transfer import _IMPORT
from itemsapi.errors import ImportInvalid
from itemsapi.web import import_rows

QUERY = ListQuery(
    sort="price", descending=True, filters=Filters(q="50%_off", min_price=Decimal("1.5"))
)


def built(fmt: str, query: ListQuery = QUERY) -> str:
    return export_sql(fmt, *list_query.list_shape(query)).as_string()


def test_an_export_is_one_statement_of_the_lists_query_with_its_values_as_parameters():
    text = built(NDJSON)
    assert text.startswith("""SELECT convert_to('{"id":' || "r"."id" || ',"name":' || """)
    assert """ || '}', 'UTF8') FROM (SELECT """ in text
    assert text.endswith(") AS r")
    assert "ORDER BY COALESCE(price, -1) DESC, id DESC LIMIT %(limit)s" in text
    assert "name ILIKE %(q)s" in text
    assert "COALESCE(price, -1) >= %(min_price)s" in text
    assert "50" not in text  # the values travel as parameters
    params = export_params(QUERY)
    assert params["limit"] is None  # LIMIT NULL: every row
    assert params["q"] == "%50\\%\\_off%"


def test_a_csv_export_has_a_header_and_the_items_columns_in_order():
    text = built(CSV, ListQuery())
    assert text.endswith("TO STDOUT (FORMAT csv, HEADER)")
    assert "row_to_json" not in text
    columns = text.split("SELECT r.", 1)[1].split(" FROM ", 1)[0]
    assert columns.startswith("id, r.name, r.description, r.price, r.quantity, r.attributes")


def test_an_import_copies_only_the_writable_columns():
    assert _IMPORT.as_string() == (
        'COPY items ("name", "description", "price", "quantity", "attributes") FROM STDIN'
    )


@pytest.mark.parametrize(
    "line",
    [
        b'{"name": "a", "attributes": {"k": 1, "k": 2}}',  # repeated inside attributes
        b'{"name": "a:b", "name": "c"}',  # a colon in a string and a repeat
        b'{"name": "a", "attributes": {"x": {"y": 1, "y": 1}}}',
    ],
)
def test_a_repeated_member_name_is_refused_on_every_path(line):
    with pytest.raises(ImportInvalid) as caught:
        list(import_rows.rows([line + b"\n"]))
    assert "twice" in caught.value.errors[0].message


@pytest.mark.parametrize(
    "item",
    [
        {"name": "12:30", "attributes": {"url": "http://x"}},  # colons in strings
        {"name": "a", "attributes": {"a": [{"b": 1}, [{"c": None}]], "d": {}}},
        {"name": "a", "price": 1.25},
    ],
)
def test_lines_without_repeats_parse_as_a_post_body_would(item):
    line = orjson.dumps(item)
    assert strict_json.loads(line) == item
    (row,) = import_rows.rows([line])
    assert row[0] == item["name"]


def in_chunks(body: bytes, size: int = 5) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def test_lines_split_across_chunks_are_read_whole_and_counted_from_one():
    good = b'{"name": "a"}\r\n\n{"name": "b"}'  # CRLF, an empty line, no final newline
    assert [row[0] for row in import_rows.rows(in_chunks(good))] == ["a", "b"]
    with pytest.raises(ImportInvalid) as caught:
        list(import_rows.rows(in_chunks(good + b'\n{"name": ""}\n')))
    (error,) = caught.value.errors
    assert (error.line, error.field) == (4, "name")
