"""Services: every long-lived collaborator of one worker process, built in one function from the
settings, opened and closed in the one order written here, and handed to the parts that need
them (app.py gives the views theirs). Nothing else creates a pool, a thread or a listener.

Built before it is opened: subscribers register on the listener while it is built, so none
misses a notification once it listens. Closed once, at the process's exit at the latest (a
Granian worker is a multiprocessing child: it skips atexit handlers but runs multiprocessing
finalizers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from multiprocessing.util import Finalize
from typing import TYPE_CHECKING

from psycopg_pool import ConnectionPool, NullConnectionPool

from itemsapi import metrics, tracing
from itemsapi.auth.enforce import Authenticate, Enforcer
from itemsapi.auth.keys import KeyStore
from itemsapi.auth.scopes import Policy
from itemsapi.cache.announcer import Announcer
from itemsapi.cache.follower import ChangeFollower
from itemsapi.cache.items import CachedItemRepository, entry_size
from itemsapi.cache.listener import Listener
from itemsapi.cache.notification import CHANNEL
from itemsapi.cache.ring import WriteRing
from itemsapi.cache.store import ReadCache
from itemsapi.config import Settings
from itemsapi.db import migrations
from itemsapi.db.changes import ChangeLog
from itemsapi.db.database import Database
from itemsapi.db.health import DatabaseCheck
from itemsapi.db.idempotency import IdempotencyRepository, Purger
from itemsapi.db.items import ItemRepository
from itemsapi.db.keys import KeyRepository
from itemsapi.db.pool import ConnectionEvents, create_pool
from itemsapi.db.transfer import Transfers, transfer_pool

if TYPE_CHECKING:
    from itemsapi.auth.jwks import Jwks

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool
    database: Database
    items: ItemRepository
    cached_items: CachedItemRepository
    ring: WriteRing
    announcer: Announcer
    listener: Listener | None
    enforcer: Enforcer
    identity_provider: Jwks | None  # JWT mode's key set, for /health
    check: DatabaseCheck
    sampler: metrics.PoolSampler
    transfer_pool: NullConnectionPool
    transfers: Transfers
    purger: Purger
    changes: ChangeLog
    follower: ChangeFollower
    pruner: Purger
    _closer: Finalize | None = None

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Everything a worker needs, wired and subscribed; nothing started yet."""
        events = ConnectionEvents()
        pool = create_pool(settings, events)
        database = Database(pool, events)
        items = ItemRepository(database, settings.max_response_bytes)
        listener = None
        if settings.needs_listener:
            listener = Listener(settings.listen_database_url or settings.database_url or "")
        ring = WriteRing.from_env()
        announcer = Announcer(items.announce, ring.origin)
        changes = ChangeLog(database, settings.changes_retention)
        follower = ChangeFollower(changes, settings.changes_poll_interval, settings.changes_waiters)
        cache, prime = None, (0, 0, 0)
        if settings.cache and listener is not None:
            cache = ReadCache(
                settings.cache_max_entries,
                settings.cache_ttl,
                metrics.CACHE_EVICTIONS.inc,
                sizeof=entry_size,
                max_bytes=settings.cache_max_bytes,
                max_entry_bytes=settings.cache_max_entry_bytes,
            )
            prime = (
                min(settings.cache_prime, settings.cache_max_entries),
                settings.cache_max_bytes,
                settings.cache_max_entry_bytes,
            )
        cached_items = CachedItemRepository(
            items, cache, ring, announcer, prime, follower if cache is not None else None
        )
        if cache is not None and listener is not None:
            listener.subscribe(CHANNEL, cached_items.on_notification)
            listener.on_state_change(cached_items.on_listening)
            follower.follow(cached_items.apply_log)
        if listener is not None:
            listener.subscribe(CHANNEL, follower.wake)
        identity_provider = None
        if settings.auth == "jwt":
            from itemsapi.auth.jwks import Jwks  # PyJWT only where it is used

            url, refresh = settings.jwt_jwks_url or "", settings.jwt_jwks_refresh_seconds
            identity_provider = Jwks(url, refresh)
        authenticate = _authenticator(settings, database, listener, identity_provider)
        required = {m.version: m.path.name for m in migrations.discover()}
        # Exports and imports: connections of their own, one per transfer slot, never the
        # pool's (a transfer holds its connection for minutes).
        slots = settings.export_slots + settings.import_slots
        transfers_pool = transfer_pool(settings, settings.database_url or "", slots)
        transfers = Transfers(
            Database(transfers_pool), settings.export_time_limit, settings.import_time_limit
        )
        return cls(
            settings=settings,
            pool=pool,
            database=database,
            items=items,
            cached_items=cached_items,
            ring=ring,
            announcer=announcer,
            listener=listener,
            enforcer=Enforcer(Policy(settings), authenticate),
            identity_provider=identity_provider,
            check=DatabaseCheck(database, items, settings.ready_timeout, required),
            sampler=metrics.PoolSampler(pool),
            transfer_pool=transfers_pool,
            transfers=transfers,
            purger=Purger(
                IdempotencyRepository(database, settings.idempotency_ttl).purge,
                settings.idempotency_purge_interval,
            ),
            changes=changes,
            follower=follower,
            pruner=Purger(changes.prune, settings.idempotency_purge_interval, "change log"),
        )

    def open(self) -> None:
        metrics.check_mode()
        tracing.start()  # here, in the worker that serves: its exporter thread is its own
        # Don't wait for the database: the API serves /live and answers 503 until it answers.
        self.pool.open(wait=False)
        self.transfer_pool.open()
        self.sampler.start()
        self.announcer.start()
        self.purger.start()
        self.pruner.start()
        self.follower.start()
        if self.listener is not None:
            self.listener.start()
        self._closer = Finalize(self, self._close, exitpriority=10)

    def close(self) -> None:
        """Stop everything open() started (once; again is harmless)."""
        if self._closer is not None:
            self._closer()  # runs _close once and unregisters it

    def _close(self) -> None:
        # The announcer sends what is pending on the pool, so it stops before the pool closes.
        self.announcer.stop()
        self.purger.stop()
        self.pruner.stop()
        self.follower.stop()
        if self.listener is not None:
            self.listener.stop()
        self.sampler.stop()
        self.check.close()
        self.transfer_pool.close()
        self.pool.close()
        self.ring.close()
        metrics.retire_process()
        tracing.stop()  # sends the spans still queued


def _authenticator(
    settings: Settings, database: Database, listener: Listener | None, jwks: Jwks | None
) -> Authenticate | None:
    if settings.auth == "off":
        log.warning(
            "ITEMSAPI_AUTH=off: access control is switched off; anyone who can reach the port "
            "may read, change and delete every item"
        )
        return None
    if jwks is not None:
        from itemsapi.auth.jwt_tokens import JwtVerifier

        return JwtVerifier(settings, jwks).verify
    return KeyStore(KeyRepository(database), listener).verify
