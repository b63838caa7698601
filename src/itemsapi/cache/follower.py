"""ChangeFollower: each worker follows the change log (db/changes.py) from its last position, in a
thread of its own, so that the log, not the announcements, is the truth:

- the read cache drops every item the log says changed: a write whose announcement never came
  (its server was killed between commit and announcement) or that came while the listener was
  cut off costs a catch-up, not staleness until the TTL. Ids come from every committed change,
  settled in the feed's order or not, as a cache needs no order; an unsettled one is applied
  once, and read again until it settles (then the position moves past it);
- long-polls (GET /v1/changes?wait=) wait here, on a condition, for the position to move past
  theirs: one query per wake-up per worker, however many followers wait, at most
  `max_waiters` of them (one more is answered at once).

It reads every `interval` seconds whatever it heard, after the listener reconnects (`catch_up`,
before the cache is used again), and, while long-polls wait, when woken (any notification on
itemsapi_items: a commit somewhere); wake-ups that come while a read runs coalesce into one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from itemsapi.db.changes import ChangeLog, Position
from itemsapi.errors import ItemsError

log = logging.getLogger(__name__)

READ_LIMIT = 1000  # ids per read; a follower further behind reads again at once
MAX_AHEAD = 10_000  # unsettled changes remembered as applied; past this the cache is emptied
# Invalidate(ids): drop these items; None: drop everything (the follower lost its place).
Invalidate = Callable[[list[int] | None], None]


class ChangeFollower:
    def __init__(
        self, changes: ChangeLog, interval: float, max_waiters: int,
        name: str = "itemsapi-follower",
    ) -> None:  # fmt: skip
        self._changes = changes
        self._interval = interval
        self._name = name
        self._invalidate: Invalidate | None = None
        self._position: Position | None = None  # None: not read yet, or lost
        self._ahead: set[Position] = set()  # unsettled changes already applied
        self._reading = threading.Lock()
        self._moved = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._places = threading.BoundedSemaphore(max_waiters)
        self._waiting = 0  # long-polls waiting now: only they make a wake-up read the log
        self._thread: threading.Thread | None = None

    def follow(self, invalidate: Invalidate) -> None:
        """Hand the ids of every change read to `invalidate` (the read cache; before start)."""
        self._invalidate = invalidate

    def wake(self, _payload: str = "") -> None:
        """Something committed somewhere (a listener callback): read the log now if long-polls
        wait; otherwise the thread is left asleep until its interval."""
        if self._waiting:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        due = time.monotonic() + self._interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            # Woken with nobody waiting: the notification itself was the cache's news, and the
            # log can wait for the interval (reading it at every write cost every worker a
            # query per write).
            if not self._waiting and time.monotonic() < due:
                continue
            due = time.monotonic() + self._interval
            try:
                self.catch_up()
            except ItemsError as exc:  # the database is away: the next round tries again
                log.debug("could not read the change log", extra={"error": str(exc)})

    def catch_up(self) -> None:
        """Apply every change after the position; raises ItemsError if the log cannot be read
        (the position is then kept, or, never known, stays unknown)."""
        with self._reading:
            if self._position is None:
                self._position = self._changes.latest()
                self._lost()  # what changed before the first position is unknown
            while True:
                read = self._changes.changed_ids(self._position, READ_LIMIT)
                fresh = [item_id for at, item_id in read.ahead if at not in self._ahead]
                self._apply(read.ids + fresh)
                self._ahead = {at for at in self._ahead if at > read.settled}
                self._ahead.update(at for at, _ in read.ahead)
                if len(self._ahead) > MAX_AHEAD:
                    self._ahead.clear()
                    self._lost()
                moved = read.settled != self._position
                self._position = read.settled
                if moved:
                    with self._moved:
                        self._moved.notify_all()
                if not read.complete and not moved:
                    self._lost()  # more unsettled changes than one read holds
                if read.complete or not moved:
                    return

    def _apply(self, ids: list[int]) -> None:
        if ids and self._invalidate is not None:
            self._invalidate(ids)

    def _lost(self) -> None:
        if self._invalidate is not None:
            self._invalidate(None)

    def resume(self) -> bool:
        """Catch up after a gap in listening: True once done; False if the log cannot be read,
        and the position is forgotten (what the gap changed is unknown)."""
        try:
            self.catch_up()
            return True
        except ItemsError as exc:
            log.warning("could not read the change log after a gap; emptying the read cache",
                        extra={"error": str(exc)})  # fmt: skip
            with self._reading:
                self._position = None
                self._ahead.clear()
            return False

    def wait_past(self, after: Position, timeout: float) -> bool | None:
        """Wait up to `timeout` seconds for a settled change after `after`: True when one
        came, False when the time ran out, None when every waiting place is taken."""
        if not self._places.acquire(blocking=False):
            return None
        try:
            with self._moved:
                self._waiting += 1
            self._wake.set()  # a fresh read: the position may be behind the caller's cursor
            with self._moved:
                return self._moved.wait_for(
                    lambda: self._position is not None and self._position > after, timeout
                )
        finally:
            with self._moved:
                self._waiting -= 1
            self._places.release()
