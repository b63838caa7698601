"""Reading request bodies whole, with a size limit, on a bounded number of threads at once.

Under Granian's WSGI interface, reading `wsgi.input` blocks the calling thread until the client
has sent the bytes asked for, however long that takes: neither Granian nor hyper bounds the time
a body may take. It cannot be bounded from here either: answering a request while another thread
is still blocked reading its body stalls the whole Granian 2.8 worker (every later request
hangs), so a read can only end by the client sending or going away. What is bounded instead is
how many threads slow bodies can hold: at most `max_reads` per worker read at once, and a body
that finds them all busy gets 503 + Retry-After without being read (Granian then closes the
connection). Threads and run slots of the other requests, and the probes, are not affected.

The body is read here, before the app sees the request, so that a chunked body (which reaches
werkzeug as an empty one: it has no CONTENT_LENGTH) is read too, and one over `max_bytes` gets
413 like a declared one.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from itemsapi.errors import BodyIncomplete, BodyTooLarge, Overloaded


def declares_body(environ: dict[str, Any]) -> bool:
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or (
        "HTTP_TRANSFER_ENCODING" in environ
    )


class BodyReader:
    def __init__(self, max_bytes: int, max_reads: int) -> None:
        self._max_bytes = max_bytes
        self._free_readers = threading.Semaphore(max_reads)

    def buffer(self, environ: dict[str, Any]) -> None:
        """Replace `wsgi.input` with the whole body, or raise the error to answer with."""
        declared = _declared_length(environ)
        if declared is not None and declared > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        if not self._free_readers.acquire(blocking=False):
            raise Overloaded("every body reader is busy")
        try:
            # Granian's read(n) returns once n bytes have come, or fewer at the body's end.
            wanted = declared if declared is not None else self._max_bytes + 1
            body = bytes(environ["wsgi.input"].read(wanted))
        finally:
            self._free_readers.release()
        if len(body) > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        if declared is not None and len(body) < declared:
            raise BodyIncomplete(declared, len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # werkzeug ignores CONTENT_LENGTH on a chunked request; the body is no longer chunked.
        environ.pop("HTTP_TRANSFER_ENCODING", None)


def _declared_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH", "")
    if not value or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    try:
        return int(value)
    except ValueError:
        raise BodyIncomplete(None, 0) from None
