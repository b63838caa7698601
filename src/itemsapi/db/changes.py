"""The change log (sql/migrations/0010, 0011): the only door to item_changes. No HTTP here.

A change's position is (tx, seq), and the feed hands out, in that order, only the changes whose
tx is below the xmin of the reading statement's own snapshot: every transaction still able to
commit a change has an id at or above that xmin, and a change's tx is never below its writer's
id, so nothing can appear later behind a position already handed out (docs/design.md, "The
change feed", has the whole argument, and why one item's changes come in their order).

Pruned oldest first, in bounded batches, each its own short transaction; item_changes_pruned
keeps the last position deleted, so a cursor at or after it has missed nothing and one before
it gets CursorExpired (410). One pruner at a time (a transaction-level advisory lock taken
without waiting: the others skip their turn), so the pruned part is always a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from psycopg import sql

from itemsapi.db.database import Database
from itemsapi.db.pool import Row
from itemsapi.errors import CursorExpired

PRUNE_BATCH = 1000  # changes one prune statement deletes at most: a short transaction
# 'itemsprn' in ASCII, as a bigint: the pruners' turn.
PRUNE_LOCK = int.from_bytes(b"itemsprn", "big")

# The changes a reader may be handed: those of transactions older than every one in progress.
_SETTLED = sql.SQL("c.tx < pg_snapshot_xmin(pg_current_snapshot())")
# The item after the change as the API shows it: built here from the columns the triggers keep
# (sql/migrations/0011), or as 0010's triggers stored it.
_ITEM = sql.SQL(
    "COALESCE(c.item, CASE WHEN c.operation = 'delete' THEN jsonb_build_object('id', c.item_id)"
    " ELSE jsonb_build_object('id', c.item_id, 'name', c.name, 'description', c.description,"
    " 'price', c.price, 'quantity', c.quantity, 'attributes', c.attributes,"
    " 'version', c.version, 'created_at', c.created_at, 'updated_at', c.updated_at) END)"
)
_COLUMNS = sql.SQL(
    "c.tx::text::bigint AS tx, c.seq, c.item_id, c.version, c.operation, c.changed_at,"
    " c.changed_by, {item} AS item"
).format(item=_ITEM)
_AFTER = sql.SQL("(c.tx, c.seq) > (%(tx)s::text::xid8, %(seq)s)")


def _text(template: str) -> str:
    return sql.SQL(template).format(settled=_SETTLED, columns=_COLUMNS, after=_AFTER).as_string()


FEED = _text(
    "SELECT {columns} FROM item_changes AS c WHERE {after} AND {settled}"
    " ORDER BY c.tx, c.seq LIMIT %(limit)s"
)
# Ids only, settled or not (a cache must drop what any commit changed, however it will be
# ordered), aggregated into one row: what a worker's follower applies (cache/follower.py). The
# settled changes are a prefix of the order (tx < xmin sorts first).
CHANGED_IDS = _text(
    "WITH next AS (SELECT c.tx, c.seq, c.item_id, {settled} AS settled FROM item_changes AS c"
    "   WHERE {after} ORDER BY c.tx, c.seq LIMIT %(limit)s)"
    " SELECT count(*) AS read, array_agg(DISTINCT item_id) FILTER (WHERE settled) AS ids,"
    " (array_agg(tx::text::bigint ORDER BY tx DESC, seq DESC) FILTER (WHERE settled))[1] AS tx,"
    " (array_agg(seq ORDER BY tx DESC, seq DESC) FILTER (WHERE settled))[1] AS seq,"
    " array_agg(item_id) FILTER (WHERE NOT settled) AS ahead_ids,"
    " array_agg(tx::text::bigint) FILTER (WHERE NOT settled) AS ahead_tx,"
    " array_agg(seq) FILTER (WHERE NOT settled) AS ahead_seq FROM next"
)
# The last settled position: where a follower that starts now begins.
LATEST = _text(
    "SELECT c.tx::text::bigint AS tx, c.seq FROM item_changes AS c WHERE {settled}"
    " ORDER BY c.tx DESC, c.seq DESC LIMIT 1"
)
PRUNED = "SELECT tx::text::bigint AS tx, seq FROM item_changes_pruned"
HISTORY = _text(
    "SELECT {columns} FROM item_changes AS c WHERE c.item_id = %(id)s"
    " AND (%(before)s::bigint IS NULL OR c.seq < %(before)s) ORDER BY c.seq DESC LIMIT %(limit)s"
)
# The oldest settled changes, cut at the first one still within the retention: the part deleted
# is always a prefix of the feed's order, and item_changes_pruned moves to its end.
PRUNE = _text(
    "WITH oldest AS (SELECT c.tx, c.seq, c.changed_at FROM item_changes AS c WHERE {settled}"
    "   ORDER BY c.tx, c.seq LIMIT %(batch)s),"
    " doomed AS (SELECT tx, seq FROM oldest WHERE (tx, seq) < ALL (SELECT tx, seq FROM oldest"
    "   WHERE changed_at >= now() - make_interval(secs => %(retention)s))),"
    " gone AS (DELETE FROM item_changes AS c USING doomed AS d"
    "   WHERE c.tx = d.tx AND c.seq = d.seq RETURNING c.tx, c.seq),"
    " moved AS (UPDATE item_changes_pruned SET (tx, seq) ="
    "   (SELECT tx, seq FROM gone ORDER BY tx DESC, seq DESC LIMIT 1)"
    "   WHERE EXISTS (SELECT FROM gone))"
    " SELECT count(*) AS deleted FROM gone"
)
PRUNE_TURN = "SELECT pg_try_advisory_xact_lock(%(key)s) AS mine"
# Who writes, for a transaction's remaining statements (an import's COPY); item statements
# carry it in their own text instead (statements.ATTRIBUTED).
ATTRIBUTE = "SELECT set_config('itemsapi.principal', %(by)s, true)"


class Position(NamedTuple):
    """Where a change is in the feed; (0, 0) is before the first."""

    tx: int
    seq: int


START = Position(0, 0)


@dataclass(frozen=True)
class FeedPage:
    changes: list[Row]
    next: Position  # the last change's position, or the one asked from when there was none


@dataclass(frozen=True)
class ChangedIds:
    ids: list[int]  # of the settled changes read, each once
    settled: Position  # the last settled position read: where the next read starts
    ahead: list[tuple[Position, int]]  # changes committed but not settled yet, with their ids
    complete: bool  # False: more than the limit came after; read again from `settled`


class ChangeLog:
    def __init__(self, database: Database, retention: float = 7 * 86400.0) -> None:
        self._db = database
        self._retention = retention

    def feed(self, after: Position | None, limit: int, deadline: float | None = None) -> FeedPage:
        """Up to `limit` settled changes after `after` (None: from the oldest kept), in feed
        order; CursorExpired if changes after `after` have been pruned."""

        def read(conn) -> FeedPage:
            nonlocal after
            pruned = Position(**conn.run(PRUNED).fetchone())
            if after is None:
                after = pruned
            elif after < pruned:
                raise CursorExpired()
            params = {"tx": str(after.tx), "seq": after.seq, "limit": limit}
            rows = conn.run(FEED, params).fetchall()
            return FeedPage(rows, position(rows[-1]) if rows else after)

        return self._db.read(read, deadline)

    def history(
        self, item_id: int, limit: int, before: int | None = None, deadline: float | None = None
    ) -> list[Row]:
        """Up to `limit` changes of one item, newest first, older than seq `before` if given."""
        params = {"id": item_id, "limit": limit, "before": before}
        return self._db.read(lambda conn: conn.run(HISTORY, params).fetchall(), deadline)

    def latest(self) -> Position:
        """The last settled position (START when the log is empty)."""
        row = self._db.read(lambda conn: conn.run(LATEST).fetchone())
        return START if row is None else Position(**row)

    def changed_ids(self, after: Position, limit: int) -> ChangedIds:
        """The items changed after `after` by committed transactions, settled or not."""
        params = {"tx": str(after.tx), "seq": after.seq, "limit": limit}
        row = self._db.read(lambda conn: conn.run(CHANGED_IDS, params).fetchone())
        settled = after if row["tx"] is None else Position(row["tx"], row["seq"])
        ahead = list(zip(
            map(Position, row["ahead_tx"] or (), row["ahead_seq"] or ()), row["ahead_ids"] or (),
            strict=True,
        ))  # fmt: skip
        return ChangedIds(row["ids"] or [], settled, ahead, row["read"] < limit)

    def prune(self, batch: int = PRUNE_BATCH) -> int:
        """Delete changes older than the retention, `batch` per transaction, until none is
        left or another pruner holds the turn; the number deleted."""
        total = 0
        params = {"retention": self._retention, "batch": batch}

        def one_batch(conn) -> int:
            with conn.transaction():
                if not conn.run(PRUNE_TURN, {"key": PRUNE_LOCK}).fetchone()["mine"]:
                    return 0
                return conn.run(PRUNE, params).fetchone()["deleted"]

        while True:
            deleted = self._db.write(one_batch)
            total += deleted
            if deleted < batch:
                return total


def position(row: Row) -> Position:
    return Position(row["tx"], row["seq"])
