"""The item contract: one pydantic definition validates request bodies and publishes JSON Schema
(the OpenAPI document's components come from here, see openapi.py).

Bodies are parsed with orjson (strict RFC 8259: no NaN, no Infinity) and then validated in
strict mode (a boolean is not an integer, a string is not a number). Every bad field is
reported, not only the first.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from itemsapi.db.statements import WRITABLE_COLUMNS
from itemsapi.errors import FieldError, ValidationFailed

READ_ONLY_FIELDS = ("id", "version", "created_at", "updated_at")

# Patterns, enforced by pydantic and published as they are: PostgreSQL text cannot hold NUL, and a
# name needs one character that is not white space. White space is Unicode's White_Space set,
# spelled out, because \s means slightly different sets in Python, Rust (pydantic), ECMAScript
# and PostgreSQL; the database's CHECK uses the same class.
WHITESPACE = r"\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK_NO_NUL = rf"^[^\u0000]*[^\u0000{WHITESPACE}][^\u0000]*$"

ITEM_ID_MAX = 2**63 - 1  # ids are positive bigints
PRICE_MAX = 99999999.99
QUANTITY_MAX = 2147483647
# attributes: any JSON object, within limits every JSON tool agrees on. Containers nest at most
# ATTRIBUTES_MAX_DEPTH deep (attributes itself is the first), and numbers stay within
# +-(2**53 - 1), the range in which every JSON implementation keeps them exact (I-JSON, RFC 7493).
ATTRIBUTES_MAX_DEPTH = 8
JSON_NUMBER_LIMIT = 2**53 - 1


def check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value, "attributes", 1)
    return value


def _check_json(value: Any, path: str, depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: must not contain NUL characters")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int | float):
        if not -JSON_NUMBER_LIMIT <= value <= JSON_NUMBER_LIMIT:
            raise ValueError(f"{path}: numbers must lie within +-(2**53 - 1)")
    else:  # dict or list: orjson makes nothing else
        if depth > ATTRIBUTES_MAX_DEPTH:
            raise ValueError(f"{path}: nests deeper than {ATTRIBUTES_MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise ValueError(f"{path}: keys must not contain NUL characters")
                _check_json(item, f"{path}.{key}", depth + 1)
        else:
            for index, item in enumerate(value):
                _check_json(item, f"{path}[{index}]", depth + 1)


def _integral_float_as_int(value: Any) -> Any:
    # JSON has one number type: 7.0 is the integer 7 (as JSON Schema says). Strict mode still
    # refuses 7.5, "7" and true.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _at_most_two_decimals(value: float) -> float:
    # Decided on the number as written, the way JSON Schema's multipleOf reads a decimal: a float
    # is the nearest double to a number with two decimals exactly when rounding it to two decimals
    # gives it back (exact within PRICE_MAX). pydantic's float modulo rejects some of these,
    # 12576115.79 among them.
    if round(value, 2) != value:
        raise PydanticCustomError("multiple_of", "must have at most 2 decimal places")
    return value


CENT = Decimal("0.01")
PRICE_TEXT_MAX = 32  # characters of a price in a query or a cursor, checked before parsing


def price_from_text(text: str) -> Decimal:
    """A price written in a query parameter or a cursor, by the body's rules: 0 to PRICE_MAX, at
    most two decimal places; ValueError otherwise. The length is bounded before parsing, and the
    value goes on quantized, so an exponent such as 1e-99999999 never reaches the database."""
    if len(text) > PRICE_TEXT_MAX:
        raise ValueError("too long")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("not a number") from None
    # Compared before quantize, which could not represent a huge value.
    if not value.is_finite() or not 0 <= value <= Decimal(str(PRICE_MAX)):
        raise ValueError("out of range")
    if value.quantize(CENT) != value:
        raise ValueError("more than two decimal places")
    return value.quantize(CENT)


Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK_NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
Price = Annotated[
    float,
    Field(ge=0, le=PRICE_MAX, json_schema_extra={"multipleOf": 0.01}),
    AfterValidator(_at_most_two_decimals),
]
# Field before BeforeValidator: the other way round, pydantic publishes ge/le, not minimum/maximum.
Quantity = Annotated[int, Field(ge=0, le=QUANTITY_MAX), BeforeValidator(_integral_float_as_int)]
# pydantic resolves a "$ref" it meets itself, so the field publishes a marker that openapi.py
# replaces with a reference to the Attributes component.
COMPONENT_MARKER = "x-itemsapi-component"
Attributes = Annotated[
    dict[str, Any],
    AfterValidator(check_attributes),
    WithJsonSchema({COMPONENT_MARKER: "Attributes"}),
]

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ItemWrite(BaseModel):
    """Body of POST /items and PUT /items/{id}: omitted optional fields take their defaults."""

    model_config = _STRICT

    name: Name
    description: Description = ""
    price: Price | None = None
    quantity: Quantity = 0
    attributes: Attributes = Field(default_factory=dict)


def without_defaults(schema: dict[str, Any]) -> None:
    """Drops the fields' "default"s from a model's JSON Schema (its json_schema_extra): an absent
    PATCH field is left alone, and an absent response field is simply not there."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class ItemPatch(BaseModel):
    """Body of PATCH /items/{id} (JSON Merge Patch): only the given fields change.

    `price: null` clears the price; null for any other field is an error. `attributes` is a
    merge patch of its own: objects merge recursively and null removes a key.
    """

    model_config = ConfigDict(**_STRICT, json_schema_extra=without_defaults)

    name: Name = None  # type: ignore[assignment]  # absent; null is rejected by the type
    description: Description = None  # type: ignore[assignment]
    price: Price | None = None
    quantity: Quantity = None  # type: ignore[assignment]
    attributes: Attributes = None  # type: ignore[assignment]


def _read_only(description: str) -> Any:
    return Field(description=description, json_schema_extra={"readOnly": True})


class Item(BaseModel):
    """An item as the API returns it. Published only: responses are built by the database."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(ge=1), _read_only("Assigned by the server.")]
    name: Name
    description: Description
    price: Price | None
    quantity: Quantity
    attributes: Attributes
    version: Annotated[int, Field(ge=1), _read_only("1 on create, +1 on every write.")]
    created_at: Annotated[datetime, _read_only("RFC 3339, UTC.")]
    updated_at: Annotated[datetime, _read_only("RFC 3339, UTC; moves on every write.")]


def validate_write(data: Any) -> dict[str, Any]:
    """A complete row for INSERT or PUT: every writable field, defaults filled in."""
    item = _validate(ItemWrite, data)
    return item.model_dump()


def validate_patch(data: Any) -> dict[str, Any]:
    """Only the fields the client sent, with the values it sent."""
    patch = _validate(ItemPatch, data)
    return {
        name: getattr(patch, name) for name in WRITABLE_COLUMNS if name in patch.model_fields_set
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
        # Raised by check_attributes, with its own path inside attributes.
        message = str(error["ctx"]["error"])
        path, _, reason = message.partition(": ")
        return FieldError(path, reason)
    return FieldError(field, _MESSAGES.get(kind, error["msg"]))
