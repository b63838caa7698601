"""The batch insert's builder and the idempotency statements (no database), the Prefer header,
and the field paths a batch's errors carry."""

from __future__ import annotations

import json

import pytest

from itemsapi.db import batch, idempotency
from itemsapi.errors import ValidationFailed
from itemsapi.web.batch import validate_rows
from itemsapi.web.prefer import prefers_minimal
from tests.helpers import item_payload


def test_the_batch_insert_names_only_allow_listed_columns_and_one_parameter():
    text = batch.insert_many_statement().as_string()
    assert text.startswith(
        'INSERT INTO items ("name", "description", "price", "quantity", "attributes") SELECT'
    )
    assert text.count("%(") == 2  # the rows, and who writes them (statements.ATTRIBUTED)
    assert "%(rows)s::jsonb" in text
    assert "set_config('itemsapi.principal', %(by)s, true)" in text
    assert "WITH ORDINALITY" in text
    assert "ORDER BY n" in text


def test_the_rows_parameter_carries_the_writable_columns_only_as_data():
    row = {**item_payload(name="'); DROP TABLE items; --"), "id": 5}
    value = json.loads(batch.rows_param([row]))
    assert value == [{k: v for k, v in row.items() if k != "id"}]
    assert "DROP" not in batch.insert_many_statement().as_string()


def test_the_idempotency_statements_take_values_as_parameters_only():
    for statement in (idempotency._GATE, idempotency._STORE, idempotency._PURGE):
        assert "%(ttl)s" in statement
    assert "SKIP LOCKED" in idempotency._PURGE
    assert "LIMIT %(batch)s" in idempotency._PURGE
    assert "pg_try_advisory_xact_lock" in idempotency._GATE  # never waits for the lock


@pytest.mark.parametrize(
    ("header", "minimal"),
    [
        (None, False),
        ("return=minimal", True),
        ("Return=Minimal", True),
        ("respond-async, return=minimal; foo=bar", True),
        ("return=representation", False),
        ("return=minimalist", False),
    ],
)
def test_prefer_return_minimal_is_read_as_rfc_7240_says(header, minimal):
    assert prefers_minimal(header) is minimal


def test_every_bad_field_of_every_row_is_named_by_index():
    rows = [item_payload(), {"price": "1"}, 5, item_payload(attributes={"a": [2**60]})]
    with pytest.raises(ValidationFailed) as caught:
        validate_rows(rows, 10)
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("[1].name", "is required"),
        ("[1].price", "must be a number"),
        ("[2]", "must be a JSON object"),
        ("[3].attributes.a[0]", "numbers must lie within +-(2**53 - 1)"),
    ]


@pytest.mark.parametrize("count", [0, 11])
def test_a_batch_outside_its_bounds_is_refused_as_a_whole(count):
    with pytest.raises(ValidationFailed) as caught:
        validate_rows([item_payload()] * count, 10)
    assert caught.value.errors[0].field is None


def test_a_minimal_batch_returns_only_ids_and_versions():
    text = batch.insert_many_statement(minimal=True).as_string()
    assert text.endswith("RETURNING id, version")
