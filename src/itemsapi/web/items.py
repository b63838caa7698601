"""The /items resource. Views stay thin: parse and validate, call the repository, respond."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request, url_for
from werkzeug.routing import BaseConverter

from itemsapi.cache.items import CachedItemRepository
from itemsapi.db.pool import Row
from itemsapi.errors import BadParameter
from itemsapi.web import batch, idempotency, pagination
from itemsapi.web.bodies import JSON, MERGE_PATCH, json_body
from itemsapi.web.context import current_request, header, of
from itemsapi.web.deps import deps
from itemsapi.web.listing import LIST_PARAMETERS, parse_fields, parse_list_query
from itemsapi.web.preconditions import parse_entity_tags
from itemsapi.web.prefer import APPLIED, MINIMAL, PREFER_ENVIRON, prefers_minimal
from itemsapi.web.problems import ItemPathNotFound
from itemsapi.web.responses import json_response
from itemsapi.web.schemas import ITEM_ID_MAX, validate_patch, validate_write

bp = Blueprint("items", __name__)

VERSION_PREFIX = "/v1"
# The app registers this blueprint twice: under /v1, and as it was before /v1 (unless switched
# off), under another name (web/deprecation.py).

_ETAG = re.compile(r"(?P<id>[0-9]{1,19})-(?P<version>[0-9]{1,18})")
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,18}")


class ItemIdConverter(BaseConverter):
    """Item ids are positive bigints written one way (decimal, no sign, no leading zero), so
    each item has one URL; any other path segment is not an item (404, as a missing one).

    It raises NotFound itself: a ValidationError would let werkzeug answer 405 for
    PUT/PATCH/DELETE on a path whose GET it had considered."""

    # Any segment but `export` and `import`, routes of their own (web/transfer.py): matched
    # here, they would be missing items (404) for the methods those routes do not take, and
    # OPTIONS would list this rule's methods for them.
    regex = r"(?!(?:export|import)$)[^/]+"

    def to_python(self, value: str) -> int:
        if not _CANONICAL_ID.fullmatch(value) or int(value) > ITEM_ID_MAX:
            raise ItemPathNotFound(value)
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


CACHE_HEADER = "X-Cache"  # hit | miss | bypass: how a cached route's read was served


def _items() -> CachedItemRepository:
    return deps().items


def _deadline() -> float | None:
    return of(current_request().environ).deadline


def by() -> str:
    """Who makes this request's write, for the change log: its principal ('' for none)."""
    return of(current_request().environ).principal or ""


@bp.post("/items")
def create_item() -> Response:
    requested = idempotency.requested()  # before the body is parsed: it fingerprints it raw
    body = json_body(JSON)
    if isinstance(body, list):
        return batch.create(body, requested)
    values = validate_write(body)
    if requested is None:
        return _created(_items().create(values, _deadline(), by=by()))
    once = requested.once(_created, lambda item: (item["id"],))
    return idempotency.respond(_items().create(values, _deadline(), once, by()))


def _created(item: Row) -> Response:
    return _written(item, 201)


@bp.get("/items/<item_id:item_id>")
def get_item(item_id: int) -> Response:
    tags = parse_entity_tags("If-None-Match", header("HTTP_IF_NONE_MATCH"))
    fields = _fields_only()
    item, served = _items().get(item_id, _deadline())
    tag = etag(item)  # of the whole item, whatever fields are asked for
    if tags is not None and (tags.star or tag in tags.weak_values):
        return Response(status=304, headers={"ETag": f'"{tag}"', CACHE_HEADER: served})
    body = item if fields is None else _project(item, fields)
    return json_response(body, headers={"ETag": f'"{tag}"', CACHE_HEADER: served})


@bp.put("/items/<item_id:item_id>")
def replace_item(item_id: int) -> Response:
    versions = _if_match(item_id)
    values = validate_write(json_body(JSON))
    return _written(_items().replace(item_id, values, versions, _deadline(), by()))


@bp.patch("/items/<item_id:item_id>")
def patch_item(item_id: int) -> Response:
    versions = _if_match(item_id)
    requested = idempotency.requested()
    changes = validate_patch(json_body(MERGE_PATCH, JSON))
    if requested is None:
        return _written(_items().patch(item_id, changes, versions, _deadline(), by=by()))
    once = requested.once(_written, lambda item: (item["id"],))
    return idempotency.respond(_items().patch(item_id, changes, versions, _deadline(), once, by()))


@bp.delete("/items/<item_id:item_id>")
def delete_item(item_id: int) -> Response:
    _items().delete(item_id, _if_match(item_id), _deadline(), by())
    return Response(status=204)


@bp.get("/items")
def list_items() -> Response:
    prefer = header(PREFER_ENVIRON)
    query = parse_list_query(request.args, prefer, allowed=LIST_PARAMETERS)
    fields = parse_fields(request.args.get("fields"))
    page, served = _items().list(query, _deadline())
    sort = ("-" if query.descending else "") + query.sort
    next_cursor = None
    if page.next_key:
        next_cursor = pagination.encode(sort, page.next_key, query.filters)
    headers = {CACHE_HEADER: served}
    if next_cursor:
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        next_url = url_for(".list_items", **args, cursor=next_cursor)
        headers["Link"] = f'<{next_url}>; rel="next"'
    items = page.items if fields is None else [_project(item, fields) for item in page.items]
    body: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if query.count is not None:
        body["count"] = page.count
        headers[APPLIED] = f"count={query.count}"
    return json_response(body, headers=headers)


# --- helpers ------------------------------------------------------------------------------


def etag(item: Row) -> str:
    """Entity tag (without quotes): the id and the version, which moves on every write."""
    return f"{item['id']}-{item['version']}"


def _written(item: Row, status: int = 200) -> Response:
    """A write's answer: the item, or with `Prefer: return=minimal` no body; either way its
    ETag, and Location where a create or the missing body calls for it (201 for a create,
    else 200 with the item, 204 without)."""
    headers = {"ETag": f'"{etag(item)}"'}
    minimal = prefers_minimal(header(PREFER_ENVIRON))
    if status == 201 or minimal:
        headers["Location"] = url_for(".get_item", item_id=item["id"])
    if minimal:
        headers[APPLIED] = MINIMAL
        return Response(status=status if status == 201 else 204, headers=headers)
    return json_response(item, status, headers=headers)


def _fields_only() -> tuple[str, ...] | None:
    """`fields=` of a single item's GET (other parameters are ignored, as they always were).
    A GET without a query string, the usual one, parses none."""
    current = current_request()
    if not current.environ.get("QUERY_STRING"):
        return None
    asked = current.args.getlist("fields")
    if len(asked) > 1:
        raise BadParameter("fields", "must be given at most once")
    return parse_fields(asked[0] if asked else None)


def _project(item: Row, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: item[name] for name in fields}


def _if_match(item_id: int) -> list[int] | None:
    """The versions If-Match accepts; None when there is no precondition (or `*`, which only
    asks that the item exist, as every write here does anyway)."""
    tags = parse_entity_tags("If-Match", header("HTTP_IF_MATCH"))
    if tags is None or tags.star:
        return None
    versions = []
    for tag in tags.strong_values:  # If-Match uses strong comparison
        match = _ETAG.fullmatch(tag)
        if match and int(match["id"]) == item_id:
            versions.append(int(match["version"]))
    return versions  # may be empty: then nothing matches and the write is refused (412)
