"""CORS (Cross-Origin Resource Sharing): lets a browser page served from another origin, listed
in ITEMSAPI_CORS_ORIGINS, call the API and read what it needs of the answers.

A WSGI wrapper between telemetry and the Flask app, installed only when origins are listed (off,
it costs nothing). A preflight (OPTIONS with Access-Control-Request-Method) is answered here,
before Flask: no route, no admission, no credentials, no database, no run slot; a browser sends
it without the Authorization header, so it could never pass admission anyway. Every other
request from an allowed origin gets Access-Control-Allow-Origin and the headers its script may
read (ETag, Location, Link, ...) as its response starts, whatever part of the app made it.

Why not flask-cors: it answers a preflight from an after_request hook, behind Flask's
before_request hooks, where admission takes a run slot and checks credentials
(docs/design.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from itemsapi.config import Settings

# The methods and request headers the API reads; the response headers a script needs.
METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
REQUEST_HEADERS = (
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-ID"
)
EXPOSED_HEADERS = (
    "ETag, Location, Link, Retry-After, Deprecation, Sunset, X-Request-ID, X-Cache, "
    "WWW-Authenticate"
)
PREFLIGHT_ROUTE = "itemsapi.preflight"  # the environ key telemetry reads a preflight's route from
VARY_ORIGIN = ("Vary", "Origin")

WSGIApp = Any


def init_app(app: Any, settings: Settings) -> None:
    if settings.cors_origins:
        app.wsgi_app = Cors(app.wsgi_app, settings)


class Cors:
    def __init__(self, wsgi_app: WSGIApp, settings: Settings) -> None:
        self.wsgi_app = wsgi_app
        self._any = settings.cors_origins == "*"
        self._origins = frozenset(settings.cors_origins.split(","))
        # With a list, the answer depends on the Origin asked from: caches must tell them apart.
        self._vary = [] if self._any else [VARY_ORIGIN]
        shared = [("Access-Control-Allow-Origin", "*")] if self._any else []
        if settings.cors_credentials:
            shared.append(("Access-Control-Allow-Credentials", "true"))
        self._preflight = [
            *shared,
            ("Access-Control-Allow-Methods", METHODS),
            ("Access-Control-Allow-Headers", REQUEST_HEADERS),
            ("Access-Control-Max-Age", str(settings.cors_max_age)),
        ]
        self._actual = [*shared, ("Access-Control-Expose-Headers", EXPOSED_HEADERS)]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        allowed = origin is not None and (self._any or origin in self._origins)
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
            environ[PREFLIGHT_ROUTE] = "preflight"
            # Not allowed: answered all the same, without the headers, and the browser refuses.
            headers = [*self._vary, *(self._for(origin, self._preflight) if allowed else [])]
            start_response("204 No Content", headers)
            return []
        extra = [*self._vary, *(self._for(origin, self._actual) if allowed else [])]
        if not extra:
            return self.wsgi_app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.extend(extra)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)

    def _for(self, origin: str | None, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if self._any:
            return headers
        return [("Access-Control-Allow-Origin", origin or ""), *headers]
