"""Reading request bodies whole, with a size limit, on a bounded number of threads at once.

Under Granian's WSGI interface, reading `wsgi.input` blocks the calling thread until the client
has sent the bytes asked for, however long that takes: neither Granian nor hyper bounds the time
a body may take. It cannot be bounded from here either: answering a request while another thread
is still blocked reading its body stalls the whole Granian 2.8 worker (every later request
hangs), so a read can only end by the client sending or going away. What is bounded instead is
how many threads slow bodies can hold: at most `max_reads` per worker read at once, at most
`max_reads_per_client` of them for one client address, and a body that finds no reader free
gets 503 + Retry-After without being read (Granian then closes the connection). So one client
stalling its bodies cannot keep the others from writing, and threads and run slots of the
other requests, and the probes, are not affected. (Behind a proxy every client has the proxy's
address: there a buffering proxy is what bounds slow bodies, docs/operations.md.)

The body is read here, before the app sees the request, so that a chunked body (which reaches
werkzeug as an empty one: it has no CONTENT_LENGTH) is read too, and one over `max_bytes` gets
413 like a declared one.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from typing import Any

from itemsapi.errors import BodyIncomplete, BodyTooLarge, Overloaded


def declares_body(environ: dict[str, Any]) -> bool:
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or (
        "HTTP_TRANSFER_ENCODING" in environ
    )


class BodyReader:
    def __init__(self, max_bytes: int, max_reads: int, max_reads_per_client: int) -> None:
        self._max_bytes = max_bytes
        self._free_readers = threading.Semaphore(max_reads)
        self._per_client = max_reads_per_client
        self._reading: Counter[str] = Counter()  # client address -> its bodies being read
        self._reading_lock = threading.Lock()

    def buffer(self, environ: dict[str, Any]) -> None:
        """Replace `wsgi.input` with the whole body, or raise the error to answer with."""
        declared = _declared_length(environ)
        if declared is not None and declared > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        client = environ.get("REMOTE_ADDR", "")
        with self._reading_lock:
            if self._reading[client] >= self._per_client:
                raise Overloaded("this client's bodies already take every reader it may have")
            self._reading[client] += 1
        try:
            body = self._read(environ, declared)
        finally:
            with self._reading_lock:
                self._reading[client] -= 1
                if not self._reading[client]:
                    del self._reading[client]
        if len(body) > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        if declared is not None and len(body) < declared:
            raise BodyIncomplete(declared, len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # werkzeug ignores CONTENT_LENGTH on a chunked request; the body is no longer chunked.
        environ.pop("HTTP_TRANSFER_ENCODING", None)

    def _read(self, environ: dict[str, Any], declared: int | None) -> bytes:
        if not self._free_readers.acquire(blocking=False):
            raise Overloaded("every body reader is busy")
        try:
            # Granian's read(n) returns once n bytes have come, or fewer at the body's end.
            wanted = declared if declared is not None else self._max_bytes + 1
            return bytes(environ["wsgi.input"].read(wanted))
        finally:
            self._free_readers.release()


def _declared_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH", "")
    if not value or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    try:
        return int(value)
    except ValueError:
        raise BodyIncomplete(None, 0) from None
