"""Batch create: POST /v1/items with a JSON array (docs/api.md, "Creating many items").

Every row is checked by the rules of a single POST and every bad one reported at once, each
field named `[index].field` (`[3].price`, `[0].attributes.size`; `[7]` for a row that is not an
object), so a client can point at the row. Then all rows are inserted in one statement, all or
none. 201 answers the created items in the request's order, or with `Prefer: return=minimal`
(RFC 7240) only their ids and versions, which spares serialising the whole batch back.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from itemsapi.errors import FieldError, ValidationFailed
from itemsapi.web import idempotency
from itemsapi.web.context import of
from itemsapi.web.deps import deps
from itemsapi.web.prefer import APPLIED, MINIMAL, PREFER, prefers_minimal
from itemsapi.web.responses import json_response
from itemsapi.web.schemas import validate_write


def create(data: list[Any], requested: idempotency.Requested | None) -> Response:
    rows = validate_rows(data, deps().settings.max_batch)
    minimal = prefers_minimal(request.headers.get(PREFER))
    context = of(request.environ)
    deadline, by = context.deadline, context.principal or ""
    if requested is None:
        created = deps().items.create_many(rows, deadline, minimal=minimal, by=by)
        return _created(created, minimal)
    once = requested.once(lambda created: _created(created, minimal), _ids)
    return idempotency.respond(deps().items.create_many(rows, deadline, once, minimal, by))


def validate_rows(data: list[Any], max_batch: int) -> list[dict[str, Any]]:
    """Every row validated as a single POST's body; ValidationFailed naming each bad field of
    each bad row, or the batch as a whole when it is empty or too long."""
    if not 1 <= len(data) <= max_batch:
        message = f"a batch holds 1 to {max_batch} items; this one holds {len(data)}"
        raise ValidationFailed([FieldError(None, message)])
    rows: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for index, row in enumerate(data):
        try:
            rows.append(validate_write(row))
        except ValidationFailed as exc:
            errors.extend(_in_row(index, error) for error in exc.errors)
    if errors:
        raise ValidationFailed(errors)
    return rows


def _in_row(index: int, error: FieldError) -> FieldError:
    if error.field is None:  # the row as a whole: it is not an object
        return FieldError(f"[{index}]", "must be a JSON object")
    return FieldError(f"[{index}].{error.field}", error.message)


def _created(rows: list[dict[str, Any]], minimal: bool) -> Response:
    if not minimal:
        return json_response({"items": rows}, 201)
    # The rows are already {id, version}: the statement returned nothing else.
    return json_response({"items": rows}, 201, headers={APPLIED: MINIMAL})


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]
