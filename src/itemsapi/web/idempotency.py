"""The Idempotency-Key request header at the edge (draft-ietf-httpapi-idempotency-key-header;
docs/api.md, "Retrying safely"): read and checked here, fingerprinted with the request, and
handed to the repository as a db.idempotency.Once, which stores the response with the write and
replays it to a retry. A replayed response carries `Idempotent-Replayed: true`.

The key is 1 to 255 printable ASCII characters, sent bare (`Idempotency-Key: abc`, as most
clients do) or as the draft writes it, a Structured Field string (`Idempotency-Key: "abc"`):
both name the key abc. It is scoped by the request's principal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Response, request

from itemsapi.db.idempotency import Once, Outcome, Stored
from itemsapi.errors import BadHeader
from itemsapi.web.context import current_request, of
from itemsapi.web.deps import deps

HEADER = "Idempotency-Key"
_ENVIRON_KEY = "HTTP_IDEMPOTENCY_KEY"  # HEADER as the WSGI environ names it
REPLAYED = "Idempotent-Replayed"
KEY_MAX = 255
# Published as is (openapi.py): no white space at either end, which HTTP would strip.
KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
_KEY = re.compile(rf"[ -~]{{1,{KEY_MAX}}}")
_SF_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
# What a client needs of a write's response to carry on as if it had seen the first one.
STORED_HEADERS = ("Content-Type", "Location", "ETag", "Preference-Applied")


@dataclass(frozen=True)
class Requested:
    """A request's key, before the view knows how its response is rendered."""

    principal: str
    key: str
    fingerprint: bytes
    ttl: float

    def once(self, render: Callable[[Any], Response], ids: Callable[[Any], Iterable[int]]) -> Once:
        """The Once for a write whose result `render` turns into the response, and whose
        changed items `ids` names."""

        def stored(result: Any) -> Stored:
            return stored_response(render(result), ids(result))

        return Once(self.principal, self.key, self.fingerprint, self.ttl, stored)


def requested() -> Requested | None:
    """The request's Idempotency-Key, None without one; 400 when it is malformed, or missing
    on a POST while ITEMSAPI_REQUIRE_IDEMPOTENCY_KEY is on. Call before reading the body as
    JSON: the fingerprint reads (and keeps) the raw body."""
    current = current_request()
    value = current.environ.get(_ENVIRON_KEY)
    if value is None:
        if current.method == "POST" and deps().settings.require_idempotency_key:
            raise BadHeader(HEADER, "is required on POST by this server")
        return None
    principal = of(current.environ).principal or ""
    return Requested(principal, parse_key(value), fingerprint(), deps().settings.idempotency_ttl)


def parse_key(value: str) -> str:
    quoted = _SF_STRING.fullmatch(value)
    key = re.sub(r"\\(.)", r"\1", quoted[1]) if quoted else value
    if not _KEY.fullmatch(key):
        raise BadHeader(HEADER, f"must be 1 to {KEY_MAX} printable ASCII characters")
    return key


def fingerprint() -> bytes:
    """What makes two requests the same request: method, path with query, body."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.full_path.encode(), request.get_data()):
        digest.update(len(part).to_bytes(8, "big"))  # lengths first: no two splits collide
        digest.update(part)
    return digest.digest()


def stored_response(response: Response, ids: Iterable[int]) -> Stored:
    headers = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
    return Stored(response.status_code, headers, response.get_data(), tuple(ids))


def respond(outcome: Outcome) -> Response:
    """The response of a write made with a key: the one just stored, or the first one again."""
    stored = outcome.response
    response = Response(stored.body, stored.status, headers=stored.headers)
    if outcome.replayed:
        response.headers[REPLAYED] = "true"
    return response
