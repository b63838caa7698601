"""The batch insert: many items in one statement (all or none), their values in one jsonb
parameter. A pure builder, like statements.py's, tested without a database.

One parameter rather than one array per column: the rows travel as a single JSON text, which
jsonb_to_recordset turns into typed columns, so a batch of 1,000 costs one value to adapt, not
5,000. Identifiers come from the same allow-list as every other statement; values never reach
the SQL text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from psycopg import sql

from itemsapi.db.statements import ATTRIBUTED, COLUMN_TYPES, WRITABLE_COLUMNS, select_columns


def insert_many_statement(*, minimal: bool = False) -> sql.Composed:
    """INSERT every row of %(rows)s (a JSON array of objects), in the array's order, RETURNING
    the rows (with `minimal`, only their ids and versions: loading a thousand whole rows is
    most of a batch's cost in the driver). Ids come from the identity in insertion order, which
    follows the ORDER BY: sorted by id, the returned rows are in the array's order."""
    columns = sql.SQL(", ").join(map(sql.Identifier, WRITABLE_COLUMNS))
    record = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(COLUMN_TYPES[c]))
        for c in WRITABLE_COLUMNS
    )
    return sql.SQL(
        "INSERT INTO items ({columns}) SELECT {columns}"
        " FROM ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb) AS ({record}))"
        " WITH ORDINALITY AS r({columns}, n)"
        " WHERE {by} ORDER BY n RETURNING {returning}"
    ).format(
        columns=columns,
        record=record,
        by=ATTRIBUTED,
        returning=sql.SQL("id, version") if minimal else select_columns(),
    )


def rows_param(rows: Sequence[Mapping[str, Any]]) -> str:
    """The %(rows)s value: the rows' writable columns as one JSON array."""
    return orjson.dumps([{c: row[c] for c in WRITABLE_COLUMNS} for row in rows]).decode()
