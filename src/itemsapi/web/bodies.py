"""Request bodies: read whole, with a size limit, on a bounded number of threads at once
(BodyReader, for admission control), then taken as JSON by the rules every view shares
(json_body: the media type, UTF-8, strict JSON, each member named once).

Under Granian's WSGI interface, reading `wsgi.input` blocks the calling thread until the client
has sent the bytes asked for, however long that takes: neither Granian nor hyper bounds the time
a body may take. It cannot be bounded from here either: answering a request while another thread
is still blocked reading its body stalls the whole Granian 2.8 worker (every later request
hangs), so a read can only end by the client sending or going away. What is bounded instead is
how many threads slow bodies can hold: at most `max_reads` per worker read at once, and once
half of them are busy, at most `max_reads_per_client` for one client address; a body that finds
no reader it may take gets 503 + Retry-After without being read (Granian then closes the
connection). So one client stalling its bodies holds at most half the readers and cannot keep
the others from writing; threads and run slots of the other requests, and the probes, are not
affected. (Behind a proxy every client has the proxy's address: there a buffering proxy is
what bounds slow bodies, docs/operations.md.)

The body is read here, before the app sees the request, so that a chunked body (which reaches
werkzeug as an empty one: it has no CONTENT_LENGTH) is read too, and one over `max_bytes` gets
413 like a declared one.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from typing import Any

from flask import Response
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from itemsapi import strict_json
from itemsapi.errors import BodyIncomplete, BodyTooLarge, Overloaded
from itemsapi.web.context import current_request

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


def declares_body(environ: dict[str, Any]) -> bool:
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or (
        "HTTP_TRANSFER_ENCODING" in environ
    )


class BodyReader:
    def __init__(self, max_bytes: int, max_reads: int, max_reads_per_client: int) -> None:
        self._max_bytes = max_bytes
        self._max_reads = max_reads
        self._per_client = max_reads_per_client
        self._lock = threading.Lock()
        self._busy = 0  # bodies being read
        self._reading: Counter[str] = Counter()  # client address -> its bodies being read

    def buffer(self, environ: dict[str, Any]) -> None:
        """Replace `wsgi.input` with the whole body, or raise the error to answer with."""
        declared = _declared_length(environ)
        if declared is not None and declared > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        client = environ.get("REMOTE_ADDR", "")
        self._take_reader(client)
        try:
            # Granian's read(n) returns once n bytes have come, or fewer at the body's end.
            wanted = declared if declared is not None else self._max_bytes + 1
            body = bytes(environ["wsgi.input"].read(wanted))
        finally:
            self._give_back_reader(client)
        if len(body) > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        if declared is not None and len(body) < declared:
            raise BodyIncomplete(declared, len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # werkzeug ignores CONTENT_LENGTH on a chunked request; the body is no longer chunked.
        environ.pop("HTTP_TRANSFER_ENCODING", None)

    def _take_reader(self, client: str) -> None:
        # A client's share is enforced only once half the readers are busy: under a burst of
        # ordinary uploads from one address (a proxy, a load test) reads overlap for a moment
        # under the GIL, and refusing those would be refusing ordinary load.
        with self._lock:
            if self._busy >= self._max_reads:
                raise Overloaded("every body reader is busy")
            if self._reading[client] >= self._per_client and self._busy * 2 >= self._max_reads:
                raise Overloaded("this client already holds its share of the body readers")
            self._busy += 1
            self._reading[client] += 1

    def _give_back_reader(self, client: str) -> None:
        with self._lock:
            self._busy -= 1
            self._reading[client] -= 1
            if not self._reading[client]:
                del self._reading[client]


def _declared_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH", "")
    if not value or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    try:
        return int(value)
    except ValueError:
        raise BodyIncomplete(None, 0) from None


def json_body(*accepted: str) -> Any:
    """The request's body as JSON, sent as one of the `accepted` media types (else 415)."""
    current = current_request()
    if current.mimetype not in accepted:
        exc = UnsupportedMediaType(f"the body must be sent as {' or '.join(accepted)}")
        if MERGE_PATCH in accepted:
            exc.response = Response(headers={"Accept-Patch": MERGE_PATCH})
        raise exc
    try:
        return strict_json.loads(current.get_data(cache=False))
    except strict_json.NotStrictJson as exc:
        raise BadRequest(f"the body {exc}") from None
