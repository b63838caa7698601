"""Errors to HTTP: every error a request meets, whatever raised it (a view, admission control,
routing, werkzeug), leaves through `respond` as an RFC 9457 problem+json response, driven by one
table; nothing else leaks out (an unexpected error is a bare 500, its details only logged)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from itemsapi.errors import (
    BadHeader,
    BadParameter,
    BodyIncomplete,
    BodyTooLarge,
    Conflict,
    ConstraintViolation,
    CursorExpired,
    DatabaseError,
    DatabaseUnavailable,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
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
from itemsapi.web.models import Problem
from itemsapi.web.responses import model_response

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"
PROBLEM_TYPE_BASE = "urn:itemsapi:problem:"
NO_ROUTE = "nothing is at this path; /openapi.json lists the API's paths"


class ProblemType(NamedTuple):
    status: int
    kind: str  # the problem type: urn:itemsapi:problem:<kind>
    title: str | None  # None: the HTTP status phrase


PROBLEM_TYPES: dict[type[ItemsError], ProblemType] = {
    ValidationFailed: ProblemType(422, "validation-error", "Invalid item"),
    BadParameter: ProblemType(400, "invalid-parameter", "Invalid query parameter"),
    BadHeader: ProblemType(400, "invalid-header", "Invalid header"),
    # Both carry WWW-Authenticate (RFC 6750): the exception's `challenge`.
    Unauthorized: ProblemType(401, "unauthorized", "Unauthorized"),
    Forbidden: ProblemType(403, "forbidden", "Insufficient scope"),
    ItemNotFound: ProblemType(404, "item-not-found", "Item not found"),
    PreconditionFailed: ProblemType(412, "precondition-failed", "Item has changed"),
    Conflict: ProblemType(409, "conflict", None),
    ConstraintViolation: ProblemType(422, "constraint-violation", "Invalid item"),
    # Idempotency-Key (web/idempotency.py): its first request still running, or another one.
    IdempotencyKeyInUse: ProblemType(409, "idempotency-key-in-use", "Request in progress"),
    IdempotencyKeyReused: ProblemType(422, "idempotency-key-reused", "Idempotency-Key reused"),
    # 503s carry Retry-After: the request may well succeed if the client tries again.
    DatabaseUnavailable: ProblemType(503, "database-unavailable", "Service unavailable"),
    QueryTimeout: ProblemType(503, "database-timeout", "Service unavailable"),
    Overloaded: ProblemType(503, "overloaded", "Service unavailable"),
    BodyTooLarge: ProblemType(413, "body-too-large", None),
    BodyIncomplete: ProblemType(400, "body-incomplete", None),
    # A change feed cursor older than the retention (web/changes.py): resynchronise.
    CursorExpired: ProblemType(410, "cursor-expired", "Changes no longer kept"),
    # A JWT that cannot be checked while the issuer's JWKS is down (auth/jwks.py).
    IdentityProviderUnavailable: ProblemType(
        503, "identity-provider-unavailable", "Service unavailable"
    ),
}


class ItemPathNotFound(NotFound):
    """An item path whose id is not an item's (malformed, out of range, or not written the one
    way an id is written): raised while routing, answered like a missing item."""

    def __init__(self, text: str) -> None:
        super().__init__(f"item {text[:40]} does not exist")


def init_app(app: Flask) -> None:
    # A handler for Exception sees every error, HTTPExceptions included (Flask looks handlers up
    # along the exception's MRO), so there is one path out.
    app.register_error_handler(Exception, respond)


def respond(exc: Exception) -> Response:
    """The problem response for any error raised while handling a request."""
    if isinstance(exc, ItemsError):
        return _domain_error(exc)
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error")
    return problem(500, "an internal error occurred; it has been logged", kind="internal-error")


def _domain_error(exc: ItemsError) -> Response:
    entry = next((PROBLEM_TYPES[c] for c in type(exc).__mro__ if c in PROBLEM_TYPES), None)
    if entry is None:
        log.error("a domain error without a problem type", exc_info=exc)
        return problem(500, "an internal error occurred; it has been logged", kind="internal-error")
    if isinstance(exc, DatabaseError):
        count_database_error(exc.kind)
        if entry.status == 503:
            log.warning("database unavailable: %s", exc, extra={"kind": exc.kind})
    headers = {}
    if isinstance(exc, Unauthorized | Forbidden):
        headers["WWW-Authenticate"] = exc.challenge
    if entry.status == 503:
        headers["Retry-After"] = str(getattr(exc, "retry_after", RETRY_AFTER_SECONDS))
    errors = None
    if hasattr(exc, "errors"):
        errors = [_error(e) for e in exc.errors]
    return problem(
        entry.status, exc.detail, kind=entry.kind, title=entry.title, headers=headers,
        errors=errors,
    )  # fmt: skip


def _error(error: Any) -> dict[str, Any]:
    entry = {"field": error.field, "message": error.message}
    if hasattr(error, "line"):  # an import's line (errors.LineError)
        entry["line"] = error.line
    return entry


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, ItemPathNotFound):
        entry = PROBLEM_TYPES[ItemNotFound]
        return problem(404, exc.description or "", kind=entry.kind, title=entry.title)
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    for name, value in exc.response.headers.items() if exc.response else ():
        headers.setdefault(name, value)
    detail = exc.description or ""
    if isinstance(exc, NotFound) and detail == NotFound.description:
        detail = NO_ROUTE  # werkzeug's text speaks to a person typing a URL
    return problem(exc.code or 500, detail, headers=headers)


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    """An application/problem+json response. `kind` names a problem type of this API; without
    it the type is about:blank and the title is the HTTP status phrase, as RFC 9457 says.
    `errors` lists every bad field or parameter (given, even empty, it is in the body)."""
    body = Problem(
        type=PROBLEM_TYPE_BASE + kind if kind else "about:blank",
        title=title or HTTP_STATUS_CODES.get(status, "Error"),
        status=status,
        detail=detail,
        **({} if errors is None else {"errors": errors}),
    )
    return model_response(body, status, headers, mimetype="application/problem+json")
