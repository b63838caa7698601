"""Migration 0009 and the text search configuration: statements of a no-transaction file run one
by one, the rows from before the migration get their vectors, and `migrate` applies
ITEMSAPI_SEARCH_CONFIG, refusing one the server lacks and rebuilding the vectors on a change."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from itemsapi.db import migrations
from itemsapi.db.migrations import MigrationError, MigrationFailedError


def shipped_before_0009(tmp_path: Path) -> Path:
    folder = tmp_path / "before"
    folder.mkdir()
    for path in migrations.migrations_folder().iterdir():
        if migrations.FILE_NAME.fullmatch(path.name) and int(path.name[:4]) < 9:
            shutil.copy(path, folder)
    return folder


def test_0009_fills_the_vectors_of_rows_written_before_it(empty_database, tmp_path):
    migrations.migrate(empty_database, shipped_before_0009(tmp_path))
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (name, description)"
            " SELECT 'old ' || n, 'written before' FROM generate_series(1, 2500) AS n"
        )
        versions = conn.execute("SELECT sum(version), max(updated_at) FROM items").fetchone()
    assert migrations.migrate(empty_database)[0].version == 9  # then the later ones
    with psycopg.connect(empty_database) as conn:
        filled = conn.execute(
            "SELECT count(*) FROM items WHERE search_vector @@ to_tsquery('simple', 'written')"
        ).fetchone()[0]
        assert filled == 2500
        # Nothing a client sees moved: not the versions (ETags), not updated_at.
        assert (
            conn.execute("SELECT sum(version), max(updated_at) FROM items").fetchone() == versions
        )
    assert valid_indexes(empty_database) >= {
        "items_search_idx", "items_attributes_idx", "items_quantity_id_idx"
    }  # fmt: skip


def valid_indexes(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indisvalid")
        return {name for (name,) in rows}


def no_transaction_file(tmp_path: Path, *statements: str) -> Path:
    """A migrations folder holding one no-transaction file of these steps."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    steps = "-- itemsapi: next-statement\n".join(statements)
    (folder / "0001_steps.sql").write_text("-- itemsapi: no-transaction\n" + steps)
    return folder


def test_statements_of_a_no_transaction_file_run_one_by_one(empty_database, tmp_path):
    folder = no_transaction_file(
        tmp_path,
        "CREATE INDEX CONCURRENTLY items_a_idx ON items (quantity);\n",
        "-- A comment belongs to the statement after it.\n"
        "CREATE INDEX CONCURRENTLY items_b_idx ON items (price);\n",
    )
    migrations.migrate(empty_database, folder)
    assert valid_indexes(empty_database) >= {"items_a_idx", "items_b_idx"}


def test_a_step_of_a_no_transaction_file_still_holds_a_single_statement(empty_database, tmp_path):
    folder = no_transaction_file(
        tmp_path, "CREATE TABLE one (id int);\nCREATE TABLE two (id int);\n"
    )
    with pytest.raises(MigrationFailedError, match="multiple commands"):
        migrations.migrate(empty_database, folder)


def test_an_unknown_search_configuration_is_refused_at_migrate(empty_database):
    with pytest.raises(MigrationError, match=r"'klingon' is not a text search .*simple"):
        migrations.migrate(empty_database, search_config="klingon")


def test_a_new_search_configuration_rebuilds_every_vector(empty_database):
    migrations.migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('running shoes'), ('ran')")
        search = (
            "SELECT count(*) FROM items WHERE search_vector @@"
            " websearch_to_tsquery((SELECT config::regconfig FROM search_settings), 'runs')"
        )
        assert conn.execute(search).fetchone()[0] == 0  # simple: "runs" is not "running"
        migrations.migrate(empty_database, search_config="english")
        assert conn.execute("SELECT config FROM search_settings").fetchone()[0] == "english"
        assert conn.execute(search).fetchone()[0] == 1  # stemmed: run = run


def test_rebuilding_the_vectors_records_no_change_but_an_edit_is_recorded(empty_database):
    """The change log (0010) holds what a client can see change: a rebuild of search_vector
    alone is not a change of the item, while an edit of any published column is."""
    migrations.migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) SELECT 'item ' || n FROM generate_series(1, 50) n")
        logged = "SELECT count(*) FROM item_changes"
        assert conn.execute(logged).fetchone()[0] == 50
        migrations.migrate(empty_database, search_config="english")
        assert conn.execute(logged).fetchone()[0] == 50
        conn.execute("UPDATE items SET quantity = 3, search_vector = NULL WHERE id <= 2")
        assert conn.execute(logged).fetchone()[0] == 52
