"""The OpenAPI 3.1 document: the hand-written part (openapi.yaml: paths, prose, examples, shared
responses and headers) completed with what the code defines once: the body schemas, from the
pydantic models that validate requests and shape responses, and the bounds of the parameters,
from the modules that enforce them."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from itemsapi import __version__
from itemsapi.config import Settings
from itemsapi.web.filter_params import (
    IDS_MAX,
    Q_MAX,
    Q_MIN_RUN,
    SEARCH_MAX,
    TIME_TEXT_MAX,
)
from itemsapi.web.idempotency import KEY_MAX, KEY_PATTERN
from itemsapi.web.listing import CURSOR_MAX, ITEM_FIELDS, LIMIT_DEFAULT, LIMIT_MAX, SORT_CHOICES
from itemsapi.web.models import PUBLISHED
from itemsapi.web.schemas import (
    ATTRIBUTES_MAX_DEPTH,
    COMPONENT_MARKER,
    ITEM_ID_MAX,
    JSON_NUMBER_LIMIT,
    NO_NUL,
    PRICE_MAX,
    QUANTITY_MAX,
    Item,
    ItemPatch,
    ItemWrite,
)

SCHEMA_REF = "#/components/schemas/"
# Added after /v1 (web/transfer.py): served under /v1 only, so they have no deprecated copies.
V1_ONLY = frozenset(
    {"/v1/items/export", "/v1/items/import", "/v1/changes", "/v1/items/{item_id}/history"}
)
UNVERSIONED_SUFFIX = "Unversioned"  # createItemUnversioned: POST /items, deprecated for /v1
# Request bodies are published as they validate, responses as they serialize.
MODELS = [
    (ItemWrite, "validation"),
    (ItemPatch, "validation"),
    (Item, "serialization"),
    *((model, "serialization") for model in PUBLISHED),
]


def parameter_schemas() -> dict[str, dict[str, Any]]:
    """The schemas of the parameters openapi.yaml leaves without one, by parameter name."""
    price = {"type": "number", "minimum": 0, "maximum": PRICE_MAX, "multipleOf": 0.01}
    return {
        "item_id": {"type": "integer", "minimum": 1, "maximum": ITEM_ID_MAX},
        "limit": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
        "sort": {"type": "string", "enum": list(SORT_CHOICES), "default": "id"},
        # No NUL, and a run of letters or digits (Python's \w less `_`, as listing.py reads it).
        "q": {
            "type": "string",
            "minLength": Q_MIN_RUN,
            "maxLength": Q_MAX,
            "pattern": f"^[^\\u0000]*[^\\W_]{{{Q_MIN_RUN}}}[^\\u0000]*$",
        },
        "cursor": {"type": "string", "maxLength": CURSOR_MAX},
        "min_price": price,
        "max_price": price,
        **filter_schemas(),
        "Idempotency-Key": {"type": "string", "maxLength": KEY_MAX, "pattern": KEY_PATTERN},
    }


def filter_schemas() -> dict[str, dict[str, Any]]:
    """The schemas of the list's filters, search and fields, from filter_params.py's bounds."""
    quantity = {"type": "integer", "minimum": 0, "maximum": QUANTITY_MAX}
    instant = {"type": "string", "format": "date-time", "maxLength": TIME_TEXT_MAX}
    return {
        "ids": {
            "type": "string",
            "pattern": f"^[1-9][0-9]{{0,18}}(,[1-9][0-9]{{0,18}}){{0,{IDS_MAX - 1}}}$",
        },
        "has_price": {"type": "boolean"},
        "min_quantity": quantity,
        "max_quantity": quantity,
        **dict.fromkeys(
            ("created_from", "created_before", "updated_from", "updated_before"), instant
        ),
        # A word of ASCII letters or digits not excluded by a leading `-` (filter_params.search
        # takes any letter, in any script).
        "search": {
            "type": "string",
            "maxLength": SEARCH_MAX,
            "pattern": "^(?:[^\\u0000]*\\s)?"
            "(?:[A-Za-z0-9]|[^\\s\\-\\u0000][^\\s\\u0000]*?[A-Za-z0-9])[^\\u0000]*$",
        },
        "fields": {
            "type": "string",
            "pattern": f"^({'|'.join(ITEM_FIELDS)})(,({'|'.join(ITEM_FIELDS)}))*$",
        },
    }


def sparse_item_schema(item: dict[str, Any]) -> dict[str, Any]:
    """An item with only the fields `fields=` asked for: Item's properties, none required."""
    sparse = {key: value for key, value in item.items() if key != "required"}
    return {
        **sparse,
        "title": "SparseItem",
        "description": "An item's fields asked for by fields=.",
    }


def component_schemas() -> dict[str, Any]:
    """The models' JSON Schemas, under the models' names; the models a published one is made of
    (the health report's parts, a problem's error) are inlined rather than published."""
    _, generated = models_json_schema(MODELS, ref_template=SCHEMA_REF + "{model}")
    definitions = generated["$defs"]
    published = {model.__name__ for model, _ in MODELS}
    parts = {name: definitions.pop(name) for name in set(definitions) - published}
    schemas = _finish(definitions, parts)
    schemas["SparseItem"] = sparse_item_schema(schemas["Item"])
    page = schemas["ItemPage"]["properties"]["items"]
    page["items"] = {"anyOf": [page["items"], {"$ref": f"{SCHEMA_REF}SparseItem"}]}
    return {**schemas, **attributes_schemas(), "ItemBatch": batch_schema()}


