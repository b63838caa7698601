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
from multiprocessing.util import Finalize
from typing import Any, TypeVar

from flask import Flask

from itemsapi import metrics
from itemsapi.announcer import Announcer
from itemsapi.cache import BYPASS, MISS, ReadCache
from itemsapi.cache_sync import FLUSH, WriteRing
from itemsapi.config import Settings
from itemsapi.errors import ItemsError
from itemsapi.listener import Listener
from itemsapi.repository import ItemRepository, Page, Row
from itemsapi.statements import ListQuery

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "itemsapi_items"  # the triggers' channel
CLEAR = "clear"  # payload of POST /cache/clear
EVERYTHING = "*"  # the triggers' payload for "drop everything"
CACHED_KEY = "itemsapi.cached_items"
ENTRIES_INTERVAL = 1.0  # seconds between two updates of the entries gauge
_ANNOUNCER_STOP_KEY = "itemsapi.announcer_stop"


class CachedItemRepository:
    def __init__(
        self,
        repository: ItemRepository,
        cache: ReadCache | None,
        ring: WriteRing,
        announcer: Announcer,
        prime_count: int = 0,
    ) -> None:
        self._repository = repository
        self._prime_count = prime_count
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
            for source in ("write", "server", "notification", "flush")
        }

    @property
    def cache(self) -> ReadCache | None:
        return self._cache

    @property
    def origin(self) -> str:
        """The name this server's announcements carry (its workers skip them)."""
        return self._ring.origin

    # --- reads ------------------------------------------------------------------------------

    def get(self, item_id: int) -> tuple[Row, str]:
        """The item and how it was served; ItemNotFound is never cached."""
        return self._read("item", item_id, lambda: self._repository.get(item_id))

    def list(self, query: ListQuery) -> tuple[Page, str]:
        return self._read("list", query, lambda: self._repository.list(query))

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

    def create(self, values: Mapping[str, Any]) -> Row:
        row = self._repository.create(values)
        self._written((row["id"],))
        return row

    def replace(self, item_id: int, values: Mapping[str, Any], versions: list[int] | None) -> Row:
        try:
            return self._repository.replace(item_id, values, versions)
        finally:
            self._written((item_id,))

    def patch(self, item_id: int, changes: Mapping[str, Any], versions: list[int] | None) -> Row:
        try:
            return self._repository.patch(item_id, changes, versions)
        finally:
            self._written((item_id,))

    def delete(self, item_id: int, versions: list[int] | None) -> None:
        try:
            self._repository.delete(item_id, versions)
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
        """A trigger's "<epoch>:<ids>" or "<epoch>:*", an announcement's "<epoch>:<ids>:<origin>",
        or CLEAR. This server's own announcements are skipped (the ring brought them first).
        Anything unreadable flushes: a change must never go unapplied."""
        ids: list[int] | None = None  # None: everything
        if payload != CLEAR:
            stamp, _, listed = payload.partition(":")
            listed, _, origin = listed.partition(":")
            if origin == self._ring.origin:
                return
            try:
                metrics.CACHE_NOTIFICATION_LAG.observe(max(0.0, time.time() - float(stamp)))
                if listed != EVERYTHING:
                    ids = [int(item_id) for item_id in listed.split(",")]
            except ValueError:
                log.warning("unreadable cache notification; emptying the cache")
        if ids is None:
            self._flush()
        else:
            self._cache.invalidate(ids)
            self._invalidations["notification"].inc()
        self._count_entries()

    def on_listening(self, listening: bool) -> None:
        self._cache.set_usable(listening)
        metrics.CACHE_LISTENER_CONNECTED.set(1 if listening else 0)
        metrics.CACHE_ENTRIES.set(0)
        if listening and self._prime_count:
            # Not on the listener's thread: notifications must keep being applied meanwhile.
            threading.Thread(target=self.prime, name="itemsapi-cache-prime", daemon=True).start()

    def prime(self) -> int:
        """Fill the empty cache with the items changed last (settings.cache_prime of them); a
        failure only leaves the cache to fill as reads come."""
        try:
            stored = self._cache.prime(
                lambda: ((row["id"], row) for row in self._repository.recent(self._prime_count))
            )
        except ItemsError as exc:
            log.warning("could not prime the read cache", extra={"error": str(exc)})
            return 0
        self._count_entries(now=True)
        return stored

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


def init_app(app: Flask, repository: ItemRepository, listener: Listener | None) -> None:
    """The cached repository for the views, with its announcer and, with the cache on, its
    subscription to the listener."""
    settings: Settings = app.config["SETTINGS"]
    ring = WriteRing.from_env()
    announcer = Announcer(repository.announce, ring.origin)
    announcer.start()
    # Stopped before the pool closes (exitpriority 10), so that what is pending goes out.
    app.extensions[_ANNOUNCER_STOP_KEY] = Finalize(announcer, announcer.stop, exitpriority=12)
    if not settings.cache:
        app.extensions[CACHED_KEY] = CachedItemRepository(repository, None, ring, announcer)
        return
    cache = ReadCache(settings.cache_max_entries, settings.cache_ttl, metrics.CACHE_EVICTIONS.inc)
    prime_count = min(settings.cache_prime, settings.cache_max_entries)
    cached = CachedItemRepository(repository, cache, ring, announcer, prime_count)
    listener.subscribe(CHANNEL, cached.on_notification)
    listener.on_state_change(cached.on_listening)
    app.extensions[CACHED_KEY] = cached


def close_app(app: Flask) -> None:
    stop = app.extensions.pop(_ANNOUNCER_STOP_KEY, None)
    if stop is not None:
        stop()
