"""The OpenAPI 3.1 document: the item schemas come from schemas.py (the definitions that validate
request bodies), the rest is described here once, next to nothing else."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from itemsapi import __version__
from itemsapi.api.items import LIMIT_DEFAULT, LIMIT_MAX, Q_MAX, SORT_CHOICES
from itemsapi.schemas import (
    COMPONENT_MARKER,
    NO_NUL,
    PRICE_MAX,
    Item,
    ItemPatch,
    ItemWrite,
    attributes_json_schemas,
)

JSON = "application/json"
PROBLEM = "application/problem+json"
MERGE_PATCH = "application/merge-patch+json"
ETAG_PATTERN = r'^"[0-9]+-[0-9]+"$'


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _header(name: str) -> dict[str, str]:
    return _ref("headers", name)


EXAMPLE_ITEM = {
    "id": 42,
    "name": "Widget",
    "description": "A useful widget",
    "price": 19.99,
    "quantity": 5,
    "attributes": {"color": "red", "size": {"w": 10, "h": 20}},
    "version": 3,
    "created_at": "2026-11-22T10:00:00.000000Z",
    "updated_at": "2026-11-22T10:05:00.000000Z",
}


def _problem_response(description: str, example: dict[str, Any], **headers: Any) -> dict:
    return {
        "description": description,
        "headers": {"X-Request-ID": _header("X-Request-ID"), **headers},
        "content": {PROBLEM: {"schema": _ref("schemas", "Problem"), "example": example}},
    }


def _problem(status: int, title: str, detail: str, kind: str | None = None, **extra: Any) -> dict:
    return {
        "type": f"urn:itemsapi:problem:{kind}" if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def _item_response(description: str, **headers: Any) -> dict:
    return {
        "description": description,
        "headers": {"ETag": _header("ETag"), "X-Request-ID": _header("X-Request-ID"), **headers},
        "content": {JSON: {"schema": _ref("schemas", "Item"), "example": EXAMPLE_ITEM}},
    }


def _json_response(description: str, schema: dict, example: Any, **headers: Any) -> dict:
    return {
        "description": description,
        "headers": {"X-Request-ID": _header("X-Request-ID"), **headers},
        "content": {JSON: {"schema": schema, "example": example}},
    }


def _responses(*codes: int | str, **specific: dict) -> dict[str, Any]:
    """The operation's own responses, plus shared ones by status code."""
    shared = {str(code): _ref("responses", SHARED_RESPONSES[str(code)]) for code in codes}
    return {**specific, **shared}


# What PUT and PATCH can go wrong with: the body, the item, the precondition, the database.
UPDATE_ERRORS = (400, 404, 409, 412, 413, 415, 422, 500, 503)

SHARED_RESPONSES = {
    "400": "BadRequest",
    "404": "NotFound",
    "409": "Conflict",
    "412": "PreconditionFailed",
    "413": "ContentTooLarge",
    "415": "UnsupportedMediaType",
    "422": "ValidationError",
    "500": "InternalError",
    "503": "Unavailable",
}

ITEM_ID = {
    "name": "item_id",
    "in": "path",
    "required": True,
    "description": "The item's id: a positive 64-bit integer. Anything else is simply not found.",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    "example": 42,
}


def _optional_header(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
        "example": example,
    }


IF_MATCH = _optional_header(
    "If-Match",
    "Make the write conditional on the item's current ETag (or `*`: it exists). "
    "A mismatch is 412 and nothing changes; check and write are one atomic statement.",
    '"42-3"',
)
IF_NONE_MATCH = _optional_header(
    "If-None-Match",
    "ETags the client holds: a match (weak comparison) gives 304 with no body.",
    '"42-3"',
)
X_REQUEST_ID = _optional_header(
    "X-Request-ID",
    "Echoed back when it is 1-128 characters of A-Za-z0-9._:- ; otherwise the server "
    "generates one. It appears in the server's log lines for the request.",
    "req-7f3a",
)

