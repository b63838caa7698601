"""The list query's contract: the parameters GET /items takes, their bounds, and parsing them
into a ListQuery. Every bad parameter is reported at once, each named (400); the OpenAPI
document publishes the same bounds. Filters are filter_params.py's; the total asked for with
`Prefer: count=...` (prefer.py) is part of the query, `fields=` is the view's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.datastructures import MultiDict

from itemsapi.db.filters import Filters
from itemsapi.db.list_query import COUNTS, RELEVANCE, SORT_KEYS, ListQuery
from itemsapi.errors import BadParameter, FieldError
from itemsapi.web import filter_params as parse
from itemsapi.web import pagination
from itemsapi.web.filter_params import ATTR_PREFIX
from itemsapi.web.prefer import preferences
from itemsapi.web.schemas import Item

# Each filter parameter and its parser; attr.<key> parameters join `attributes`.
FILTERS: dict[str, Callable[[str], Any]] = {
    "ids": parse.ids,
    "q": parse.q,
    "min_price": parse.price("min_price"),
    "max_price": parse.price("max_price"),
    "has_price": parse.has_price,
    "min_quantity": parse.quantity("min_quantity"),
    "max_quantity": parse.quantity("max_quantity"),
    "created_from": parse.timestamp("created_from"),
    "created_before": parse.timestamp("created_before"),
    "updated_from": parse.timestamp("updated_from"),
    "updated_before": parse.timestamp("updated_before"),
    "search": parse.search,
}
LIST_PARAMETERS = ("limit", "cursor", "sort", *FILTERS, "attributes", "fields")
SORT_CHOICES = tuple(SORT_KEYS) + tuple("-" + s for s in SORT_KEYS)
ITEM_FIELDS = tuple(Item.model_fields)
LIMIT_DEFAULT, LIMIT_MAX = 20, 100
# A cursor holds a sort key (a name of at most 200 characters), an id and a digest of the
# filters, base64url-encoded: well under this, which bounds what is decoded and parsed.
CURSOR_MAX = 2048
FIELDS_MAX = 1024  # characters of fields=


def parse_list_query(
    args: MultiDict[str, str], prefer: str | None = None, *, allowed: tuple[str, ...] = ()
) -> ListQuery:
    """The ListQuery a request's query string (and Prefer header) asks for; BadParameter naming
    every bad parameter. `allowed`: the parameters taken, LIST_PARAMETERS less `fields`
    unless given."""
    allowed = allowed or tuple(p for p in LIST_PARAMETERS if p != "fields")
    errors: list[FieldError] = []

    def take(name: str, parser: Callable[[str], Any], default: Any = None) -> Any:
        # Most of the parameters are absent from most lists: `in` is a dict's, while a
        # MultiDict's get raises and catches a KeyError for each missing name.
        if name not in args:
            return default
        raw = args[name]
        if raw == "" and name in ("q", "cursor"):  # empty: none, as ever
            return default
        try:
            return parser(raw)
        except BadParameter as exc:
            errors.extend(exc.errors)
            return default

    for name in args:
        if name not in allowed and not name.startswith(ATTR_PREFIX):
            errors.append(FieldError(name, f"is not a parameter; use {', '.join(allowed)}"))
        elif len(args.getlist(name)) > 1:
            errors.append(FieldError(name, "must be given at most once"))
    limit = take("limit", _limit, LIMIT_DEFAULT)
    sort = take("sort", _sort, "id")
    values = {name: take(name, parser) for name, parser in FILTERS.items()}
    values["attributes"] = take_attributes(args, errors)
    take("fields", parse_fields)  # only checked here: the view applies it
    filters = Filters(**values)
    if sort.lstrip("-") == RELEVANCE and filters.search is None:
        errors.append(FieldError("sort", "relevance ranks the matches of a search: add search="))
    after = None
    if not errors:
        after = take("cursor", lambda raw: _cursor(raw, sort, filters))
    if errors:
        raise BadParameter.of(errors)
    count = preferences(prefer).get("count")
    return ListQuery(
        limit=limit,
        sort=sort.lstrip("-"),
        descending=sort.startswith("-"),
        after=after,
        filters=filters,
        count=count if count in COUNTS else None,
    )


def take_attributes(args: MultiDict[str, str], errors: list[FieldError]) -> str | None:
    try:
        return parse.attributes(args.to_dict())
    except BadParameter as exc:
        errors.extend(exc.errors)
        return None


def parse_fields(raw: str | None) -> tuple[str, ...] | None:
    """The item fields `fields=` asks for, in the item's order; None: every field."""
    if raw is None:
        return None
    names = raw.split(",") if len(raw) <= FIELDS_MAX else [""]
    unknown = [name for name in names if name not in ITEM_FIELDS]
    if unknown:
        message = f"must name item fields, separated by commas: {', '.join(ITEM_FIELDS)}"
        raise BadParameter("fields", message)
    return tuple(name for name in ITEM_FIELDS if name in names)


def _limit(raw: str) -> int:
    # The length first: int() of thousands of digits is slow, and refused past 4,300 of them.
    digits = len(raw) <= len(str(LIMIT_MAX)) and raw.isascii() and raw.isdigit()
    if not digits or not 1 <= int(raw) <= LIMIT_MAX:
        raise BadParameter("limit", f"must be an integer from 1 to {LIMIT_MAX}")
    return int(raw)


def _sort(raw: str) -> str:
    if raw not in SORT_CHOICES:
        raise BadParameter("sort", f"must be one of {', '.join(SORT_CHOICES)}")
    return raw


def _cursor(raw: str, sort: str, filters: Filters) -> Any:
    if len(raw) > CURSOR_MAX:
        raise BadParameter("cursor", "is not a cursor this API issued")
    try:
        return pagination.decode(raw, sort, filters)
    except pagination.InvalidCursor as exc:
        raise BadParameter("cursor", str(exc)) from None
