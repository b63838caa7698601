"""How an export's rows are made and read: the statement for each format, and the readers
that gather its rows into chunks of about CHUNK_BYTES (db/transfer.py runs them).

- CSV is `COPY (the list's query) TO STDOUT`, its rows arriving one CopyData message each.
- NDJSON is the list's query with each row made a JSON line by PostgreSQL, sent as bytes (a
  bytea, in binary: taken as they are) and received STREAM_ROWS rows at a time (libpq's chunked
  rows, psycopg's Cursor.stream): a fifth less of this process's CPU per row than reading one
  COPY message per row (docs/performance.md, "Export and import").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

from psycopg import sql

from itemsapi.db import list_query
from itemsapi.db.list_query import ListQuery

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
# which costs PostgreSQL less per row: row_to_json looks up how to write each column
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


def export_sql(fmt: str, *shape: Any) -> sql.Composed:
    """The list's query for a shape (list_query.list_shape), without its limit, as NDJSON lines
    (a query of one bytea column) or as CSV (a COPY).

    The list's query stays a subquery with its LIMIT (NULL: no limit), which PostgreSQL neither
    flattens nor reorders; the outer SELECT only formats each row, in the subquery's order."""
    inner = list_query.list_sql(*shape, one_page=False)
    if fmt == NDJSON:  # each line's UTF-8 bytes, which a binary bytea arrives as
        line = sql.SQL("convert_to({}, 'UTF8')").format(NDJSON_LINE)
        return sql.SQL("SELECT {} FROM ({}) AS r").format(line, inner)
    rows = sql.SQL("SELECT {} FROM ({}) AS r").format(_COLUMNS, inner)
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(rows)


def export_params(query: ListQuery) -> dict[str, Any]:
    return {**list_query.list_params(query), "limit": None}  # LIMIT NULL: every row


Chunks = Iterator[tuple[bytes, int, bytes | None]]  # (chunk, its rows, the last of them)


def lines(cursor: Any, statement: str, params: dict[str, Any]) -> Chunks:
    """NDJSON: the statement's rows, each one line's bytes, in chunks."""
    gathered: list[bytes] = []
    size = 0
    rows = cursor.stream(statement, params, binary=True, size=STREAM_ROWS)
    with closing(rows):  # closed early: psycopg cancels the statement
        for line in rows:
            gathered.append(line)
            size += len(line)
            if size >= CHUNK_BYTES:
                yield _joined(gathered)
                gathered, size = [], 0
    if gathered:
        yield _joined(gathered)


def _joined(lines: list[bytes]) -> tuple[bytes, int, bytes]:
    last = lines[-1]
    lines.append(b"")  # for the last line's newline
    return b"\n".join(lines), len(lines) - 1, last


def copied(cursor: Any, statement: str, params: dict[str, Any]) -> Chunks:
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
