"""What `itemsapi serve` and the CLI learn from a server on a connection of their own: the
session settings an API connection gets, the connections allowed and whether the schema is in
place, and creating the embedded default's database."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from itemsapi.config import Settings
from itemsapi.db.pool import connection_options
from itemsapi.db.schema_state import server_facts_statement
from itemsapi.errors import DatabaseUnavailable


@dataclass(frozen=True)
class SessionSettings:
    statement_timeout_ms: int
    timezone: str


def session_settings(database_url: str, settings: Settings) -> SessionSettings:
    """The statement_timeout and TimeZone a session of the API gets (through a pooler too)."""
    with psycopg.connect(database_url, connect_timeout=3, **connection_options(settings)) as conn:
        row = conn.execute(
            "SELECT current_setting('TimeZone') AS timezone, (SELECT setting::int FROM"
            " pg_settings WHERE name = 'statement_timeout') AS statement_timeout_ms"
        ).fetchone()
    return SessionSettings(**row)


@dataclass(frozen=True)
class ServerFacts:
    connections_allowed: int  # max_connections less the connections reserved for superusers
    schema_in_place: bool


def inspect_server(database_url: str) -> ServerFacts:
    """What `itemsapi serve` checks once before it starts, on a connection of its own."""
    try:
        with psycopg.connect(
            database_url, connect_timeout=3, autocommit=True, row_factory=dict_row
        ) as conn:
            facts = conn.execute(server_facts_statement()).fetchone()
    except psycopg.Error as exc:
        raise DatabaseUnavailable(str(exc).strip()) from exc
    return ServerFacts(**facts)


def create_database(admin_url: str, name: str) -> None:
    """Create database `name` through `admin_url` unless it exists (the embedded default)."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        # Another process (a second `itemsapi` command on the same folder) may create it between
        # the check and the CREATE: PostgreSQL reports that clash on its catalog's unique index.
        with suppress(errors.DuplicateDatabase, errors.UniqueViolation):
            conn.execute(statement)
