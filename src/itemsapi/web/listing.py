"""The list query's contract: the parameters GET /items takes, their bounds, and parsing them
into a ListQuery. Every bad parameter is a BadParameter naming it (400); the OpenAPI document
publishes the same bounds."""

from __future__ import annotations

import re
from decimal import Decimal

from werkzeug.datastructures import MultiDict

from itemsapi.db.statements import SORT_KEYS, ListQuery
from itemsapi.errors import BadParameter
from itemsapi.web import pagination
from itemsapi.web.schemas import PRICE_MAX, price_from_text

LIST_PARAMETERS = ("limit", "cursor", "sort", "q", "min_price", "max_price")
SORT_CHOICES = tuple(SORT_KEYS) + tuple("-" + s for s in SORT_KEYS)
LIMIT_DEFAULT, LIMIT_MAX, Q_MAX = 20, 100, 200
# A cursor holds a sort key (a name of at most 200 characters) and an id, base64url-encoded:
# well under this, which bounds what is decoded and parsed.
CURSOR_MAX = 2048
# The trigram index (items_name_trgm_idx) serves a substring search only through trigrams of
# letters and digits: q needs three of them in a row, or it would scan the whole table.
Q_MIN_RUN = 3
_WORD_RUN = re.compile(rf"[^\W_]{{{Q_MIN_RUN}}}")


def parse_list_query(args: MultiDict[str, str]) -> ListQuery:
    """The ListQuery a request's query string asks for; raises BadParameter."""
    for name in args:
        if name not in LIST_PARAMETERS:
            raise BadParameter(name, f"is not a parameter; use {', '.join(LIST_PARAMETERS)}")
        if len(args.getlist(name)) > 1:
            raise BadParameter(name, "must be given at most once")
    limit = _limit(args.get("limit"))
    sort = args.get("sort", "id")
    if sort not in SORT_CHOICES:
        raise BadParameter("sort", f"must be one of {', '.join(SORT_CHOICES)}")
    after = None
    if args.get("cursor"):  # an empty cursor is no cursor, as an empty q is no filter
        if len(args["cursor"]) > CURSOR_MAX:
            raise BadParameter("cursor", "is not a cursor this API issued")
        try:
            after = pagination.decode(args["cursor"], sort)
        except pagination.InvalidCursor as exc:
            raise BadParameter("cursor", str(exc)) from None
    q = args.get("q") or None
    if q is not None and (len(q) > Q_MAX or "\x00" in q):
        raise BadParameter("q", f"must be at most {Q_MAX} characters, without NUL")
    if q is not None and not _WORD_RUN.search(q):
        raise BadParameter("q", f"must contain {Q_MIN_RUN} letters or digits in a row")
    return ListQuery(
        limit=limit,
        sort=sort.lstrip("-"),
        descending=sort.startswith("-"),
        after=after,
        q=q,
        min_price=_price_bound("min_price", args.get("min_price")),
        max_price=_price_bound("max_price", args.get("max_price")),
    )


def _limit(raw: str | None) -> int:
    if raw is None:
        return LIMIT_DEFAULT
    # The length first: int() of thousands of digits is slow, and refused past 4,300 of them.
    digits = len(raw) <= len(str(LIMIT_MAX)) and raw.isascii() and raw.isdigit()
    if not digits or not 1 <= int(raw) <= LIMIT_MAX:
        raise BadParameter("limit", f"must be an integer from 1 to {LIMIT_MAX}")
    return int(raw)


def _price_bound(name: str, raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        return price_from_text(raw)
    except ValueError:
        message = f"must be a number from 0 to {PRICE_MAX} with at most two decimal places"
        raise BadParameter(name, message) from None
