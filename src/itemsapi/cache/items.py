"""ItemRepository behind the read cache: what the item views call.

Reads of an item and of a list page go through this worker's ReadCache and say how they were
served (hit, miss, bypass). Writes go to the repository and then invalidate:
- in this worker, before the response is sent;
- in the other workers of this server, through the WriteRing, also before the response is sent:
  a client that reads after its write's 2xx, from whichever worker, gets the new version;
- everywhere else (other replicas) through PostgreSQL: the Announcer sends the ids on channel
  itemsapi_items, off the request path, and every worker's Listener applies them, except those
  of this server (their origin is the ring's: already applied). Writes from psql or pgAdmin
  reach every worker only this way, announced by the items triggers (sql/migrations/0002).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import orjson

from itemsapi import metrics
from itemsapi.cache.announcer import Announcer
from itemsapi.cache.follower import ChangeFollower
from itemsapi.cache.notification import CHANNEL, CLEAR, Notification
from itemsapi.cache.ring import FLUSH, WriteRing
from itemsapi.cache.store import BYPASS, MISS, ReadCache
from itemsapi.db.idempotency import Once, Outcome
from itemsapi.db.items import ItemRepository, Page
from itemsapi.db.list_query import ListQuery
from itemsapi.db.pool import Row
from itemsapi.errors import ItemsError

log = logging.getLogger(__name__)
T = TypeVar("T")

ENTRIES_INTERVAL = 1.0  # seconds between two updates of the entries gauge
Values = Mapping[str, Any]
Versions = list[int] | None  # what If-Match accepts; None: no precondition


def entry_size(value: Row | Page) -> int:
    """An entry's size in bytes: the length of an item's JSON as a response carries it (one
    orjson pass, on a miss only), a page's as the database measured its rows (db/sized.py)."""
    if isinstance(value, Page):
        return value.size
    return len(orjson.dumps(value, option=orjson.OPT_UTC_Z))


