"""Readiness follows the schema version: the server never migrates, it stays unready while a
migration it needs is pending, names it in the log, and becomes ready once it is applied."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from itemsapi.config import Settings
from itemsapi.db import migrations
from itemsapi.db.database import Database
from itemsapi.db.health import DatabaseCheck
from itemsapi.db.items import ItemRepository
from itemsapi.db.pool import ConnectionEvents, create_pool


@pytest.fixture
def pool(empty_database: str):
    migrations.migrate(empty_database)
    settings = Settings(database_url=empty_database, pool_min_size=1, pool_max_size=2)
    pool: ConnectionPool = create_pool(settings, ConnectionEvents())
    pool.open(wait=True)
    yield pool
    pool.close()


def test_unready_while_a_needed_migration_is_pending_and_ready_once_applied(
    pool, empty_database, tmp_path: Path, caplog
):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "9001_add_note.sql").write_text("ALTER TABLE items ADD COLUMN note text;\n")
    required = {m.version: m.path.name for m in migrations.discover(folder)}
    check = DatabaseCheck(
        Database(pool), ItemRepository(Database(pool)), timeout=2, required=required
    )
    try:
        with caplog.at_level(logging.WARNING, logger="itemsapi.db.health"):
            pending = check.run()
        assert not pending.ok
        assert pending.error == "MigrationsPending"
        (logged,) = [r for r in caplog.records if r.name == "itemsapi.db.health"]
        assert logged.pending == ["9001_add_note.sql"]
        assert "itemsapi migrate" in logged.getMessage()

        migrations.migrate(empty_database, folder)
        assert check.run().ok
    finally:
        check.close()


def test_ready_when_the_database_has_every_migration_the_code_ships(pool):
    required = {m.version: m.path.name for m in migrations.discover()}
    check = DatabaseCheck(
        Database(pool), ItemRepository(Database(pool)), timeout=2, required=required
    )
    try:
        assert check.run().ok
    finally:
        check.close()