# From a created item to everything that can be done with it (schemathesis follows these).
ITEM_LINKS = {
    link: {"operationId": operation, "parameters": {"item_id": "$response.body#/id"}}
    for link, operation in (
        ("GetItem", "getItem"),
        ("ReplaceItem", "replaceItem"),
        ("PatchItem", "patchItem"),
        ("DeleteItem", "deleteItem"),
    )
}


def _paths() -> dict[str, Any]:
    write_body = {
        "required": True,
        "content": {
            JSON: {
                "schema": _ref("schemas", "ItemWrite"),
                "example": {"name": "Widget", "price": 19.99, "attributes": {"color": "red"}},
            }
        },
    }
    patch_schema = {
        "schema": _ref("schemas", "ItemPatch"),
        "example": {"price": None, "attributes": {"color": None, "size": {"h": 25}}},
    }
    return {
        "/items": {
            "post": {
                "operationId": "createItem",
                "summary": "Create an item",
                "tags": ["items"],
                "parameters": [X_REQUEST_ID],
                "requestBody": write_body,
                "responses": _responses(
                    400,
                    409,
                    413,
                    415,
                    422,
                    500,
                    503,
                    **{
                        "201": {
                            **_item_response("Created.", Location=_header("Location")),
                            "links": ITEM_LINKS,
                        }
                    },
                ),
            },
            "get": {
                "operationId": "listItems",
                "summary": "List items, a page at a time (keyset pagination)",
                "tags": ["items"],
                "parameters": [*_list_parameters(), X_REQUEST_ID],
                "responses": _responses(
                    400,
                    500,
                    503,
                    **{
                        "200": _json_response(
                            "A page of items, in order; next_cursor is null on the last page.",
                            _ref("schemas", "ItemPage"),
                            {"items": [EXAMPLE_ITEM], "next_cursor": "WyJpZCIsNDIsNDJd"},
                            Link=_header("Link"),
                        )
                    },
                ),
            },
        },
        "/items/{item_id}": {
            "parameters": [ITEM_ID, X_REQUEST_ID],
            "get": {
                "operationId": "getItem",
                "summary": "Read an item",
                "tags": ["items"],
                "parameters": [IF_NONE_MATCH],
                "responses": _responses(
                    404,
                    500,
                    503,
                    **{
                        "200": _item_response("The item."),
                        "304": {
                            "description": "Not modified: If-None-Match matched. No body.",
                            "headers": {
                                "ETag": _header("ETag"),
                                "X-Request-ID": _header("X-Request-ID"),
                            },
                        },
                    },
                ),
            },
            "put": {
                "operationId": "replaceItem",
                "summary": "Replace an item (omitted optional fields reset to their defaults)",
                "tags": ["items"],
                "parameters": [IF_MATCH],
                "requestBody": write_body,
                "responses": _responses(
                    *UPDATE_ERRORS,
                    **{"200": _item_response("Replaced.")},
                ),
            },
            "patch": {
                "operationId": "patchItem",
                "summary": "Change some fields (JSON Merge Patch, RFC 7396)",
                "description": (
                    "Only the given fields change. `price: null` clears the price; null for any "
                    "other field is 422. `attributes` merges recursively (null removes a key) in "
                    "the same atomic statement. `{}` changes nothing and returns the item."
                ),
                "tags": ["items"],
                "parameters": [IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {MERGE_PATCH: patch_schema, JSON: patch_schema},
                },
                "responses": _responses(
                    *UPDATE_ERRORS,
                    **{"200": _item_response("Patched (or unchanged, for an empty patch).")},
                ),
            },
            "delete": {
                "operationId": "deleteItem",
                "summary": "Delete an item",
                "tags": ["items"],
                "parameters": [IF_MATCH],
                "responses": _responses(
                    404,
                    412,
                    500,
                    503,
                    **{
                        "204": {
                            "description": "Deleted. No body.",
                            "headers": {"X-Request-ID": _header("X-Request-ID")},
                        }
                    },
                ),
            },
        },
        "/live": _probe(
            "live", "Liveness: 200 while the process serves. Never touches the database."
        ),
        "/ready": _probe(
            "ready",
            "Readiness: 200 when the database answers within a short bound, else 503.",
            unavailable=True,
        ),
        "/health": _probe(
            "health",
            "Detailed health report: version, environment, database latency and pool figures.",
            unavailable=True,
            schema=_ref("schemas", "Health"),
        ),
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics, summed over all worker processes",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "headers": {"X-Request-ID": _header("X-Request-ID")},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["operations"],
                "responses": {
                    "200": _json_response("The OpenAPI 3.1 document.", {"type": "object"}, {})
                },
            }
        },
    }