class CachedItemRepository:
    def __init__(
        self,
        repository: ItemRepository,
        cache: ReadCache | None,
        ring: WriteRing,
        announcer: Announcer,
        prime: tuple[int, int, int] = (0, 0, 0),
        follower: ChangeFollower | None = None,
    ) -> None:
        """`prime`: at most how many items, how many bytes, and bytes per item to prime with.
        `follower`: the change log's, which the cache follows (None: it has none)."""
        self._repository = repository
        self._follower = follower
        self._prime_count, self._prime_bytes, self._prime_entry_bytes = prime
        self._entries_counted = 0.0
        self._cache = cache
        self._ring = ring
        self._announcer = announcer
        self._lookups = {
            (region, outcome): metrics.CACHE_LOOKUPS.labels(region, outcome)
            for region in ("item", "list")
            for outcome in ("hit", "miss", "bypass")
        }
        self._invalidations = {
            source: metrics.CACHE_INVALIDATIONS.labels(source)
            for source in ("write", "server", "notification", "log", "flush")
        }

    @property
    def cache(self) -> ReadCache | None:
        return self._cache

    @property
    def origin(self) -> str:
        """The name this server's announcements carry (its workers skip them)."""
        return self._ring.origin

    # --- reads ------------------------------------------------------------------------------

    def get(self, item_id: int, deadline: float | None = None) -> tuple[Row, str]:
        """The item and how it was served; ItemNotFound is never cached."""
        return self._read("item", item_id, lambda: self._repository.get(item_id, deadline))

    def list(self, query: ListQuery, deadline: float | None = None) -> tuple[Page, str]:
        return self._read("list", query, lambda: self._repository.list(query, deadline))

    def _read(self, region: str, key: Hashable, load: Callable[[], T]) -> tuple[T, str]:
        if self._cache is None:
            return load(), BYPASS
        self._ring.catch_up(self._apply_server_writes)
        lookup = self._cache.item if region == "item" else self._cache.page
        value, outcome = lookup(key, load)
        self._lookups[region, outcome].inc()
        if outcome == MISS:
            self._count_entries()
        return value, outcome

    # --- writes: invalidate even when the write raised (it may have committed) ---------------

    # A replay (an Outcome replayed) announces its items again: the process that wrote them may
    # have died between its commit and its announcement.

    # `by`: who writes, for the change log (ItemRepository).

    def create(
        self, values: Mapping[str, Any], deadline: float | None = None, once: Once | None = None,
        by: str = "",
    ) -> Row | Outcome:  # fmt: skip
        result = self._repository.create(values, deadline, once, by)
        self._written(result.response.item_ids if once else (result["id"],))
        return result

    def create_many(
        self, rows: list[Values], deadline: float | None = None, once: Once | None = None,
        minimal: bool = False, by: str = "",
    ) -> list[Row] | Outcome:  # fmt: skip
        result = self._repository.create_many(rows, deadline, once, minimal, by)
        self._written(result.response.item_ids if once else tuple(row["id"] for row in result))
        return result

    def replace(
        self, item_id: int, values: Values, versions: Versions, deadline: float | None = None,
        by: str = "",
    ) -> Row:  # fmt: skip
        write = self._repository.replace
        return self._change(item_id, lambda: write(item_id, values, versions, deadline, by))

    def patch(
        self, item_id: int, changes: Values, versions: Versions, deadline: float | None = None,
        once: Once | None = None, by: str = "",
    ) -> Row | Outcome:  # fmt: skip
        write = self._repository.patch
        return self._change(item_id, lambda: write(item_id, changes, versions, deadline, once, by))

    def delete(
        self, item_id: int, versions: Versions, deadline: float | None = None, by: str = ""
    ) -> None:
        self._change(item_id, lambda: self._repository.delete(item_id, versions, deadline, by))

    def _change(self, item_id: int, write: Callable[[], T]) -> T:
        try:
            return write()
        finally:
            self._written((item_id,))

    def clear_everywhere(self) -> None:
        """Empty every worker of every replica: this one now, this server's through the ring,
        the others when PostgreSQL delivers the notification."""
        if self._cache is not None:
            self._flush()
            self._ring.publish((FLUSH,))
        self._repository.notify(CHANNEL, CLEAR)

    def _written(self, ids: tuple[int, ...]) -> None:
        # Announced even with this server's cache off: other replicas may keep one.
        self._announcer.announce(ids)
        if self._cache is None:
            return
        self._cache.invalidate(ids)
        self._invalidations["write"].inc()
        self._ring.publish(ids)
        self._count_entries()

    # --- what others tell -------------------------------------------------------------------

    def _apply_server_writes(self, ids: list[int]) -> None:
        if FLUSH in ids:
            self._flush()
        else:
            self._cache.invalidate(ids)
            self._invalidations["server"].inc()

    def on_notification(self, payload: str) -> None:
        """Apply a notification (notification.py) to this worker's cache. This server's own
        announcements are skipped: the ring brought them first."""
        note = Notification.parse(payload)
        if note.origin is not None and note.origin == self._ring.origin:
            return
        if note.sent_at is not None:
            metrics.CACHE_NOTIFICATION_LAG.observe(max(0.0, time.time() - note.sent_at))
        if not note.readable:
            log.warning("unreadable cache notification; emptying the cache")
        if note.ids is None:
            self._flush()
        else:
            self._cache.invalidate(note.ids)
            self._invalidations["notification"].inc()
        self._count_entries()

    def on_listening(self, listening: bool) -> None:
        # Bypassed while not listening; kept through the gap if the change log, applied from
        # where it was left, says what changed meanwhile (cache/follower.py), else emptied.
        kept = self._follower is not None and (not listening or self._follower.resume())
        self._cache.set_usable(listening, keep=kept)
        metrics.CACHE_LISTENER_CONNECTED.set(1 if listening else 0)
        if not kept:
            metrics.CACHE_ENTRIES.set(0)
        if listening and self._prime_count:
            # Not on the listener's thread: notifications must keep being applied meanwhile.
            threading.Thread(target=self.prime, name="itemsapi-cache-prime", daemon=True).start()

    def prime(self) -> int:
        """Fill the empty cache with the items changed last (settings.cache_prime of them, no
        more bytes than the cache holds, none it would refuse); a failure only leaves the cache
        to fill as reads come."""
        recent = self._repository.recent
        limits = (self._prime_count, self._prime_bytes, self._prime_entry_bytes)
        try:
            stored = self._cache.prime(lambda: ((row["id"], row) for row in recent(*limits)))
        except ItemsError as exc:
            log.warning("could not prime the read cache", extra={"error": str(exc)})
            return 0
        self._count_entries(now=True)
        return stored

    def apply_log(self, ids: list[int] | None) -> None:
        """Apply what the change log says changed (None: anything may have)."""
        if ids is None:
            return self._flush()
        self._cache.invalidate(ids)
        self._invalidations["log"].inc()

    def _count_entries(self, now: bool = False) -> None:
        """Update the entries gauge, at most once per ENTRIES_INTERVAL unless `now`: counting
        sweeps expired entries out first, too slow to do at every write."""
        at = time.monotonic()
        if now or at - self._entries_counted >= ENTRIES_INTERVAL:
            self._entries_counted = at
            metrics.CACHE_ENTRIES.set(len(self._cache))

    def _flush(self) -> None:
        self._cache.flush()
        self._invalidations["flush"].inc()
        metrics.CACHE_ENTRIES.set(0)
