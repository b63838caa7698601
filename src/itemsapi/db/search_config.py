"""The text search configuration of the database (search_settings, sql/migrations/0009): the one
items.search_vector is made with and searches are parsed with, so both always agree. Set by
`itemsapi migrate` from ITEMSAPI_SEARCH_CONFIG: a name PostgreSQL does not know is refused
there, naming the ones it has; a change rebuilds every row's vector in batches, each committed,
while the API serves (searches meanwhile mix the two configurations' vectors), and every read
cache is emptied after."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
_KNOWN = "SELECT %s::regconfig::text"
_NAMES = "SELECT string_agg(cfgname, ', ' ORDER BY cfgname) FROM pg_ts_config"
_CURRENT = "SELECT config FROM search_settings"
_SET = "UPDATE search_settings SET config = %s"
# The trigger's function of sql/migrations/0009, with the configuration as a constant.
_TRIGGER_FUNCTION = sql.SQL("""CREATE OR REPLACE FUNCTION itemsapi_search_vector() RETURNS trigger
LANGUAGE plpgsql AS $function$
BEGIN
    NEW.search_vector := setweight(to_tsvector({config}, NEW.name), 'A')
                      || setweight(to_tsvector({config}, NEW.description), 'B');
    RETURN NEW;
END
$function$""")
# Setting the vector to NULL fires the trigger that computes it again (0009).
_REBUILD = """
WITH batch AS (SELECT id FROM items WHERE id > %(after)s ORDER BY id LIMIT %(rows)s),
rebuilt AS (UPDATE items SET search_vector = NULL FROM batch WHERE items.id = batch.id)
SELECT max(id) FROM batch
"""


class UnknownSearchConfig(ValueError):
    """ITEMSAPI_SEARCH_CONFIG names no text search configuration of the database."""


def apply(conn: psycopg.Connection, name: str) -> bool:
    """Make `name` the database's configuration (autocommit `conn`); True if it changed, and
    every vector was rebuilt. A schema without search_settings (before 0009) is left alone."""
    if conn.execute("SELECT to_regclass('search_settings')").fetchone()[0] is None:
        return False
    try:
        (known,) = conn.execute(_KNOWN, (name,)).fetchone()
    except psycopg.errors.UndefinedObject:
        (names,) = conn.execute(_NAMES).fetchone()
        raise UnknownSearchConfig(
            f"ITEMSAPI_SEARCH_CONFIG={name!r} is not a text search configuration of this"
            f" database; it has: {names}"
        ) from None
    (current,) = conn.execute(_CURRENT).fetchone()
    if current == known:
        return False
    log.info("search configuration %s -> %s: rebuilding every item's vector", current, known)
    with conn.transaction():  # rows written from here on get the new configuration's vectors
        conn.execute(_SET, (known,))
        conn.execute(_TRIGGER_FUNCTION.format(config=sql.Literal(known)))
    after = 0
    while True:
        with conn.transaction():
            # Nothing a client sees changes: the read caches are not told (sql/migrations/0002).
            conn.execute("SELECT set_config('itemsapi.announce', 'after_commit', true)")
            (last,) = conn.execute(_REBUILD, {"after": after, "rows": BATCH_ROWS}).fetchone()
        if last is None:
            # Searched pages the read caches hold were found with the old vectors: drop them.
            conn.execute("SELECT itemsapi_announce_items(NULL, 'migrate')")
            return True
        after = last
