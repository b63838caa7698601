"""Map domain errors and HTTP exceptions to problem+json responses; nothing else leaks out."""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from itemsapi.exceptions import (
    BadParameter,
    Conflict,
    ConstraintViolation,
    DatabaseUnavailable,
    ItemNotFound,
    PreconditionFailed,
    QueryTimeout,
    ValidationFailed,
)
from itemsapi.metrics import count_database_error
from itemsapi.responses import problem

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ValidationFailed, _validation_failed)
    app.register_error_handler(BadParameter, _bad_parameter)
    app.register_error_handler(ItemNotFound, _not_found)
    app.register_error_handler(PreconditionFailed, _precondition_failed)
    app.register_error_handler(Conflict, _conflict)
    app.register_error_handler(ConstraintViolation, _constraint_violation)
    app.register_error_handler(DatabaseUnavailable, _unavailable)
    app.register_error_handler(QueryTimeout, _query_timeout)
    app.register_error_handler(Exception, _unexpected)


def _http_error(exc: HTTPException) -> Response:
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    for name, value in exc.response.headers.items() if exc.response else ():
        headers.setdefault(name, value)
    return problem(exc.code or 500, exc.description or "", headers=headers)


def _validation_failed(exc: ValidationFailed) -> Response:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    count = len(errors)
    detail = f"the request body has {count} invalid field{'s' if count != 1 else ''}"
    return problem(422, detail, kind="validation-error", title="Invalid item", errors=errors)


def _bad_parameter(exc: BadParameter) -> Response:
    return problem(
        400,
        f"query parameter {exc.name!r}: {exc.message}",
        kind="invalid-parameter",
        title="Invalid query parameter",
        errors=[{"field": exc.name, "message": exc.message}],
    )


def _not_found(exc: ItemNotFound) -> Response:
    return problem(404, str(exc), kind="item-not-found", title="Item not found")


def _precondition_failed(exc: PreconditionFailed) -> Response:
    return problem(
        412,
        f"item {exc.item_id} has changed: its current version is {exc.current_version}",
        kind="precondition-failed",
        title="Item has changed",
    )


def _conflict(exc: Conflict) -> Response:
    count_database_error("conflict")
    return problem(409, "the change conflicts with existing data", kind="conflict")


def _constraint_violation(exc: ConstraintViolation) -> Response:
    count_database_error("constraint")
    return problem(
        422,
        f"the database refused the item: {exc}",
        kind="constraint-violation",
        title="Invalid item",
        errors=[],
    )


def _unavailable(exc: DatabaseUnavailable) -> Response:
    log.warning("database unavailable: %s", exc, extra={"kind": exc.kind})
    return _retry_later(exc.kind, "database-unavailable", "is not available right now")


def _query_timeout(exc: QueryTimeout) -> Response:
    log.warning("statement timed out")
    return _retry_later("statement_timeout", "database-timeout", "took too long to answer")


def _retry_later(metric_kind: str, problem_kind: str, what_happened: str) -> Response:
    """503 with Retry-After: the request may well succeed if the client tries again."""
    count_database_error(metric_kind)
    return problem(
        503,
        f"the database {what_happened}; try again shortly",
        kind=problem_kind,
        title="Service unavailable",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):  # pragma: no cover - routed to _http_error first
        return _http_error(exc)
    log.exception("unhandled error")
    return problem(500, "an internal error occurred; it has been logged", kind="internal-error")
