"""Opaque keyset cursors: the sort order and the (sort value, id) of the last row returned, and
a digest of the filters the list had.

A cursor is base64url(JSON). It is opaque to clients; it is checked, not trusted: a cursor made
for one sort order, or for other filters or another search, is refused, and every value is
parsed back to its type. A list without filters leaves the digest out: its cursors are as they
were before filters came.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from itemsapi.db.filters import Filters
from itemsapi.db.list_query import SortKey
from itemsapi.web.schemas import ITEM_ID_MAX, price_from_text


class InvalidCursor(ValueError):
    pass


def digest(filters: Filters) -> str | None:
    """What a cursor says of the filters it was made for; None without filters. Their values are
    canonical as parsed (timestamps in UTC, ids sorted, attributes' keys sorted)."""
    given = filters.given()
    if not given:
        return None
    return hashlib.blake2b(repr(sorted(given.items())).encode(), digest_size=9).hexdigest()


def encode(sort: str, key: SortKey, filters: Filters) -> str:
    value, item_id = key
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    made_for = digest(filters)
    fields = [sort, value, item_id] if made_for is None else [sort, value, item_id, made_for]
    return base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()


def decode(token: str, sort: str, filters: Filters) -> SortKey:
    """The key a cursor holds, for the sort order (e.g. "-price") and the filters the request
    asks for."""
    try:
        padded = token + "=" * (-len(token) % 4)
        made_for, value, item_id, *rest = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidCursor("is not a cursor this API issued") from None
    if made_for != sort:
        raise InvalidCursor("was issued for another sort order")
    if rest != ([] if (wanted := digest(filters)) is None else [wanted]):
        raise InvalidCursor("was issued for other filters or another search")
    if not isinstance(item_id, int) or isinstance(item_id, bool) or not 1 <= item_id <= ITEM_ID_MAX:
        raise InvalidCursor("is not a cursor this API issued")
    try:
        return (_parse_value(sort.lstrip("-"), value, item_id), item_id)
    except (ValueError, TypeError):
        raise InvalidCursor("is not a cursor this API issued") from None


def _parse_value(column: str, value: Any, item_id: int) -> Any:
    if column == "id":
        if value != item_id:
            raise ValueError(column)
        return item_id
    if column == "name":
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError(column)
        return value
    if column == "price":
        if not isinstance(value, str):
            raise ValueError(column)
        # A missing price sorts as -1 (statements.sort_key); any other as a price is written.
        return Decimal(-1) if value == "-1" else price_from_text(value)
    if column == "relevance":
        if not isinstance(value, float) or not math.isfinite(value):
            raise ValueError(column)
        return value
    if column in ("created_at", "updated_at"):
        if not isinstance(value, str):
            raise ValueError(column)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(column)
        return parsed
    raise ValueError(column)
