"""What `itemsapi serve` checks once before its workers start, and says in its log: a database
it cannot reach, a schema behind the code, a connection budget the server cannot meet, session
settings a pooler's role lacks. It serves either way: /ready tells when requests can succeed."""

from __future__ import annotations

import logging

import psycopg

from itemsapi.config import Settings
from itemsapi.db import migrations
from itemsapi.db.server import SessionSettings, inspect_server, session_settings
from itemsapi.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def check_database(settings: Settings, database_url: str) -> None:
    """Say at start what would make requests fail later: no schema, or workers whose pools
    could open more connections than the server allows. Serves either way: /ready tells."""
    try:
        facts = inspect_server(database_url)
    except DatabaseUnavailable as exc:
        log.warning(
            "database not reachable at start; serving anyway, /ready reports when it is",
            extra={"error": str(exc)},
        )
        return
    _check_schema(database_url, facts.schema_in_place)
    _check_budget(settings, facts.connections_allowed)
    if settings.session_settings == "server":
        _check_session_settings(settings, database_url)


def _check_budget(settings: Settings, connections_allowed: int) -> None:
    """workers x pool max size must fit what is behind DATABASE_URL: the server's
    connections, or, behind a pooler, the pooler's server pool, which must fit the server's.
    Each worker's listener (read cache, key records) holds one more connection, always direct,
    and each of its export and import slots one of its own (db/transfer.py) while in use.
    Through the pooler the facts query still reaches PostgreSQL, so connections_allowed is the
    server's own. Replicas multiply the need; only the operator knows their number
    (docs/operations.md, Running at scale)."""
    transfers = settings.export_slots + settings.import_slots
    needed = settings.workers * (settings.pool_max_size + transfers)
    listeners = settings.workers if settings.needs_listener else 0
    extra = {
        "workers": settings.workers,
        "pool_max_size": settings.pool_max_size,
        "connections_needed": needed + listeners,
        "connections_allowed": connections_allowed,
        "pooler_pool_size": settings.pooler_pool_size,
    }
    pooler = settings.pooler_pool_size
    if pooler is None and needed + listeners > connections_allowed:
        log.warning(
            "workers x (pool max size + transfer slots + a listener) exceeds the server's"
            " max_connections",
            extra=extra,
        )
    elif pooler is not None and needed > pooler:
        log.warning(
            "workers x (pool max size + transfer slots) exceeds the pooler's server pool:"
            " requests would queue in the pooler, past ITEMSAPI_POOL_TIMEOUT's reach",
            extra=extra,
        )
    elif pooler is not None and pooler + listeners > connections_allowed:
        log.warning(
            "the pooler's server pool and the workers' listeners exceed the server's"
            " max_connections",
            extra=extra,
        )
    else:
        log.info("connection budget fits the server", extra=extra)


def _check_session_settings(settings: Settings, database_url: str) -> None:
    """With session_settings "server" the role must carry statement_timeout and TimeZone."""
    try:
        found = session_settings(database_url, settings)
    except psycopg.Error as exc:
        log.error("cannot read the session's settings", extra={"error": str(exc).strip()})
        return
    expected = SessionSettings(settings.statement_timeout_ms, "UTC")
    if found != expected:
        log.error(
            "the database role's session settings differ from this configuration: set them "
            "with ALTER ROLE ... SET (docs/operations.md, Running at scale)",
            extra={"found": vars(found), "expected": vars(expected)},
        )


def _check_schema(database_url: str, in_place: bool) -> None:
    try:
        pending = [m.path.name for m in migrations.pending(database_url)]
    except (migrations.MigrationError, psycopg.Error) as exc:
        log.error("cannot tell which migrations are pending", extra={"error": str(exc)})
        return
    if not in_place or pending:
        log.error(
            "the database schema is behind this code: /ready answers 503 (and item requests "
            "may fail) until `itemsapi migrate` applies the pending migrations",
            extra={"pending": pending},
        )
