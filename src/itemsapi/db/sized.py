"""Statements that stop at a size: a list page cut to a byte budget, and the rows that prime a
read cache. Pure builders over statements.py's shapes, like it: no connection.

A row's size is what the database says its JSON takes: the bytes of `attributes` as text (the
only unbounded column, measured once per write: attributes_bytes) plus those of `name` and
`description`, plus ROW_OVERHEAD for the other fields and the punctuation. jsonb's text puts a
space after every `:` and `,`, so this is at least the length of the compact JSON a response
carries. Rows past the budget are never sent, nor their attributes read.
"""

from __future__ import annotations

from psycopg import sql

from itemsapi.db import list_query, statements

# id, price, quantity, version, two timestamps, the keys and the quotes: at most about 200
# bytes of a row's JSON are not in its three text columns.
ROW_OVERHEAD = 200
# attributes_bytes is kept by a trigger (sql/migrations/0008); rows from before it are NULL
# until backfilled, and measured here meanwhile, at the cost of turning them into text.
ROW_SIZE = sql.SQL(
    "(COALESCE(attributes_bytes, octet_length(attributes::text))"
    " + octet_length(name) + octet_length(description) + {})"
).format(sql.Literal(ROW_OVERHEAD))

_COLUMNS = sql.SQL(
    "id, name, description, price, quantity, attributes, version, created_at, updated_at"
)


def list_sql(
    sort: str, descending: bool, after: bool, shape: tuple[str, ...], *, one_page: bool = True
) -> sql.Composed:
    """list_query.list_sql, each row with `running` (the size of the page up to and including
    it) and `kept`: whether it is on the page, which holds the first row however large, then
    every row within %(budget)s bytes, up to the limit (%(limit)s is the limit plus one). The
    first row not kept is sent too, without its attributes, to say that more follow. `running`
    grows strictly with every row, so it also gives the page's order back. Sorted by relevance,
    each row also carries its `rank`, for the cursor. `one_page=False`: list_query's statement
    for every page, limited (what bench.filters_paired compares the page's with)."""
    page = list_query.list_sql(sort, descending, after, shape, measured=True, one_page=one_page)
    rank = sql.SQL(" rank," if sort == list_query.RELEVANCE else "")
    return sql.SQL(
        "SELECT id, name, description, price, quantity,"
        " CASE WHEN kept THEN attributes END AS attributes, version, created_at, updated_at,"
        "{rank} running, kept FROM ("
        "SELECT *, ordinal = 1 OR (running <= %(budget)s AND ordinal < %(limit)s) AS kept FROM ("
        "SELECT sized.*, sum(size) OVER w AS running, row_number() OVER w AS ordinal"
        " FROM (SELECT page.*, {size} AS size FROM ({page}) AS page) AS sized"
        " WINDOW w AS (ORDER BY {order} ROWS UNBOUNDED PRECEDING)) AS measured"
        ") AS marked WHERE running - size <= %(budget)s OR ordinal = 2 ORDER BY running"
    ).format(
        size=ROW_SIZE, page=page, rank=rank,
        order=list_query.list_order(sort, descending, ranked=True),
    )  # fmt: skip


def recent_statement() -> sql.Composed:
    """The items changed last (statements.recent_statement: at most %(limit)s rows read), less
    those over %(entry_cap)s bytes, until they add up to %(budget)s bytes: what primes a cache
    holds no more than the cache may, and no entry it would refuse."""
    recent = statements.recent_statement(measured=True)
    return sql.SQL(
        "SELECT {columns} FROM ("
        "SELECT sized.*,"
        " sum(size) OVER (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING) AS running"
        " FROM (SELECT recent.*, {size} AS size FROM ({recent}) AS recent) AS sized"
        " WHERE size <= %(entry_cap)s"
        ") AS measured WHERE running <= %(budget)s ORDER BY running"
    ).format(columns=_COLUMNS, size=ROW_SIZE, recent=recent)
