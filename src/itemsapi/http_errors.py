"""Errors to HTTP: every domain error and HTTP exception becomes an RFC 9457 problem+json
response, driven by one table; nothing else leaks out (an unexpected error is a bare 500)."""

from __future__ import annotations

import logging
from typing import NamedTuple

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from itemsapi.errors import (
    BadParameter,
    BodyIncomplete,
    BodyTooLarge,
    Conflict,
    ConstraintViolation,
    DatabaseError,
    DatabaseUnavailable,
    Forbidden,
    IdentityProviderUnavailable,
    ItemNotFound,
    ItemsError,
    Overloaded,
    PreconditionFailed,
    QueryTimeout,
    Unauthorized,
    ValidationFailed,
)
from itemsapi.metrics import count_database_error
from itemsapi.responses import problem

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"


class Problem(NamedTuple):
    status: int
    kind: str  # the problem type: urn:itemsapi:problem:<kind>
    title: str | None  # None: the HTTP status phrase


PROBLEMS: dict[type[ItemsError], Problem] = {
    ValidationFailed: Problem(422, "validation-error", "Invalid item"),
    BadParameter: Problem(400, "invalid-parameter", "Invalid query parameter"),
    # Both carry WWW-Authenticate (RFC 6750): the exception's `challenge`.
    Unauthorized: Problem(401, "unauthorized", "Unauthorized"),
    Forbidden: Problem(403, "forbidden", "Insufficient scope"),
    ItemNotFound: Problem(404, "item-not-found", "Item not found"),
    PreconditionFailed: Problem(412, "precondition-failed", "Item has changed"),
    Conflict: Problem(409, "conflict", None),
    ConstraintViolation: Problem(422, "constraint-violation", "Invalid item"),
    # 503s carry Retry-After: the request may well succeed if the client tries again.
    DatabaseUnavailable: Problem(503, "database-unavailable", "Service unavailable"),
    QueryTimeout: Problem(503, "database-timeout", "Service unavailable"),
    # Answered by admission control before the app (admission.py, bodies.py).
    Overloaded: Problem(503, "overloaded", "Service unavailable"),
    BodyTooLarge: Problem(413, "body-too-large", None),
    BodyIncomplete: Problem(400, "body-incomplete", None),
    # A JWT that cannot be checked while the issuer's JWKS is down (auth/jwks.py).
    IdentityProviderUnavailable: Problem(
        503, "identity-provider-unavailable", "Service unavailable"
    ),
}


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ItemsError, _domain_error)
    app.register_error_handler(Exception, _unexpected)


def _domain_error(exc: ItemsError) -> Response:
    entry = next((PROBLEMS[c] for c in type(exc).__mro__ if c in PROBLEMS), None)
    if entry is None:
        return _unexpected(exc)
    if isinstance(exc, DatabaseError):
        count_database_error(exc.kind)
        if entry.status == 503:
            log.warning("database unavailable: %s", exc, extra={"kind": exc.kind})
    return problem_for(exc, entry)


def problem_for(exc: ItemsError, entry: Problem | None = None) -> Response:
    """The problem response of a domain error in the table (no logging, no metrics)."""
    entry = entry or next(PROBLEMS[c] for c in type(exc).__mro__ if c in PROBLEMS)
    headers = {}
    if isinstance(exc, Unauthorized | Forbidden):
        headers["WWW-Authenticate"] = exc.challenge
    if entry.status == 503:
        headers["Retry-After"] = str(getattr(exc, "retry_after", RETRY_AFTER_SECONDS))
    extra = {}
    if hasattr(exc, "errors"):
        extra["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    return problem(
        entry.status, exc.detail, kind=entry.kind, title=entry.title, headers=headers, **extra
    )


def _http_error(exc: HTTPException) -> Response:
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    for name, value in exc.response.headers.items() if exc.response else ():
        headers.setdefault(name, value)
    return problem(exc.code or 500, exc.description or "", headers=headers)


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):  # pragma: no cover - routed to _http_error first
        return _http_error(exc)
    log.exception("unhandled error")
    return problem(500, "an internal error occurred; it has been logged", kind="internal-error")
