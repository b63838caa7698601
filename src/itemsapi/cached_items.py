"""ItemRepository behind the read cache: what the item views call.

Reads of an item and of a list page go through this worker's ReadCache and say how they were
served (hit, miss, bypass). Writes go to the repository and then invalidate:
- in this worker, before the response is sent;
- in the other workers of this server, through the WriteRing, also before the response is sent:
  a client that reads after its write's 2xx, from whichever worker, gets the new version;
- everywhere else (other replicas) through PostgreSQL: ItemRepository announces each write on
  channel itemsapi_items once it has committed, and every worker's Listener applies it. Writes
  from psql or pgAdmin reach every worker only this way, announced by the items triggers
  (sql/migrations/0002_items_notify.sql).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from multiprocessing.util import Finalize
from typing import Any

from flask import Flask

from itemsapi import metrics
from itemsapi.cache import BYPASS, ReadCache
from itemsapi.cache_sync import FLUSH, WriteRing
from itemsapi.config import Settings
from itemsapi.listener import Listener
from itemsapi.repository import ItemRepository, Page, Row
from itemsapi.statements import ListQuery

log = logging.getLogger(__name__)

CHANNEL = "itemsapi_items"  # the triggers' channel
CLEAR = "clear"  # payload of POST /cache/clear
EVERYTHING = "*"  # the triggers' payload for "drop everything"
CACHED_KEY = "itemsapi.cached_items"
LISTENER_KEY = "itemsapi.listener"
_LISTENER_STOP_KEY = "itemsapi.listener_stop"


class CachedItemRepository:
    def __init__(
        self, repository: ItemRepository, cache: ReadCache | None, ring: WriteRing | None
    ) -> None:
        self._repository = repository
        self._cache = cache
        self._ring = ring
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

    # --- reads ------------------------------------------------------------------------------

    def get(self, item_id: int) -> tuple[Row, str]:
        """The item and how it was served; ItemNotFound is never cached."""
        if self._cache is None:
            return self._repository.get(item_id), BYPASS
        self._ring.catch_up(self._apply_server_writes)
        row, outcome = self._cache.item(item_id, lambda: self._repository.get(item_id))
        self._lookups["item", outcome].inc()
        return row, outcome

    def list(self, query: ListQuery) -> tuple[Page, str]:
        if self._cache is None:
            return self._repository.list(query), BYPASS
        self._ring.catch_up(self._apply_server_writes)
        page, outcome = self._cache.page(query, lambda: self._repository.list(query))
        self._lookups["list", outcome].inc()
        return page, outcome

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

    def _written(self, ids: Iterable[int]) -> None:
        if self._cache is None:
            return
        self._cache.invalidate(ids)
        self._invalidations["write"].inc()
        self._ring.publish(ids)
        metrics.CACHE_ENTRIES.set(len(self._cache))

    # --- what others tell -------------------------------------------------------------------

    def _apply_server_writes(self, ids: list[int]) -> None:
        if FLUSH in ids:
            self._flush()
        else:
            self._cache.invalidate(ids)
            self._invalidations["server"].inc()

    def on_notification(self, payload: str) -> None:
        """A trigger's "<epoch>:<ids>" or "<epoch>:*", or CLEAR. Anything unreadable flushes:
        a change must never go unapplied."""
        ids: list[int] | None = None  # None: everything
        if payload != CLEAR:
            stamp, _, listed = payload.partition(":")
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
        metrics.CACHE_ENTRIES.set(len(self._cache))

    def on_listening(self, listening: bool) -> None:
        self._cache.set_usable(listening)
        metrics.CACHE_LISTENER_CONNECTED.set(1 if listening else 0)
        metrics.CACHE_ENTRIES.set(0)

    def _flush(self) -> None:
        self._cache.flush()
        self._invalidations["flush"].inc()
        metrics.CACHE_ENTRIES.set(0)


def init_app(app: Flask, repository: ItemRepository) -> None:
    """The cached repository for the views; with the cache on, its ring and listener too."""
    settings: Settings = app.config["SETTINGS"]
    if not settings.cache:
        app.extensions[CACHED_KEY] = CachedItemRepository(repository, None, None)
        return
    cache = ReadCache(settings.cache_max_entries, settings.cache_ttl, metrics.CACHE_EVICTIONS.inc)
    cached = CachedItemRepository(repository, cache, WriteRing.from_env())
    listener = Listener(settings.listen_database_url or settings.database_url)
    listener.subscribe(CHANNEL, cached.on_notification)
    listener.on_state_change(cached.on_listening)
    listener.start()
    app.extensions[CACHED_KEY] = cached
    app.extensions[LISTENER_KEY] = listener
    # A Granian worker skips atexit handlers but runs multiprocessing finalizers.
    app.extensions[_LISTENER_STOP_KEY] = Finalize(listener, listener.stop, exitpriority=11)


def close_app(app: Flask) -> None:
    stop = app.extensions.pop(_LISTENER_STOP_KEY, None)
    if stop is not None:
        stop()
    app.extensions.pop(LISTENER_KEY, None)
