"""The list query's contract: the parameters GET /items takes, their bounds, and parsing them
into a ListQuery. Every bad parameter is a BadParameter naming it (400); the OpenAPI document
publishes the same bounds."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from werkzeug.datastructures import MultiDict

from itemsapi.db.statements import SORT_KEYS, ListQuery
from itemsapi.errors import BadParameter
from itemsapi.web import pagination
from itemsapi.web.schemas import PRICE_MAX

LIST_PARAMETERS = ("limit", "cursor", "sort", "q", "min_price", "max_price")
SORT_CHOICES = tuple(SORT_KEYS) + tuple("-" + s for s in SORT_KEYS)
LIMIT_DEFAULT, LIMIT_MAX, Q_MAX = 20, 100, 200


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
        try:
            after = pagination.decode(args["cursor"], sort)
        except pagination.InvalidCursor as exc:
            raise BadParameter("cursor", str(exc)) from None
    q = args.get("q") or None
    if q is not None and (len(q) > Q_MAX or "\x00" in q):
        raise BadParameter("q", f"must be at most {Q_MAX} characters, without NUL")
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
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= LIMIT_MAX:
        raise BadParameter("limit", f"must be an integer from 1 to {LIMIT_MAX}")
    return int(raw)


def _price_bound(name: str, raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not 0 <= value <= Decimal(str(PRICE_MAX)):
        raise BadParameter(name, f"must be a number from 0 to {PRICE_MAX}")
    return value