def batch_schema() -> dict[str, Any]:
    """The body of a batch create: the server's default ITEMSAPI_MAX_BATCH is published."""
    return {
        "type": "array",
        "description": "Items to create, all or none (POST /v1/items with a JSON array).",
        "items": {"$ref": f"{SCHEMA_REF}ItemWrite"},
        "minItems": 1,
        "maxItems": Settings.model_fields["max_batch"].default,
    }


def attributes_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of attributes, as components: the same limits as schemas.check_attributes.

    Without recursive references (which many tools cannot generate data for): JsonValue1 is a
    scalar, JsonValueN a scalar or a container of JsonValue(N-1), so JsonValueN nests N-1
    containers and attributes, itself one, holds JsonValue(ATTRIBUTES_MAX_DEPTH)."""
    keys = {"pattern": NO_NUL}
    scalars: list[dict[str, Any]] = [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number", "minimum": -JSON_NUMBER_LIMIT, "maximum": JSON_NUMBER_LIMIT},
        {"type": "boolean"},
        {"type": "null"},
    ]
    schemas: dict[str, dict[str, Any]] = {}
    for level in range(1, ATTRIBUTES_MAX_DEPTH + 1):
        options = list(scalars)
        if level > 1:
            inner = {"$ref": f"{SCHEMA_REF}JsonValue{level - 1}"}
            options.append({"type": "array", "items": inner})
            options.append({"type": "object", "propertyNames": keys, "additionalProperties": inner})
        schemas[f"JsonValue{level}"] = {"anyOf": options}
    schemas["Attributes"] = {
        "type": "object",
        "description": (
            "Free-form JSON object. Strings and keys without NUL; numbers within +-(2**53 - 1); "
            f"objects and arrays nested at most {ATTRIBUTES_MAX_DEPTH} deep, this one included."
        ),
        "propertyNames": keys,
        "additionalProperties": {"$ref": f"{SCHEMA_REF}JsonValue{ATTRIBUTES_MAX_DEPTH}"},
    }
    return schemas


def _finish(node: Any, parts: dict[str, Any]) -> Any:
    """Inlines references to `parts` and turns component markers into references."""
    if isinstance(node, list):
        return [_finish(value, parts) for value in node]
    if not isinstance(node, dict):
        return node
    if COMPONENT_MARKER in node:
        return {"$ref": SCHEMA_REF + node[COMPONENT_MARKER]}
    part = node.get("$ref", "").removeprefix(SCHEMA_REF)
    if part in parts:
        return _finish(parts[part], parts)
    return {key: _finish(value, parts) for key, value in node.items()}


def _parameters(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path_item in document["paths"].values():
        found.extend(path_item.get("parameters", []))
        for operation in path_item.values():
            if isinstance(operation, dict):
                found.extend(operation.get("parameters", []))
    return found


def unversioned_paths(paths: dict[str, Any], sunset: str | None = None) -> dict[str, Any]:
    """The /v1 item paths again without the prefix, as served before /v1: deprecated, with
    operation ids of their own, and each response carrying Deprecation and the successor Link
    (and Sunset, with the date they end in each operation's description, when there is one)."""
    copies = {}
    for path, path_item in paths.items():
        if not path.startswith("/v1/") or path in V1_ONLY:
            continue
        path_item = copy.deepcopy(path_item)
        for operation in path_item.values():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            operation["operationId"] += UNVERSIONED_SUFFIX
            operation["deprecated"] = True
            if sunset is not None:
                ending = f"Deprecated: this path stops answering on {sunset} (Sunset)."
                operation["description"] = f"{ending}\n\n{operation.get('description', '')}"
                operation["x-sunset"] = sunset
            for response in operation["responses"].values():
                if "$ref" in response:  # a shared response: its headers are shared too
                    continue
                headers = response.setdefault("headers", {})
                headers["Deprecation"] = {"$ref": "#/components/headers/Deprecation"}
                headers["Link"] = {"$ref": "#/components/headers/Successor"}
                if sunset is not None:
                    headers["Sunset"] = {"$ref": "#/components/headers/Sunset"}
                for link in response.get("links", {}).values():
                    link["operationId"] += UNVERSIONED_SUFFIX
        copies[path.removeprefix("/v1")] = path_item
    return copies


@cache
def document(unversioned: bool = True, sunset: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once per process and arguments): with the unversioned
    paths unless they are switched off, and the date they end (an HTTP-date) if one is set."""
    text = resources.files("itemsapi.web").joinpath("openapi.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(text)
    spec["info"] = {"title": spec["info"].pop("title"), "version": __version__, **spec["info"]}
    spec["components"] = {"schemas": component_schemas(), **spec["components"]}
    if unversioned:
        spec["paths"].update(unversioned_paths(spec["paths"], sunset))
    schemas = parameter_schemas()
    for parameter in _parameters(spec):
        if "schema" not in parameter and "content" not in parameter:
            parameter["schema"] = schemas[parameter["name"]]
    return spec
