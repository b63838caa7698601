"""Enforcement: a before_request hook that finds the scope the endpoint needs (scopes.Policy),
authenticates the bearer token (API key or JWT) and refuses with 401 or 403 problem+json.
The principal's id goes into the WSGI environ for the access line; the token goes nowhere."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, request

from itemsapi.auth.scopes import Policy, Principal
from itemsapi.config import Settings
from itemsapi.errors import Forbidden, Unauthorized
from itemsapi.metrics import count_auth_failure
from itemsapi.middleware import PRINCIPAL_ENVIRON

log = logging.getLogger(__name__)

Authenticate = Callable[[str], Principal]
AUTHENTICATE_KEY = "itemsapi.authenticate"


def install(app: Flask, settings: Settings, authenticate: Authenticate) -> None:
    policy = Policy(settings, app.view_functions)
    app.extensions[AUTHENTICATE_KEY] = authenticate

    def enforce() -> None:
        scope = policy.required(request.endpoint, request.method)
        if scope is None:
            return
        try:
            principal = authenticate(bearer_token(request.environ.get("HTTP_AUTHORIZATION")))
        except Unauthorized as exc:
            count_auth_failure(exc.reason)
            raise
        request.environ[PRINCIPAL_ENVIRON] = principal.id
        if scope not in principal.scopes:
            count_auth_failure("insufficient_scope")
            raise Forbidden(scope)

    app.before_request(enforce)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    if not header:
        raise Unauthorized("missing")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("malformed")
    return token
