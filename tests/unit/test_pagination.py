from datetime import UTC, datetime
from decimal import Decimal

import pytest

from itemsapi.web import pagination


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("id", (5, 5)),
        ("-name", ("Widget ü", 9)),
        ("price", (Decimal("19.99"), 3)),
        ("-price", (Decimal(-1), 3)),
        ("created_at", (datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC), 8)),
    ],
)
def test_cursor_round_trips_the_key_in_its_type(sort, key):
    token = pagination.encode(sort, key)
    assert "=" not in token  # URL-safe without padding
    assert pagination.decode(token, sort) == key


def test_a_cursor_only_works_for_the_sort_it_was_made_for():
    token = pagination.encode("name", ("a", 1))
    with pytest.raises(pagination.InvalidCursor, match="another sort order"):
        pagination.decode(token, "-name")


@pytest.mark.parametrize(
    ("sort", "token"),
    [
        ("id", "not base64 !!"),
        ("id", "e30"),  # {}
        ("price", pagination.encode("price", ("NaN", 1))),
        ("price", pagination.encode("price", (19.99, 1))),  # price must travel as text
        ("id", pagination.encode("id", (1, 2))),  # an id key must be the id itself
        ("created_at", pagination.encode("created_at", ("2026-01-01T00:00:00", 1))),  # naive
        ("name", pagination.encode("name", ("a", -1))),
        ("name", pagination.encode("name", ("a", True))),
    ],
)
def test_tampered_cursors_are_refused(sort, token):
    with pytest.raises(pagination.InvalidCursor, match="not a cursor this API issued"):
        pagination.decode(token, sort)
