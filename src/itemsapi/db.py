"""Connection pool lifecycle and schema application.

One ConnectionPool per server process, created by the app factory inside that process (Granian
calls the factory in each worker, so no pool is ever inherited across a fork), opened
explicitly without waiting for the database, and closed at exit.
"""

from __future__ import annotations

import atexit
import logging
import select
from importlib import resources
from pathlib import Path

import orjson
import psycopg
from flask import Flask
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from itemsapi.config import Settings
from itemsapi.repository import ItemRepository

log = logging.getLogger(__name__)

POOL_KEY = "itemsapi.pool"
REPOSITORY_KEY = "itemsapi.repository"


def connection_options(settings: Settings) -> dict[str, object]:
    """Per-connection settings, sent in the startup packet (no extra round trip)."""
    return {
        "autocommit": True,  # every statement is its own transaction: no BEGIN/COMMIT trips
        "row_factory": dict_row,
        "application_name": "itemsapi",
        "options": f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC",
    }


def _configure(conn: psycopg.Connection) -> None:
    set_json_dumps(orjson.dumps, conn)
    set_json_loads(orjson.loads, conn)


def _discard_if_closed_by_server(conn: psycopg.Connection) -> None:
    """Pool check on checkout, with no round trip: an idle connection has nothing to read
    unless the server has hung up on it (a restart sends a FATAL message, then EOF).
    Raising makes the pool drop this connection and hand out another."""
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        raise psycopg.OperationalError("the server closed this idle connection")


def create_pool(settings: Settings) -> ConnectionPool:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    return ConnectionPool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        max_idle=settings.pool_max_idle,
        max_lifetime=settings.pool_max_lifetime,
        kwargs=connection_options(settings),
        configure=_configure,
        check=_discard_if_closed_by_server,
        name="itemsapi",
        open=False,
    )


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    pool = create_pool(settings)
    # Don't wait: the API serves /live and answers 503 until the database can be reached.
    pool.open(wait=False)
    app.extensions[POOL_KEY] = pool
    app.extensions[REPOSITORY_KEY] = ItemRepository(pool)
    atexit.register(pool.close)


def close_app(app: Flask) -> None:
    pool: ConnectionPool | None = app.extensions.pop(POOL_KEY, None)
    if pool is not None:
        pool.close()
        atexit.unregister(pool.close)


def schema_path() -> Path:
    """sql/init.sql: packaged inside wheels, at the repository top in a source checkout."""
    packaged = resources.files("itemsapi") / "sql" / "init.sql"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "sql" / "init.sql"


def apply_schema(database_url: str) -> None:
    """Run sql/init.sql (idempotent) against a database."""
    script = schema_path().read_text()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(script)  # no parameters: sent as one multi-statement simple query
