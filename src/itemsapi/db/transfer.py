"""Streaming export and import of items in bounded memory, the same code for the HTTP views and
the CLI. Nothing here knows about HTTP.

- Export is one statement (db/export_rows.py: its SQL and how its rows are read), so one
  snapshot, however long it streams; PostgreSQL formats every row.
- Import is one `COPY items (...) FROM STDIN` inside a transaction: the rows go straight into
  the table (no staging table, no second pass), the table's own constraints still apply, and
  anything that goes wrong before the commit (a bad row, a cut connection, a timeout) rolls all
  of it back.

Each runs on a connection of its own (the Database it is given sits on a NullConnectionPool: a
fresh connection per transfer, closed after it), never on one of the pooled connections item
requests share, with a statement timeout of the transfer's own time limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import scalar_row
from psycopg.types.json import Jsonb
from psycopg_pool import NullConnectionPool

from itemsapi.config import Settings
from itemsapi.db import changes, list_query, statements
from itemsapi.db.database import Database
from itemsapi.db.export_rows import NDJSON, copied, export_params, export_sql, lines
from itemsapi.db.list_query import ListQuery
from itemsapi.db.pool import StatementConnection, connection_options, use_orjson
from itemsapi.db.statements import WRITABLE_COLUMNS
from itemsapi.errors import ItemsError, QueryTimeout

_IMPORT = sql.SQL("COPY items ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, WRITABLE_COLUMNS))
)
# Local to the transfer's transaction: behind a transaction-mode pooler (PgBouncer) a session
# setting would stay on a server connection other clients get next.
# TimeZone too: NDJSON's timestamps are written in the session's zone, which must be UTC.
_TIMEOUT = (
    "SELECT set_config('statement_timeout', %(ms)s, true), set_config('TimeZone', 'UTC', true)"
)


class _Stopped(Exception):
    """An export's time limit was reached."""


@dataclass
class ExportEnd:
    """How an export ended: `complete`, or cut off (time limit, database error) after `rows`
    rows, the last of which is `last_row` (its bytes as sent, for a resume cursor)."""

    rows: int = 0
    complete: bool = False
    reason: str | None = None
    last_row: bytes | None = None


class Transfers:
    """Time limits in seconds; None: none (the CLI's)."""

    def __init__(
        self, database: Database, export_seconds: float | None, import_seconds: float | None
    ) -> None:
        self._db = database
        self._export_seconds = export_seconds
        self._import_seconds = import_seconds

    def export(self, query: ListQuery, fmt: str, end: ExportEnd) -> Iterator[bytes]:
        """The rows of the list's query (every page of it) as chunks of NDJSON or CSV (with a
        header), within the export time limit; how it ended is written to `end`. Closing the
        iterator early cancels the statement and closes its connection."""
        statement = statements.text(export_sql, fmt, *list_query.list_shape(query))
        params = export_params(query)
        stop_at = time.monotonic() + (self._export_seconds or math.inf)
        read = lines if fmt == NDJSON else copied
        sent = False  # trouble before the first chunk is the caller's to answer
        try:
            with self._db.connection() as conn, conn.transaction():
                _set_timeout(conn, self._export_seconds)
                cursor = conn.cursor(row_factory=scalar_row)  # NDJSON's rows: one value each
                with cursor, closing(read(cursor, statement, params)) as chunks:
                    for chunk, rows, last_row in chunks:
                        # Counted as they are handed on: rows still being gathered when an
                        # error ends the export were never sent, and the marker must not name them.
                        end.rows += rows
                        end.last_row = last_row if rows else end.last_row
                        yield chunk
                        sent = True
                        if time.monotonic() >= stop_at:
                            end.reason = "time-limit"
                            # Leaving by an error, psycopg cancels the statement on the server
                            # (leaving quietly would not), then the transaction rolls back.
                            raise _Stopped
                    end.complete = True
        except _Stopped:
            pass
        except ItemsError as exc:
            if not sent:
                raise
            # The rest cannot be sent: the end marker says why. The statement timeout is the
            # time limit too (PostgreSQL slow to produce rows rather than the client to take them).
            end.reason = "time-limit" if isinstance(exc, QueryTimeout) else "database-error"
        finally:
            if end.last_row is not None:
                end.last_row = bytes(end.last_row)

    def import_items(self, rows: Iterable[Sequence[Any]], by: str = "") -> int:
        """COPY `rows` (the values of WRITABLE_COLUMNS, in that order) into items: all of them
        committed, or, if `rows` raises or anything fails on the way, none. How many. `by`:
        who imports, for the change log ('' : the database role)."""
        count = 0
        with self._db.connection() as conn, conn.transaction():
            _set_timeout(conn, self._import_seconds)
            conn.run(changes.ATTRIBUTE, {"by": by})
            with conn.cursor() as cursor, cursor.copy(_IMPORT) as copy:
                write = copy.write_row
                for name, description, price, quantity, attributes in rows:
                    write((name, description, price, quantity, Jsonb(attributes)))
                    count += 1
        return count

    def announce_all(self, origin: str) -> None:
        """Tell every read cache listening that any item may have changed (a commit from
        outside the API's servers, such as `itemsapi import`)."""
        announce = statements.text(statements.announce_statement)
        with self._db.connection() as conn:
            conn.run(announce, {"ids": None, "origin": origin})


def _set_timeout(conn: StatementConnection, seconds: float | None) -> None:
    # The transfer's own time limit replaces the item statements' short one; 0: none.
    conn.run(_TIMEOUT, {"ms": str(int(seconds * 1000)) if seconds else "0"})


def transfer_pool(settings: Settings, database_url: str, size: int) -> NullConnectionPool:
    """At most `size` transfer connections at once, each opened for its transfer and closed
    after it; the pool's wait for one is the pool timeout."""
    return NullConnectionPool(
        database_url,
        max_size=size,
        timeout=settings.pool_timeout,
        connection_class=StatementConnection,
        kwargs=connection_options(settings),
        configure=use_orjson,  # as the pool's connections
        name="itemsapi-transfers",
        open=False,
    )