def _list_parameters() -> list[dict[str, Any]]:
    price_bound = {"type": "number", "minimum": 0, "maximum": PRICE_MAX}
    return [
        {
            "name": "limit",
            "in": "query",
            "description": "Items per page.",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": LIMIT_MAX,
                "default": LIMIT_DEFAULT,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "description": (
                "Opaque: the next_cursor of the previous page, for the same sort order. A cursor "
                "this API did not issue, or one issued for another sort order, is 400."
            ),
            "schema": {"type": "string"},
        },
        {
            "name": "sort",
            "in": "query",
            "description": "Sort key; `-` for descending. Ties are broken by id.",
            "schema": {"type": "string", "enum": list(SORT_CHOICES), "default": "id"},
        },
        {
            "name": "q",
            "in": "query",
            "description": "Case-insensitive substring of name; % and _ match literally.",
            "schema": {"type": "string", "maxLength": Q_MAX, "pattern": NO_NUL},
        },
        {
            "name": "min_price",
            "in": "query",
            "description": "Inclusive lower price bound.",
            "schema": price_bound,
        },
        {
            "name": "max_price",
            "in": "query",
            "description": "Inclusive upper price bound.",
            "schema": price_bound,
        },
    ]


def _probe(name: str, summary: str, *, unavailable: bool = False, schema: dict | None = None):
    schema = schema or _ref("schemas", "ProbeStatus")
    responses = {"200": _json_response("Up.", schema, {"status": "ok"})}
    if unavailable:
        responses["503"] = _json_response(
            "The database does not answer in time.",
            schema,
            {"status": "unavailable"},
            **{"Retry-After": _header("Retry-After")},
        )
    return {
        "get": {
            "operationId": name,
            "summary": summary,
            "tags": ["operations"],
            "responses": responses,
        }
    }


def _resolve_markers(node: Any) -> Any:
    if isinstance(node, dict) and COMPONENT_MARKER in node:
        return _ref("schemas", node[COMPONENT_MARKER])
    if isinstance(node, dict):
        return {key: _resolve_markers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_markers(value) for value in node]
    return node


