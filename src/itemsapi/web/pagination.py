"""Opaque keyset cursors: the sort order and the (sort value, id) of the last row returned.

A cursor is base64url(JSON). It is opaque to clients; it is checked, not trusted: a cursor made
for one sort order is refused for another, and every value is parsed back to its type.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from itemsapi.db.statements import SortKey
from itemsapi.web.schemas import ITEM_ID_MAX, price_from_text


class InvalidCursor(ValueError):
    pass


def encode(sort: str, key: SortKey) -> str:
    value, item_id = key
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    payload = orjson.dumps([sort, value, item_id])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode(token: str, sort: str) -> SortKey:
    """The key a cursor holds, for the sort order (e.g. "-price") the request asks for."""
    try:
        padded = token + "=" * (-len(token) % 4)
        made_for, value, item_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidCursor("is not a cursor this API issued") from None
    if made_for != sort:
        raise InvalidCursor("was issued for another sort order")
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
    if column in ("created_at", "updated_at"):
        if not isinstance(value, str):
            raise ValueError(column)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(column)
        return parsed
    raise ValueError(column)
