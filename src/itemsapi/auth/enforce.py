"""Enforcement: the scope an endpoint needs (scopes.Policy), the bearer token authenticated
(API key or JWT), and 401 or 403 otherwise. Called by admission control (web/admission.py) with
the request's headers alone, before its body is read, so that a client without the right
credentials never holds a body reader. The token goes nowhere but `authenticate` (admission
keeps the Demand holding it until it calls `prove`)."""

from __future__ import annotations

from collections.abc import Callable

from itemsapi.auth.scopes import Policy, Principal
from itemsapi.errors import Forbidden, Unauthorized
from itemsapi.metrics import count_auth_failure

Authenticate = Callable[[str], Principal]


# What a request must prove: the scope its endpoint needs, and the bearer token it offers.
Demand = tuple[str, str]


class Enforcer:
    """`authenticate` None: access control is off, every request passes."""

    def __init__(self, policy: Policy, authenticate: Authenticate | None) -> None:
        self._policy = policy
        self._authenticate = authenticate

    def check(self, endpoint: str | None, method: str, authorization: str | None) -> str | None:
        """The principal's id, None for an open endpoint; raises Unauthorized or Forbidden."""
        return self.prove(self.demand(endpoint, method, authorization))

    def demand(self, endpoint: str | None, method: str, authorization: str | None) -> Demand | None:
        """What the request must prove, None for an open endpoint; raises Unauthorized when the
        headers hold no bearer token. That needs no lookup, so admission asks it before the
        request takes a run slot: a burst of anonymous requests is told 401, never 503 as if a
        retry could help."""
        if self._authenticate is None:
            return None
        scope = self._policy.required(endpoint, method)
        if scope is None:
            return None
        try:
            return scope, bearer_token(authorization)
        except Unauthorized as exc:
            count_auth_failure(exc.reason)
            raise

    def prove(self, demand: Demand | None) -> str | None:
        """The principal's id once its token is authenticated (a key lookup may need the
        database), None when nothing is demanded; raises Unauthorized or Forbidden."""
        if demand is None or self._authenticate is None:
            return None
        scope, token = demand
        try:
            principal = self._authenticate(token)
        except Unauthorized as exc:
            count_auth_failure(exc.reason)
            raise
        if scope not in principal.scopes:
            count_auth_failure("insufficient_scope")
            raise Forbidden(scope)
        return principal.id


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    if not header:
        raise Unauthorized("missing")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("malformed")
    return token
