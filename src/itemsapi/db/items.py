"""ItemRepository: the only door to the items table. Nothing here knows about HTTP.

Statements come from statements.py and run on a pooled connection's reused cursor
(StatementConnection.run) through Database, which maps driver errors to domain errors; psycopg
prepares each statement shape once it has run `prepare_threshold` times on a connection
(configuration, see pool.py). Every request-path method takes the request's `deadline` for
waiting on the pool (database.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg.types.json import Jsonb

from itemsapi.db import batch, counting, idempotency, list_query, schema_state, sized, statements
from itemsapi.db.database import Database
from itemsapi.db.idempotency import Once, Outcome
from itemsapi.db.list_query import ListQuery, SortKey
from itemsapi.db.pool import Row, StatementConnection
from itemsapi.db.statements import WRITABLE_COLUMNS, text
from itemsapi.errors import ItemNotFound, PreconditionFailed, SchemaMissing

_SELECT = text(statements.select_statement)
_INSERT = text(statements.insert_statement)
_INSERT_MANY = {
    minimal: text(batch.insert_many_statement, minimal=minimal) for minimal in (False, True)
}
_VERSION = text(statements.version_statement)
_RECENT = text(sized.recent_statement)
_PING = text(schema_state.ping_statement)
_APPLIED = text(schema_state.applied_versions_statement)
_NOTIFY = text(statements.notify_statement)
_ANNOUNCE = text(statements.announce_statement)
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    items: list[Row]
    next_key: SortKey | None
    size: int = 0  # bytes the items take as JSON, as sized.py measures them
    count: int | None = None  # the total the query asked for (counting.py)


class ItemRepository:
    def __init__(self, database: Database, max_page_bytes: int = 4 * 1024 * 1024) -> None:
        """`max_page_bytes`: a list page holds no more items than fit in it (always one)."""
        self._db = database
        self._max_page_bytes = max_page_bytes

    # Every write takes `by`, who makes it (the API's principal, '' for none), for the change
    # log to record (db/changes.py).

    def create(
        self, values: Mapping[str, Any], deadline: float | None = None, once: Once | None = None,
        by: str = "",
    ) -> Row | Outcome:  # fmt: skip
        """The new row; with `once` (an Idempotency-Key), the Outcome of idempotency.run."""
        params = {**_with_jsonb(values), "by": by}
        return self._write(lambda conn: conn.run(_INSERT, params).fetchone(), deadline, once)

    def create_many(
        self, rows: Sequence[Mapping[str, Any]], deadline: float | None = None,
        once: Once | None = None, minimal: bool = False, by: str = "",
    ) -> list[Row] | Outcome:  # fmt: skip
        """Insert every row in one statement, all or none; the new rows in the given order (with
        `minimal`, only their ids and versions)."""
        params = {"rows": batch.rows_param(rows), "by": by}
        statement = _INSERT_MANY[minimal]

        def run(conn: StatementConnection) -> list[Row]:
            return sorted(conn.run(statement, params).fetchall(), key=lambda row: row["id"])

        return self._write(run, deadline, once)

    def get(self, item_id: int, deadline: float | None = None) -> Row:
        row = self._db.read(lambda conn: conn.run(_SELECT, {"id": item_id}).fetchone(), deadline)
        if row is None:
            raise ItemNotFound(item_id)
        return row

    def recent(self, limit: int, budget: int, entry_cap: int) -> list[Row]:
        """Of the `limit` items changed last, newest first, those of at most `entry_cap` bytes,
        until they add up to `budget` bytes (sized.py)."""
        params = {"limit": limit, "budget": budget, "entry_cap": entry_cap}
        return self._db.read(lambda conn: conn.run(_RECENT, params).fetchall())

    def list(self, query: ListQuery, deadline: float | None = None) -> Page:
        """Up to `query.limit` items, cut earlier where they would pass max_page_bytes, and the
        total query.count asks for, read on the same connection."""
        statement = text(sized.list_sql, *list_query.list_shape(query))
        params = list_query.list_params(query)
        params["budget"] = self._max_page_bytes

        def run(conn: StatementConnection) -> tuple[list[Row], int | None]:
            return conn.run(statement, params).fetchall(), counting.total(conn, query)

        rows, count = self._db.read(run, deadline)
        items: list[Row] = []
        size = 0
        for row in rows:
            if not row.pop("kept"):
                break
            size = row.pop("running")
            items.append(row)
        # A row not kept (past the limit or the budget) says there is more.
        next_key = list_query.sort_key(items[-1], query.sort) if len(items) < len(rows) else None
        if query.sort == list_query.RELEVANCE:
            for row in items:
                del row["rank"]
        return Page(items, next_key, size, count)

    def replace(
        self, item_id: int, values: Mapping[str, Any], versions: list[int] | None,
        deadline: float | None = None, by: str = "",
    ) -> Row:  # fmt: skip
        statement = text(
            statements.update_statement, WRITABLE_COLUMNS, check_version=versions is not None
        )
        return self._change(item_id, statement, values, versions, deadline, by=by)

    def patch(
        self, item_id: int, changes: Mapping[str, Any], versions: list[int] | None,
        deadline: float | None = None, once: Once | None = None, by: str = "",
    ) -> Row | Outcome:  # fmt: skip
        # A column outside the allow-list makes update_statement raise.
        statement = text(
            statements.update_statement, tuple(changes), merge_attributes=True,
            check_version=versions is not None,
        )  # fmt: skip
        return self._change(item_id, statement, changes, versions, deadline, once, by)

    def delete(
        self, item_id: int, versions: list[int] | None, deadline: float | None = None,
        by: str = "",
    ) -> None:  # fmt: skip
        statement = text(statements.delete_statement, check_version=versions is not None)
        self._change(item_id, statement, {}, versions, deadline, by=by)

    def notify(self, channel: str, payload: str) -> None:
        """Tell every worker of every replica listening on `channel` (cache/listener.py)."""
        self._db.write(lambda conn: conn.run(_NOTIFY, {"channel": channel, "payload": payload}))

    def announce(self, ids: list[int] | None, origin: str) -> None:
        """Tell every worker's read cache that committed writes of the server `origin` changed
        these items (None: any item). The items triggers leave this API's own writes to this
        (sql/migrations/0002, 0004); cache/announcer.py sends it off the request path."""
        self._db.write(lambda conn: conn.run(_ANNOUNCE, {"ids": ids, "origin": origin}))

    def ping(self, timeout: float) -> frozenset[int]:
        """The schema versions applied, read on a pooled connection (waiting at most `timeout`
        for the pool) after checking the schema is in place: without it every item request
        would fail."""
        with self._db.connection(timeout) as conn:
            if not conn.run(_PING).fetchone()["in_place"]:
                raise SchemaMissing()
            versions = conn.run(_APPLIED).fetchone()["versions"]
        return frozenset(versions or ())

    def _change(
        self, item_id: int, statement: str, values: Mapping[str, Any],
        versions: list[int] | None, deadline: float | None, once: Once | None = None,
        by: str = "",
    ) -> Row | Outcome:  # fmt: skip
        params = {**_with_jsonb(values), "id": item_id, "by": by}
        if versions is not None:
            params["versions"] = versions

        def run(conn: StatementConnection) -> Row:
            row = conn.run(statement, params).fetchone()
            if row is not None:
                return row
            # Nothing matched: tell a missing item from a stale If-Match.
            current = conn.run(_VERSION, {"id": item_id}).fetchone()
            if current is None:
                raise ItemNotFound(item_id)
            raise PreconditionFailed(item_id, current["version"])

        return self._write(run, deadline, once)

    def _write(
        self, work: Callable[[StatementConnection], T], deadline: float | None, once: Once | None
    ) -> T | Outcome:
        if once is None:
            return self._db.write(work, deadline)  # one autocommit statement, as always
        return self._db.write(lambda conn: idempotency.run(conn, once, work), deadline)


def _with_jsonb(values: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(values)
    if params.get("attributes") is not None:
        params["attributes"] = Jsonb(params["attributes"])
    return params
