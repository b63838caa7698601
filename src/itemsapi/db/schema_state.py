"""The statements that say whether the schema is in place and which migrations it has: pure
builders, like statements.py's, run by ItemRepository.ping and the serve command's checks."""

from __future__ import annotations

from psycopg import sql

# What the item statements need from sql/init.sql (the trigram index is optional), and the
# table that says which migrations have been applied since.
_SCHEMA_IN_PLACE = sql.SQL(
    "to_regclass('items') IS NOT NULL"
    " AND to_regprocedure('jsonb_merge_patch(jsonb, jsonb)') IS NOT NULL"
    " AND to_regclass('schema_migrations') IS NOT NULL"
)


def ping_statement() -> sql.Composed:
    """One round trip that also says whether the schema the item statements need is in place."""
    return sql.SQL("SELECT {} AS in_place").format(_SCHEMA_IN_PLACE)


def applied_versions_statement() -> sql.SQL:
    return sql.SQL("SELECT array_agg(version) AS versions FROM schema_migrations")


def server_facts_statement() -> sql.Composed:
    """The connections the server allows non-superusers, and whether the schema is in place."""
    return sql.SQL(
        "SELECT current_setting('max_connections')::int"
        " - current_setting('superuser_reserved_connections')::int AS connections_allowed,"
        " {} AS schema_in_place"
    ).format(_SCHEMA_IN_PLACE)
