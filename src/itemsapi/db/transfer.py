"""Streaming export and import of items in bounded memory, the same code for the HTTP views and
the CLI. Nothing here knows about HTTP.

- Export is one statement, so one snapshot, however long it streams, and PostgreSQL formats
  every row. CSV is `COPY (the list's query) TO STDOUT`, its rows arriving one CopyData message
  each. NDJSON is the list's query with each row made a JSON line by PostgreSQL (row_to_json),
  sent as bytes (bytea in binary: taken as they are) and received STREAM_ROWS rows at a time
  (libpq's chunked rows, psycopg's Cursor.stream): a third less of this process's CPU per row
  than reading one COPY message per row (docs/performance.md, "Export and import"). Either is
  gathered here into chunks of about CHUNK_BYTES.
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
from itemsapi.db import statements
from itemsapi.db.database import Database
from itemsapi.db.pool import StatementConnection, connection_options, use_orjson
from itemsapi.db.statements import WRITABLE_COLUMNS, ListQuery
from itemsapi.errors import ItemsError, QueryTimeout

NDJSON, CSV = "ndjson", "csv"
FORMATS = (NDJSON, CSV)
CHUNK_BYTES = 64 * 1024  # what one chunk of an export gathers before it is handed on
# NDJSON rows libpq gathers before handing them on: this many rows are held at once (an item can
# be as large as ITEMSAPI_MAX_BODY_BYTES), and one step per this many rows is all it saves.
STREAM_ROWS = 32
CSV_COLUMNS = (
    "id", "name", "description", "price", "quantity", "attributes", "version", "created_at",
    "updated_at",
)  # fmt: skip

# RFC 3339 in UTC with microseconds and a Z (as the API writes them), for the CSV.
_TIME = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_COLUMNS = sql.SQL(
    "r.id, r.name, r.description, r.price, r.quantity, r.attributes, r.version, "
    + _TIME.format("r.created_at") + " AS created_at, "
    + _TIME.format("r.updated_at") + " AS updated_at"
)  # fmt: skip
# One compact JSON object per row: row_to_json(r) of the list's row, byte for byte (members in
# the list's column order; timestamps as PostgreSQL writes them in JSON, RFC 3339 in the
# session's UTC, `+00:00`: to_char's `Z`, as the CSV has it, would double what the database
# spends on each row). It is built member by member, each written as row_to_json writes it,
# which costs PostgreSQL a sixth less per row: row_to_json looks up how to write each column
# again for every row. A test holds the two equal for every kind of value. JSON text holds no
# raw newline (PostgreSQL writes control characters in strings as \u escapes): a line per row.
_MEMBERS = (
    ("id", "{}"), ("name", "to_json({})"), ("description", "to_json({})"),
    ("price", "COALESCE(to_json({})::text, 'null')"),  # float8, or NULL
    ("quantity", "{}"), ("attributes", "{}"), ("version", "{}"),
    ("created_at", "to_json({})"), ("updated_at", "to_json({})"),
)  # fmt: skip
NDJSON_LINE = sql.SQL(" || ").join(
    [
        part
        for n, (column, written) in enumerate(_MEMBERS)
        for part in (
            sql.Literal(("{" if n == 0 else ",") + f'"{column}":'),
            sql.SQL(written).format(sql.Identifier("r", column)),
        )
    ]
    + [sql.Literal("}")]
)
_IMPORT = sql.SQL("COPY items ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, WRITABLE_COLUMNS))
)
# Local to the transfer's transaction: behind a transaction-mode pooler (PgBouncer) a session
# setting would stay on a server connection other clients get next.
# TimeZone too: NDJSON's timestamps are written in the session's zone, which must be UTC.
_TIMEOUT = (
    "SELECT set_config('statement_timeout', %(ms)s, true), set_config('TimeZone', 'UTC', true)"
)


def export_sql(fmt: str, *shape: Any) -> sql.Composed:
    """The list's query for a shape (statements.list_shape), without its limit, as NDJSON lines
    (a query of one bytea column) or as CSV (a COPY).

    The list's query stays a subquery with its LIMIT (NULL: no limit), which PostgreSQL neither
    flattens nor reorders; the outer SELECT only formats each row, in the subquery's order."""
    inner = statements.list_sql(*shape)
    if fmt == NDJSON:  # each line's UTF-8 bytes, which a binary bytea arrives as
        line = sql.SQL("convert_to({}, 'UTF8')").format(NDJSON_LINE)
        return sql.SQL("SELECT {} FROM ({}) AS r").format(line, inner)
    rows = sql.SQL("SELECT {} FROM ({}) AS r").format(_COLUMNS, inner)
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(rows)


def export_params(query: ListQuery) -> dict[str, Any]:
    return {**statements.list_params(query), "limit": None}  # LIMIT NULL: every row


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
        statement = statements.text(export_sql, fmt, *statements.list_shape(query))
        params = export_params(query)
        stop_at = time.monotonic() + (self._export_seconds or math.inf)
        read = _lines if fmt == NDJSON else _copied
        sent = False  # trouble before the first chunk is the caller's to answer
        try:
            with self._db.connection() as conn, conn.transaction():
                _set_timeout(conn, self._export_seconds)
                cursor = conn.cursor(row_factory=scalar_row)  # NDJSON's rows: one value each
                with cursor, closing(read(cursor, statement, params)) as chunks:
                    for chunk, rows, last_row in chunks:
                        # Counted as sent: a chunk lost to an error below was never counted.
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

    def import_items(self, rows: Iterable[Sequence[Any]]) -> int:
        """COPY `rows` (the values of WRITABLE_COLUMNS, in that order) into items: all of them
        committed, or, if `rows` raises or anything fails on the way, none. How many."""
        count = 0
        with self._db.connection() as conn, conn.transaction():
            _set_timeout(conn, self._import_seconds)
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


Chunks = Iterator[tuple[bytes, int, bytes | None]]  # (chunk, its rows, the last of them)


def _lines(cursor: Any, statement: str, params: dict[str, Any]) -> Chunks:
    """NDJSON: the statement's rows, each one line's bytes, in chunks."""
    lines: list[bytes] = []
    size = 0
    rows = cursor.stream(statement, params, binary=True, size=STREAM_ROWS)
    with closing(rows):  # closed early: psycopg cancels the statement
        for line in rows:
            lines.append(line)
            size += len(line)
            if size >= CHUNK_BYTES:
                yield _joined(lines)
                lines, size = [], 0
    if lines:
        yield _joined(lines)


def _joined(lines: list[bytes]) -> tuple[bytes, int, bytes]:
    last = lines[-1]
    lines.append(b"")  # for the last line's newline
    return b"\n".join(lines), len(lines) - 1, last


def _copied(cursor: Any, statement: str, params: dict[str, Any]) -> Chunks:
    """CSV: the COPY's messages, a header then one row each, in chunks."""
    buffer = bytearray()
    rows, last_row = -1, None  # the header is no row
    with cursor.copy(statement, params) as copy:
        for data in copy:
            buffer += data
            rows += 1
            last_row = data
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer), rows, last_row
                buffer.clear()
                rows = 0
    if buffer:
        yield bytes(buffer), rows, last_row


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