def _components() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(ItemWrite, "validation"), (ItemPatch, "validation"), (Item, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    schemas = {**_resolve_markers(definitions["$defs"]), **attributes_json_schemas()}
    schemas["ItemPage"] = {
        "type": "object",
        "required": ["items", "next_cursor"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref("schemas", "Item")},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "Every bad field (422) or parameter (400).",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }
    schemas["ProbeStatus"] = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "reason": {"type": ["string", "null"]}},
    }
    schemas["Health"] = {
        "type": "object",
        "required": ["status", "version", "environment", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "version": {"type": "string"},
            "environment": {"type": "string"},
            "checks": {
                "type": "object",
                "required": ["database"],
                "properties": {
                    "database": {
                        "type": "object",
                        "required": ["status", "latency_ms", "pool"],
                        "properties": {
                            "status": {"type": "string", "enum": ["ok", "unavailable"]},
                            "latency_ms": {"type": ["number", "null"]},
                            "error": {"type": ["string", "null"]},
                            "pool": {
                                "type": "object",
                                "required": ["size", "available", "waiting"],
                                "properties": {
                                    k: {"type": "integer", "minimum": 0}
                                    for k in ("size", "available", "waiting")
                                },
                            },
                        },
                    }
                },
            },
        },
    }
    string = {"type": "string"}
    headers = {
        "ETag": {
            "description": 'Strong entity tag: "<id>-<version>".',
            "required": True,
            "schema": {"type": "string", "pattern": ETAG_PATTERN},
        },
        "Location": {"description": "Path of the new item.", "required": True, "schema": string},
        "Link": {
            "description": 'The next page: `<...>; rel="next"` (absent on the last page).',
            "schema": string,
        },
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
        "X-Request-ID": {
            "description": "The request's id: the client's own when sane, else generated.",
            "required": True,
            "schema": string,
        },
        "Allow": {"description": "The methods the resource supports.", "schema": string},
        "Accept-Patch": {"description": "Media types PATCH accepts.", "schema": string},
    }
    retry = {"Retry-After": _header("Retry-After")}
    responses = {
        "BadRequest": _problem_response(
            "Malformed JSON, or a bad query parameter.",
            _problem(
                400,
                "Invalid query parameter",
                "query parameter 'limit': must be an integer from 1 to 100",
                "invalid-parameter",
                errors=[{"field": "limit", "message": "must be an integer from 1 to 100"}],
            ),
        ),
        "NotFound": _problem_response(
            "No such item (or no such path).",
            _problem(404, "Item not found", "item 42 does not exist", "item-not-found"),
        ),
        "MethodNotAllowed": _problem_response(
            "The resource exists but not with this method (any undocumented method).",
            _problem(405, "Method Not Allowed", "The method is not allowed for the requested URL."),
            Allow=_header("Allow"),
        ),
        "Conflict": _problem_response(
            "The change conflicts with existing data.",
            _problem(409, "Conflict", "the change conflicts with existing data", "conflict"),
        ),
        "PreconditionFailed": _problem_response(
            "If-Match did not match the current version; nothing changed.",
            _problem(
                412,
                "Item has changed",
                "item 42 has changed: its current version is 4",
                "precondition-failed",
            ),
        ),
        "ContentTooLarge": _problem_response(
            "The body is larger than the configured limit (1 MiB by default).",
            _problem(
                413,
                "Request Entity Too Large",
                "The data value transmitted exceeds the capacity limit.",
            ),
        ),
        "UnsupportedMediaType": _problem_response(
            "The body was not sent as JSON (or, for PATCH, as a merge patch).",
            _problem(415, "Unsupported Media Type", "the body must be sent as application/json"),
            **{"Accept-Patch": _header("Accept-Patch")},
        ),
        "ValidationError": _problem_response(
            "The body breaks the contract; every bad field is listed.",
            _problem(
                422,
                "Invalid item",
                "the request body has 2 invalid fields",
                "validation-error",
                errors=[
                    {"field": "name", "message": "is required"},
                    {"field": "version", "message": "is read-only"},
                ],
            ),
        ),
        "Unavailable": _problem_response(
            "The database is unreachable, the pool exhausted, or a statement timed out.",
            _problem(
                503,
                "Service unavailable",
                "the database is not available right now; try again shortly",
                "database-unavailable",
            ),
            **retry,
        ),
        "InternalError": _problem_response(
            "A bug. The body says nothing about internals; the log has the details.",
            _problem(
                500,
                "Internal Server Error",
                "an internal error occurred; it has been logged",
                "internal-error",
            ),
        ),
    }
    return {"schemas": schemas, "headers": headers, "responses": responses}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once per process)."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "itemsapi",
            "version": __version__,
            "summary": "CRUD on items, with ETags, conditional writes and keyset pagination.",
            "description": (
                "Errors are RFC 9457 problem details (`application/problem+json`). Every "
                "response carries `X-Request-ID`. A method a path does not document is 405 "
                "with `Allow` (see the MethodNotAllowed response)."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "items", "description": "The items resource."},
            {"name": "operations", "description": "Probes, metrics and this document."},
        ],
        "paths": _paths(),
        "components": _components(),
    }
