"""Telling the other replicas' read caches about this server's writes, off the request path.

A write is made known in three places (items.py): this worker's cache and, through the
write ring, this server's other workers, both before the response; every other replica through
PostgreSQL (channel itemsapi_items), which is what this module does. A thread per worker sends
the ids written since its last send in one statement (itemsapi_announce_items, committed
without waiting for its WAL flush): no response waits for that round trip. After the first id
it lingers LINGER seconds for more, so that under load one announcement covers the writes of
many requests (an announcement costs about what a small write does); other replicas hear of a
write that much later, still far inside the published bound (docs/operations.md, "Read
cache").

Each announcement names its server (`origin`), so that this server's workers skip it: they have
already applied it from the ring. If sending fails (the database is away) the ids are kept and
sent again after a pause; past MAX_PENDING ids one "everything" announcement replaces them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

LINGER = 0.01  # seconds an announcement waits for more writes to join it
BATCH = 256  # ids per announcement: about 5 KB at most, under NOTIFY's 8,000-byte payload limit
MAX_PENDING = 4096
RETRY_FIRST, RETRY_MAX = 0.1, 5.0

# send(ids, origin): one announcement; ids None means "everything".
Send = Callable[[list[int] | None, str], None]


class Announcer:
    def __init__(self, send: Send, origin: str, name: str = "itemsapi-announcer") -> None:
        self._send = send
        self.origin = origin
        self._name = name
        self._pending: dict[int, None] = {}  # insertion-ordered set
        self._everything = False
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def announce(self, ids: Iterable[int]) -> None:
        """Queue ids for the next announcement; returns at once."""
        with self._wake:
            if self._everything:
                return
            # Woken only by the first id: waking it for each one would cost every write a
            # thread switch while it lingers.
            first = not self._pending
            self._pending.update(dict.fromkeys(ids))
            if len(self._pending) > MAX_PENDING:
                self._everything, self._pending = True, {}
            if first:
                self._wake.notify()

    def announce_everything(self) -> None:
        with self._wake:
            self._everything, self._pending = True, {}
            self._wake.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is pending (one try), then end the thread; wait up to `timeout`."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[int] | None:
        """The next batch (None: everything), or [] when stopping with nothing left."""
        with self._wake:
            while not (self._pending or self._everything or self._stopping):
                self._wake.wait()
            if not self._stopping:
                self._wake.wait_for(lambda: self._stopping, timeout=LINGER)
            if self._everything:
                self._everything, self._pending = False, {}
                return None
            batch = list(self._pending)[:BATCH]
            for item_id in batch:
                del self._pending[item_id]
            return batch

    def _put_back(self, batch: list[int] | None) -> None:
        if batch is None:
            self.announce_everything()
        else:
            self.announce(batch)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while True:
            batch = self._take()
            if batch == []:
                return  # stopping, nothing left
            try:
                self._send(batch, self.origin)
            except Exception as exc:  # whatever broke, the thread lives on to try again
                if self._stopping:
                    log.warning("writes not announced before stopping: other replicas may serve"
                                " their old versions until ITEMSAPI_CACHE_TTL",
                                extra={"error": str(exc)})  # fmt: skip
                    return
                self._put_back(batch)
                if delay == RETRY_FIRST:  # said once per outage, not at every attempt
                    log.warning(
                        "could not announce writes to the other replicas' read caches; retrying",
                        extra={"error": str(exc), "retry_in_seconds": delay},
                    )
                with self._wake:
                    self._wake.wait_for(lambda: self._stopping, timeout=delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                delay = RETRY_FIRST
