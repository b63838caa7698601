"""RequestContext: what one request carries from the layers that admit it to the views, in the
WSGI environ under one key, so that telemetry (outside Flask) and the views (inside) see the same
object. Nothing else passes per-request state between modules."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from flask import Request, request

ENVIRON_KEY = "itemsapi.context"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    # Who made the request (an API key's id, a JWT's subject), for the access line; never the
    # token. Set by admission once the credentials are checked.
    principal: str | None = None
    # time.monotonic() by which the request must have its database connection: admission sets
    # it when it takes a run slot, so that waiting for the slot and for the pool together stay
    # within the pool timeout. The views pass it to the repository.
    deadline: float | None = None
    holds_slot: bool = False
    # An export's or an import's slot (admission.TransferSlots), given back once: at the
    # request's teardown, or, for a streamed export, when its stream ends (`streams`).
    release: Callable[[], None] | None = None
    # The response body is streamed: telemetry passes it on chunk by chunk and records the
    # request when the stream ends, instead of joining the body into one piece.
    streams: bool = False
    # A change feed request's way to wait without its run slot (admission.py).
    idle: Callable[[], AbstractContextManager[None]] | None = None


def of(environ: dict[str, Any]) -> RequestContext:
    return environ[ENVIRON_KEY]


def current_request() -> Request:
    """Flask's request itself rather than its proxy. Each attribute read through `flask.request`
    first misses on the proxy (an AttributeError built and dropped) and then looks the request
    up again: several thousand instructions a read, against one lookup here."""
    return request._get_current_object()  # type: ignore[attr-defined]


def header(key: str) -> str | None:
    """The request's header by its WSGI name (HTTP_IF_MATCH), None when it has none: werkzeug's
    `headers.get` raises and catches a KeyError for each header a request does not carry."""
    return current_request().environ.get(key)
