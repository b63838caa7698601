"""The list's filter parameters, each parsed to the value db/filters.py binds, in a canonical form
(timestamps in UTC, ids sorted and unique, attributes as sorted JSON text), so that two requests
asking the same thing share a cached page and a cursor. Each parser raises BadParameter naming
its parameter; listing.py gathers them all."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from itemsapi import strict_json
from itemsapi.errors import BadParameter
from itemsapi.web.schemas import ITEM_ID_MAX, PRICE_MAX, QUANTITY_MAX, check_attributes
from itemsapi.web.schemas import price_from_text as _price

IDS_MAX = 100
ATTR_PREFIX = "attr."  # attr.<key>=<value>: attributes must hold <key> equal to <value>
ATTR_KEYS_MAX, ATTR_KEY_MAX = 20, 200
ATTRIBUTES_TEXT_MAX = 4096  # characters of attributes= and of each attr.* value
TIME_TEXT_MAX = 40
SEARCH_MAX = 200
Q_MAX = 200
# The trigram index (items_name_trgm_idx) serves a substring search only through trigrams of
# letters and digits: q needs three of them in a row, or it would scan the whole table.
Q_MIN_RUN = 3
_WORD_RUN = re.compile(rf"[^\W_]{{{Q_MIN_RUN}}}")
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,18}")
_QUANTITY = re.compile(r"0|[1-9][0-9]{0,9}")
# A web-search term: a quoted phrase or a run of non-space characters.
_SEARCH_TERM = re.compile(r'"[^"]*"?|[^\s"]+')
_WORD = re.compile(r"[^\W_]")


def ids(raw: str) -> tuple[int, ...]:
    parts = raw.split(",", IDS_MAX)
    if len(parts) > IDS_MAX or not all(_CANONICAL_ID.fullmatch(p) for p in parts):
        message = f"must be 1 to {IDS_MAX} item ids (positive integers), separated by commas"
        raise BadParameter("ids", message)
    found = {int(p) for p in parts}
    if max(found) > ITEM_ID_MAX:
        raise BadParameter("ids", f"holds an id above {ITEM_ID_MAX}")
    return tuple(sorted(found))


def q(raw: str) -> str:
    if len(raw) > Q_MAX or "\x00" in raw:
        raise BadParameter("q", f"must be at most {Q_MAX} characters, without NUL")
    if not _WORD_RUN.search(raw):
        raise BadParameter("q", f"must contain {Q_MIN_RUN} letters or digits in a row")
    return raw


def price(name: str) -> Callable[[str], Decimal]:
    def parse(raw: str) -> Decimal:
        try:
            return _price(raw)
        except ValueError:
            message = f"must be a number from 0 to {PRICE_MAX} with at most two decimal places"
            raise BadParameter(name, message) from None

    return parse


def quantity(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not _QUANTITY.fullmatch(raw) or int(raw) > QUANTITY_MAX:
            raise BadParameter(name, f"must be an integer from 0 to {QUANTITY_MAX}")
        return int(raw)

    return parse


def has_price(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise BadParameter("has_price", "must be true or false")
    return raw == "true"


def timestamp(name: str) -> Callable[[str], datetime]:
    def parse(raw: str) -> datetime:
        # An unencoded `+` of an offset reaches here as a space.
        text = raw[:-6] + "+" + raw[-5:] if raw[-6:-5] == " " else raw
        try:
            if len(text) > TIME_TEXT_MAX or not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ].+", text):
                raise ValueError(text)
            value = datetime.fromisoformat(text)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            message = "must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z"
            raise BadParameter(name, message)
        return value.astimezone(UTC)

    return parse


def search(raw: str) -> str:
    if len(raw) > SEARCH_MAX or "\x00" in raw:
        raise BadParameter("search", f"must be at most {SEARCH_MAX} characters, without NUL")
    # A search of only negated words (or none) would match through every index entry.
    terms = (t for t in _SEARCH_TERM.findall(raw) if not t.startswith("-"))
    if not any(_WORD.search(term) for term in terms):
        raise BadParameter("search", "must hold a word to find (not only -excluded words)")
    return raw


def attributes(args: dict[str, str]) -> str | None:
    """The object `attributes=` and every `attr.<key>=` ask the item's attributes to contain,
    as canonical JSON text; None when neither is given."""
    wanted: dict[str, Any] = {}
    if "attributes" in args:
        wanted = _object(args["attributes"])
    pairs = [(name, value) for name, value in args.items() if name.startswith(ATTR_PREFIX)]
    if len(pairs) > ATTR_KEYS_MAX:
        raise BadParameter(ATTR_PREFIX + "*", f"at most {ATTR_KEYS_MAX} attr.<key> parameters")
    for name, raw in pairs:
        key = name.removeprefix(ATTR_PREFIX)
        if not 1 <= len(key) <= ATTR_KEY_MAX or "\x00" in key:
            raise BadParameter(name, f"the key must be 1 to {ATTR_KEY_MAX} characters, no NUL")
        if key in wanted:
            raise BadParameter(name, "names a key attributes= already holds")
        wanted[key] = _scalar(name, raw)
    if not wanted and "attributes" not in args:
        return None
    try:
        check_attributes(wanted)
    except ValueError as exc:
        raise BadParameter("attributes", str(exc)) from None
    return orjson.dumps(wanted, option=orjson.OPT_SORT_KEYS).decode()


def _object(raw: str) -> dict[str, Any]:
    message = f"must be a JSON object (at most {ATTRIBUTES_TEXT_MAX} characters)"
    if len(raw) > ATTRIBUTES_TEXT_MAX:
        raise BadParameter("attributes", message)
    try:
        value = strict_json.loads(raw.encode())
    except strict_json.NotStrictJson as exc:
        raise BadParameter("attributes", f"{message}; it {exc}") from None
    if not isinstance(value, dict):
        raise BadParameter("attributes", message)
    return value


def _scalar(name: str, raw: str) -> Any:
    """JSON when the text is a JSON number, string (quoted), true, false or null; any other
    text is the string itself: attr.size=10 is the number, attr.size="10" the string."""
    if len(raw) > ATTRIBUTES_TEXT_MAX:
        raise BadParameter(name, f"must be at most {ATTRIBUTES_TEXT_MAX} characters")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(value, dict | list):
        raise BadParameter(name, "must be a string, number, boolean or null; use attributes=")
    return value
