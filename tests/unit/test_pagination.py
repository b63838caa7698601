from datetime import UTC, datetime
from decimal import Decimal

import pytest

from itemsapi.db.filters import Filters
from itemsapi.web import pagination

NONE = Filters()


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
    token = pagination.encode(sort, key, NONE)
    assert "=" not in token  # URL-safe without padding
    assert pagination.decode(token, sort, NONE) == key


def test_a_cursor_only_works_for_the_sort_it_was_made_for():
    token = pagination.encode("name", ("a", 1), NONE)
    with pytest.raises(pagination.InvalidCursor, match="another sort order"):
        pagination.decode(token, "-name", NONE)


@pytest.mark.parametrize(
    ("sort", "token"),
    [
        ("id", "not base64 !!"),
        ("id", "e30"),  # {}
        ("price", pagination.encode("price", ("NaN", 1), NONE)),
        ("price", pagination.encode("price", (19.99, 1), NONE)),  # price must travel as text
        ("id", pagination.encode("id", (1, 2), NONE)),  # an id key must be the id itself
        ("created_at", pagination.encode("created_at", ("2026-01-01T00:00:00", 1), NONE)),  # naive
        ("name", pagination.encode("name", ("a", -1), NONE)),
        ("name", pagination.encode("name", ("a", True), NONE)),
    ],
)
def test_tampered_cursors_are_refused(sort, token):
    with pytest.raises(pagination.InvalidCursor, match="not a cursor this API issued"):
        pagination.decode(token, sort, NONE)
