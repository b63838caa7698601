"""The /items resource. Views stay thin: parse and validate, call the repository, respond."""

from __future__ import annotations

import re
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request, url_for
from werkzeug.exceptions import BadRequest, NotFound, UnsupportedMediaType
from werkzeug.routing import BaseConverter

from itemsapi import pagination
from itemsapi.cached_items import CACHED_KEY, CachedItemRepository
from itemsapi.listing import parse_list_query
from itemsapi.repository import Row
from itemsapi.responses import json_response
from itemsapi.schemas import ITEM_ID_MAX, parse_json, validate_patch, validate_write

bp = Blueprint("items", __name__)

VERSION_PREFIX = "/v1"
# The app registers this blueprint twice: under /v1, and as it was before /v1 under this name.
UNVERSIONED = "unversioned"

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
_ETAG = re.compile(r"(?P<id>[0-9]{1,19})-(?P<version>[0-9]{1,18})")


class ItemIdConverter(BaseConverter):
    """Item ids are positive bigints; anything else in the path is simply not an item (404).

    Out of range raises NotFound itself: a ValidationError would let werkzeug answer 405 for
    PUT/PATCH/DELETE on a path whose GET it had considered."""

    regex = r"\d+"

    def to_python(self, value: str) -> int:
        item_id = int(value) if len(value) <= 19 else 0
        if not 1 <= item_id <= ITEM_ID_MAX:
            raise NotFound(f"item {value[:40]} does not exist")
        return item_id

    def to_url(self, value: Any) -> str:
        return str(int(value))


CACHE_HEADER = "X-Cache"  # hit | miss | bypass: how a cached route's read was served


def _repository() -> CachedItemRepository:
    return current_app.extensions[CACHED_KEY]


@bp.post("/items")
def create_item() -> Response:
    item = _repository().create(validate_write(_json_body(JSON)))
    return _item_response(item, 201, Location=url_for(".get_item", item_id=item["id"]))


@bp.get("/items/<item_id:item_id>")
def get_item(item_id: int) -> Response:
    item, served = _repository().get(item_id)
    tag = etag(item)
    if request.if_none_match.contains_weak(tag):
        return Response(status=304, headers={"ETag": f'"{tag}"', CACHE_HEADER: served})
    return _item_response(item, **{CACHE_HEADER: served})


@bp.put("/items/<item_id:item_id>")
def replace_item(item_id: int) -> Response:
    values = validate_write(_json_body(JSON))
    return _item_response(_repository().replace(item_id, values, _if_match(item_id)))


@bp.patch("/items/<item_id:item_id>")
def patch_item(item_id: int) -> Response:
    changes = validate_patch(_json_body(MERGE_PATCH, JSON))
    return _item_response(_repository().patch(item_id, changes, _if_match(item_id)))


@bp.delete("/items/<item_id:item_id>")
def delete_item(item_id: int) -> Response:
    _repository().delete(item_id, _if_match(item_id))
    return Response(status=204)


@bp.get("/items")
def list_items() -> Response:
    query = parse_list_query(request.args)
    page, served = _repository().list(query)
    sort = ("-" if query.descending else "") + query.sort
    next_cursor = pagination.encode(sort, page.next_key) if page.next_key else None
    headers = {CACHE_HEADER: served}
    if next_cursor:
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        next_url = url_for(".list_items", **args, cursor=next_cursor)
        headers["Link"] = f'<{next_url}>; rel="next"'
    return json_response({"items": page.items, "next_cursor": next_cursor}, headers=headers)


@bp.after_request
def mark_unversioned(response: Response) -> Response:
    """The unversioned paths answer as before, saying they are deprecated and naming the /v1
    path that succeeds each one (RFC 8594's Link relation)."""
    if request.blueprint == UNVERSIONED:
        successor = VERSION_PREFIX + request.full_path.rstrip("?")
        response.headers["Deprecation"] = "true"
        response.headers.add("Link", f'<{successor}>; rel="successor-version"')
    return response


# --- helpers ------------------------------------------------------------------------------


def etag(item: Row) -> str:
    """Entity tag (without quotes): the id and the version, which moves on every write."""
    return f"{item['id']}-{item['version']}"


def _item_response(item: Row, status: int = 200, **headers: str) -> Response:
    return json_response(item, status, headers={"ETag": f'"{etag(item)}"', **headers})


def _if_match(item_id: int) -> list[int] | None:
    """The versions If-Match accepts; None when there is no precondition (or `*`, which only
    asks that the item exist, as every write here does anyway)."""
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match
    if tags.star_tag:
        return None
    versions = []
    for tag in tags.as_set(include_weak=False):  # If-Match uses strong comparison
        match = _ETAG.fullmatch(tag or "")
        if match and int(match["id"]) == item_id:
            versions.append(int(match["version"]))
    return versions  # may be empty: then nothing matches and the write is refused (412)


def _json_body(*accepted: str) -> Any:
    if request.mimetype not in accepted:
        exc = UnsupportedMediaType(f"the body must be sent as {' or '.join(accepted)}")
        if MERGE_PATCH in accepted:
            exc.response = Response(headers={"Accept-Patch": MERGE_PATCH})
        raise exc
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413
    try:
        return parse_json(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
