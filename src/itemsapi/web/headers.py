"""The headers that keep responses safe in browsers and caches, added to every response as it
starts (web/telemetry.py), whichever part of the app made it:

- `X-Content-Type-Options: nosniff` everywhere: a browser takes a body for what its
  Content-Type says (JSON is never run as a script or rendered as HTML);
- `Cache-Control`, unless the view chose one: items are one principal's answer, so `private`
  (no shared cache keeps them) with `no-cache` (a browser revalidates with the ETag first, and
  gets a 304); problems, the probes and /metrics are never stored (`no-store`): a stale
  readiness answer or a cached 503 is wrong the moment it is kept; the contract and the docs
  page are revalidated (`no-cache`);
- `Vary: Authorization` on items while access control is on: who asks decides the answer;
- a Content-Security-Policy on the docs page (web/docs.py, DOCS_POLICY): Swagger UI's scripts
  and styles from this server only, its requests to this server only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOSNIFF = ("X-Content-Type-Options", "nosniff")
PRIVATE = ("Cache-Control", "private, no-cache")
NO_STORE = ("Cache-Control", "no-store")
REVALIDATE = ("Cache-Control", "no-cache")
VARY_AUTHORIZATION = ("Vary", "Authorization")
ITEM_PREFIXES = ("/v1/items", "/items")
# Paths whose answers choose their own Cache-Control (an export is never stored).
OWN_CHOICE = frozenset({"/v1/items/export"})
# Paths whose answer must never be kept: the probes and the scrape.
UNSTORED_PATHS = frozenset({"/live", "/ready", "/health", "/metrics"})
REVALIDATED_PATHS = frozenset({"/docs", "/openapi.json"})

Headers = list[tuple[str, str]]
AddHeaders = Callable[[dict[str, Any], str, Headers], None]


def safe_headers(authenticated: bool, docs_policy: str) -> AddHeaders:
    """The function that adds them to a response's headers, given the request's environ and
    the response's status line. Every 4xx and 5xx is a problem (web/problems.py)."""
    item_headers = [PRIVATE, VARY_AUTHORIZATION] if authenticated else [PRIVATE]
    csp = ("Content-Security-Policy", docs_policy)

    def add(environ: dict[str, Any], status: str, headers: Headers) -> None:
        headers.append(NOSNIFF)
        path = environ.get("PATH_INFO", "")
        if status[0] in "45":
            headers.append(NO_STORE)
        elif path.startswith(ITEM_PREFIXES):
            if path not in OWN_CHOICE:
                headers.extend(item_headers)
        elif path in UNSTORED_PATHS:
            headers.append(NO_STORE)
        elif path in REVALIDATED_PATHS:
            headers.append(REVALIDATE)
            if path == "/docs":
                headers.append(csp)

    return add
