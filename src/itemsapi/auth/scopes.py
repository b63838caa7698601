"""Who may do what: the scopes, the principal a credential stands for, and the rule that says
which scope each endpoint needs (deny by default: an endpoint nobody classified needs admin)."""

from __future__ import annotations

from dataclasses import dataclass

from itemsapi.config import Settings

READ, WRITE, ADMIN = "read", "write", "admin"
SCOPES = (READ, WRITE, ADMIN)  # the api_keys table's CHECK lists the same

# Blueprints by who may call them. The items blueprint is registered twice (/v1 and the
# deprecated unversioned paths); `transfer` is export (a read) and import (a write); `changes`
# is the change feed and item histories (reads); `cache` is
# the operational cache endpoints' blueprint.
OPEN_BLUEPRINTS = frozenset({"probes", "index"})
ITEM_BLUEPRINTS = frozenset({"items", "unversioned", "transfer", "changes"})
ADMIN_BLUEPRINTS = frozenset({"cache"})
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Principal:
    """The caller a valid credential stands for: an API key's id or a JWT's subject."""

    id: str
    scopes: frozenset[str]


class Policy:
    """The scope a request needs, or None when it is open; decided once per endpoint and method
    (the answer depends on nothing else)."""

    def __init__(self, settings: Settings) -> None:
        self._public_reads = settings.public_reads
        self._public_docs = settings.public_docs
        self._public_metrics = settings.public_metrics
        self._decided: dict[tuple[str, str], str | None] = {}

    def required(self, endpoint: str | None, method: str) -> str | None:
        if endpoint is None or method == "OPTIONS":
            return None  # no route matched (404, 405): nothing to protect; OPTIONS lists methods
        key = (endpoint, method)
        if key not in self._decided:
            self._decided[key] = self._decide(endpoint, method)
        return self._decided[key]

    def _decide(self, endpoint: str, method: str) -> str | None:
        blueprint = endpoint.rpartition(".")[0]
        if blueprint in ADMIN_BLUEPRINTS:
            return ADMIN
        if blueprint in OPEN_BLUEPRINTS or endpoint == "static":
            return None
        if blueprint in ITEM_BLUEPRINTS:
            if method in READ_METHODS:
                return None if self._public_reads else READ
            return WRITE
        if blueprint == "docs":
            return None if self._public_docs else READ
        if blueprint == "metrics":
            return None if self._public_metrics else ADMIN
        return ADMIN  # unclassified: closed until someone says otherwise
