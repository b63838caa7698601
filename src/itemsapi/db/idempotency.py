"""Idempotency keys (the IETF draft draft-ietf-httpapi-idempotency-key-header): the only door to
the idempotency_keys table (sql/migrations/0007). Nothing here knows about HTTP: the web layer
hands in the key, the request's fingerprint and how to render the response (`Once`).

A write made with a key runs in one short transaction on its pooled connection:
1. one statement takes a transaction-level advisory lock on (principal, key) without waiting and
   reads the key's unexpired record: lock taken by another transaction -> IdempotencyKeyInUse
   (409: the first request is still running); a record with another fingerprint ->
   IdempotencyKeyReused (422); a record with this fingerprint -> its stored response, replayed;
2. otherwise the write itself, then its response rendered and stored, then COMMIT: the write and
   the record commit together or not at all, so a process that dies after the commit still has
   its answer stored, and one that dies before leaves nothing (PostgreSQL rolls back and drops
   the lock when the session ends).
Only successes are stored: a failed write changed nothing, so its retry simply runs again.

Expired records are purged by each worker's Purger in bounded batches (FOR UPDATE SKIP LOCKED:
purgers of every worker and replica share the work without waiting for each other, and a write
waits at most for one batch, and only when it reuses a key being purged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import sql
from psycopg.types.json import Jsonb

from itemsapi.db.database import Database
from itemsapi.db.pool import StatementConnection
from itemsapi.errors import IdempotencyKeyInUse, IdempotencyKeyReused, ItemsError

log = logging.getLogger(__name__)
T = TypeVar("T")

PURGE_BATCH = 1000  # records one purge statement deletes at most: a short transaction

_LIVE = sql.SQL("created_at > now() - make_interval(secs => %(ttl)s)")
# The lock is asked for in the select list, so it is taken whatever the join finds; hashing
# the principal into the seed keeps keys of different principals apart.
_GATE = (
    sql.SQL(
        "SELECT pg_try_advisory_xact_lock("
        "hashtextextended(%(key)s, hashtextextended(%(principal)s, 0)))"
        " AS free, k.fingerprint, k.status, k.headers, k.body, k.item_ids"
        " FROM (SELECT) AS one LEFT JOIN idempotency_keys AS k"
        " ON k.principal = %(principal)s AND k.key = %(key)s AND k.{live}"
    )
    .format(live=_LIVE)
    .as_string()
)
# A record left behind expired (not purged yet) is taken over; a live one means another request
# with this key committed after this one's snapshot: nothing is returned and it is a 409.
_STORE = (
    sql.SQL(
        "INSERT INTO idempotency_keys"
        " (principal, key, fingerprint, status, headers, body, item_ids)"
        " VALUES (%(principal)s, %(key)s, %(fingerprint)s, %(status)s, %(headers)s, %(body)s,"
        " %(item_ids)s)"
        " ON CONFLICT (principal, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
        " status = EXCLUDED.status, headers = EXCLUDED.headers, body = EXCLUDED.body,"
        " item_ids = EXCLUDED.item_ids, created_at = EXCLUDED.created_at"
        " WHERE NOT idempotency_keys.{live} RETURNING 1 AS stored"
    )
    .format(live=_LIVE)
    .as_string()
)
_PURGE = (
    sql.SQL(
        "DELETE FROM idempotency_keys WHERE (principal, key) IN ("
        " SELECT principal, key FROM idempotency_keys WHERE NOT {live}"
        " ORDER BY created_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)"
    )
    .format(live=_LIVE)
    .as_string()
)


@dataclass(frozen=True)
class Stored:
    """A response as it is stored and replayed: status, the headers a client needs, body; and
    the items the write changed, which a replay announces again."""

    status: int
    headers: dict[str, str]
    body: bytes
    item_ids: tuple[int, ...]


@dataclass(frozen=True)
class Once:
    """A write's idempotency key: whose, the key, the request's fingerprint, how long it is
    kept, and how to render the write's result as the response stored with it."""

    principal: str
    key: str
    fingerprint: bytes
    ttl: float
    render: Callable[[Any], Stored]


@dataclass(frozen=True)
class Outcome:
    response: Stored
    replayed: bool


def run(
    conn: StatementConnection, once: Once, write: Callable[[StatementConnection], T]
) -> Outcome:
    """Run `write` at most once for `once`'s key (see the module's docstring)."""
    names = {"principal": once.principal, "key": once.key, "ttl": once.ttl}
    with conn.transaction():
        gate = conn.run(_GATE, names).fetchone()
        if not gate["free"]:
            raise IdempotencyKeyInUse()
        if gate["fingerprint"] is not None:
            if bytes(gate["fingerprint"]) != once.fingerprint:
                raise IdempotencyKeyReused()
            stored = Stored(
                gate["status"], gate["headers"], bytes(gate["body"]), tuple(gate["item_ids"])
            )
            return Outcome(stored, True)
        response = once.render(write(conn))
        params = {
            **names,
            "fingerprint": once.fingerprint,
            "status": response.status,
            "headers": Jsonb(response.headers),
            "body": response.body,
            "item_ids": list(response.item_ids),
        }
        if conn.run(_STORE, params).fetchone() is None:
            raise IdempotencyKeyInUse()  # raised inside the transaction: the write rolls back
        return Outcome(response, False)


class IdempotencyRepository:
    def __init__(self, database: Database, ttl: float) -> None:
        self._db = database
        self._ttl = ttl

    def purge(self, batch: int = PURGE_BATCH) -> int:
        """Delete expired records, `batch` per statement (each its own short transaction),
        until none is left; the number deleted."""
        total = 0
        params = {"ttl": self._ttl, "batch": batch}
        while True:
            deleted = self._db.write(lambda conn: conn.run(_PURGE, params).rowcount)
            total += deleted
            if deleted < batch:
                return total


class Purger:
    """A worker's thread that purges expired records every `interval` seconds: idempotency
    keys, or (named) the change log's (db/changes.py)."""

    def __init__(
        self, purge: Callable[[], int], interval: float, what: str = "idempotency keys"
    ) -> None:
        self._what = what
        self._purge = purge
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        name = "itemsapi-purge-" + self._what.replace(" ", "-")
        self._thread = threading.Thread(target=self._loop, name=name)
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                deleted = self._purge()
            except ItemsError as exc:  # the database is down: the next round tries again
                log.warning("could not purge %s", self._what, extra={"error": str(exc)})
                continue
            if deleted:
                log.info("purged expired %s", self._what, extra={"deleted": deleted})
