"""The item contract: one pydantic definition validates request bodies and publishes JSON Schema.

Bodies are parsed with orjson (strict RFC 8259: no NaN, no Infinity) and then validated in
strict mode (a boolean is not an integer, a string is not a number). Every bad field is
reported, not only the first.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from itemsapi.exceptions import FieldError, ValidationFailed

WRITABLE_FIELDS = ("name", "description", "price", "quantity", "attributes")
READ_ONLY_FIELDS = ("id", "version", "created_at", "updated_at")

# JSON Schema patterns (also enforced by pydantic): PostgreSQL text cannot hold NUL, and a name
# needs at least one visible character.
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK_NO_NUL = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"

PRICE_MAX = 99999999.99
QUANTITY_MAX = 2147483647


def _reject_nul(value: Any, path: str = "attributes") -> Any:
    """jsonb cannot store NUL in keys or strings; find it anywhere in a nested value."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError(f"{path}: keys must not contain NUL characters")
            _reject_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nul(item, f"{path}[{index}]")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK_NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
Price = Annotated[float, Field(ge=0, le=PRICE_MAX, multiple_of=0.01)]
Quantity = Annotated[int, Field(ge=0, le=QUANTITY_MAX)]
Attributes = Annotated[dict[str, Any], AfterValidator(_reject_nul)]

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ItemWrite(BaseModel):
    """Body of POST /items and PUT /items/{id}: omitted optional fields take their defaults."""

    model_config = _STRICT

    name: Name
    description: Description = ""
    price: Price | None = None
    quantity: Quantity = 0
    attributes: Attributes = Field(default_factory=dict)


def _without_defaults(schema: dict[str, Any]) -> None:
    # A PATCH field that is absent is left alone; publishing "default" would say otherwise.
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class ItemPatch(BaseModel):
    """Body of PATCH /items/{id} (JSON Merge Patch): only the given fields change.

    `price: null` clears the price; null for any other field is an error. `attributes` is a
    merge patch of its own: objects merge recursively and null removes a key.
    """

    model_config = ConfigDict(**_STRICT, json_schema_extra=_without_defaults)

    name: Name = None  # type: ignore[assignment]  # absent; null is rejected by the type
    description: Description = None  # type: ignore[assignment]
    price: Price | None = None
    quantity: Quantity = None  # type: ignore[assignment]
    attributes: Attributes = None  # type: ignore[assignment]


def parse_json(raw: bytes) -> Any:
    """Decode a request body; raises ValueError with orjson's reason when it is not JSON."""
    return orjson.loads(raw)


def validate_write(data: Any) -> dict[str, Any]:
    """A complete row for INSERT or PUT: every writable field, defaults filled in."""
    item = _validate(ItemWrite, data)
    return item.model_dump()


def validate_patch(data: Any) -> dict[str, Any]:
    """Only the fields the client sent, with the values it sent."""
    patch = _validate(ItemPatch, data)
    return {
        name: getattr(patch, name) for name in WRITABLE_FIELDS if name in patch.model_fields_set
    }


def _validate(model: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed([_field_error(e) for e in exc.errors()]) from None


_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "dict_type": "must be a JSON object",
    "model_type": "the body must be a JSON object",
    "finite_number": "must be a finite number",
    "multiple_of": "must have at most 2 decimal places",
}


def _field_error(error: Any) -> FieldError:
    kind = error["type"]
    field = ".".join(str(part) for part in error["loc"]) or None
    if kind == "extra_forbidden":
        known = field in READ_ONLY_FIELDS
        return FieldError(field, "is read-only" if known else "is not a field of an item")
    if error.get("input", ...) is None and kind.endswith("_type"):
        return FieldError(field, "must not be null")
    if kind == "string_pattern_mismatch":
        blank = field == "name" and "\x00" not in error["input"]
        return FieldError(
            field, "must not be blank" if blank else "must not contain NUL characters"
        )
    if kind == "value_error":
        # Raised by _reject_nul with its own path inside attributes.
        message = str(error["ctx"]["error"])
        path, _, reason = message.partition(": ")
        return FieldError(path, reason)
    return FieldError(field, _MESSAGES.get(kind, error["msg"]))
