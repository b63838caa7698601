"""The migrations runner against a real PostgreSQL: each test gets a database of its own and a
migrations folder it writes in tmp_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from itemsapi.db.migrations import (
    ChangedMigrationError,
    MigrationFailedError,
    MigrationStatus,
    migrate,
    pending,
    status,
)
from tests.helpers import apply_baseline


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def query(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


def recorded(url: str) -> list[tuple]:
    return query(url, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")


def exists(url: str, relation: str) -> bool:
    return query(url, f"SELECT to_regclass('{relation}') IS NOT NULL")[0][0]


def versions(migrations) -> list[int]:
    return [m.version for m in migrations]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    write(folder, "0001_create_notes.sql", "CREATE TABLE notes (id int PRIMARY KEY, body text);\n")
    write(folder, "0002_seed_notes.sql", "INSERT INTO notes VALUES (1, 'a%b'), (2, 'c');\n")
    return folder


def test_the_baseline_records_itself_as_version_0_once(empty_database):
    ledger = "SELECT version, name, checksum, applied_at FROM schema_migrations"
    apply_baseline(empty_database)
    first = query(empty_database, ledger)
    apply_baseline(empty_database)
    again = query(empty_database, ledger)
    assert [row[:3] for row in first] == [(0, "baseline", None)]
    assert again == first


def test_migrate_applies_the_baseline_then_the_files_and_again_is_a_no_op(empty_database, folder):
    applied = migrate(empty_database, folder)
    assert versions(applied) == [0, 1, 2]
    assert exists(empty_database, "items")
    assert recorded(empty_database) == [
        (0, "baseline", None),
        (1, "create_notes", applied[1].checksum),
        (2, "seed_notes", applied[2].checksum),
    ]
    assert migrate(empty_database, folder) == []
    assert query(empty_database, "SELECT count(*) FROM notes") == [(2,)]


def test_a_database_with_the_baseline_gets_only_the_files(empty_database, folder):
    apply_baseline(empty_database)  # as the postgres image runs init.sql on an empty volume
    assert versions(migrate(empty_database, folder)) == [1, 2]


def test_a_database_from_before_migrations_keeps_its_rows(empty_database, folder):
    apply_baseline(empty_database)
    with psycopg.connect(empty_database) as conn:
        conn.execute("DROP TABLE schema_migrations")
        conn.execute("INSERT INTO items (name) VALUES ('kept')")
    assert versions(migrate(empty_database, folder)) == [0, 1, 2]
    assert query(empty_database, "SELECT name FROM items") == [("kept",)]


# The lock holder waits, inside a migration, until the other process has connected and is
# waiting for the lock; then it builds an index concurrently, which must not deadlock with it.
WAIT_FOR_THE_OTHER_RUNNER = """
DO $$
BEGIN
    FOR attempt IN 1..600 LOOP
        PERFORM pg_stat_clear_snapshot();  -- else the transaction sees its first look again
        EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid());
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT pg_sleep(1);
INSERT INTO runs VALUES (2);
"""

RUN_MIGRATE = (
    "import sys; from pathlib import Path; from itemsapi.db.migrations import migrate;"
    " print(len(migrate(sys.argv[1], Path(sys.argv[2]))))"
)


def test_two_processes_at_once_apply_each_file_exactly_once(empty_database, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    # runs has no key: a file run twice would leave its row twice.
    write(folder, "0001_runs.sql", "CREATE TABLE runs (version int); INSERT INTO runs VALUES (1);")
    write(folder, "0002_slow.sql", WAIT_FOR_THE_OTHER_RUNNER)
    write(
        folder,
        "0003_runs_index.sql",
        "-- itemsapi: no-transaction\nCREATE INDEX CONCURRENTLY runs_idx ON runs (version);",
    )
    runners = [
        subprocess.Popen(
            [sys.executable, "-c", RUN_MIGRATE, empty_database, str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [runner.communicate(timeout=120) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], outputs
    assert sorted(int(out) for out, _ in outputs) == [0, 4]  # baseline + 3 files, by one of them
    assert query(empty_database, "SELECT version FROM runs ORDER BY version") == [(1,), (2,)]
    assert [row[0] for row in recorded(empty_database)] == [0, 1, 2, 3]
    assert query(
        empty_database,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'runs_idx'::regclass",
    ) == [(True,)]


def test_a_changed_applied_file_is_refused_before_anything_is_applied(empty_database, folder):
    migrate(empty_database, folder)
    write(folder, "0001_create_notes.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);\n")
    write(folder, "0003_more.sql", "CREATE TABLE more (id int);\n")
    for attempt in (
        lambda: migrate(empty_database, folder),
        lambda: migrate(empty_database, folder, dry_run=True),
        lambda: pending(empty_database, folder),
    ):
        with pytest.raises(ChangedMigrationError) as excinfo:
            attempt()
        message = str(excinfo.value)
        assert "0001_create_notes.sql" in message
        assert "\n" not in message
    assert not exists(empty_database, "more")
    assert [row[0] for row in recorded(empty_database)] == [0, 1, 2]


def test_status_tells_applied_pending_changed_and_versions_without_a_file(empty_database, folder):
    assert status(empty_database, folder) == [
        MigrationStatus(0, "baseline", "pending"),
        MigrationStatus(1, "create_notes", "pending"),
        MigrationStatus(2, "seed_notes", "pending"),
    ]
    migrate(empty_database, folder)
    write(folder, "0002_seed_notes.sql", "INSERT INTO notes VALUES (3, 'changed');\n")
    write(folder, "0004_later.sql", "SELECT 1;\n")
    with psycopg.connect(empty_database) as conn:  # as a newer release would have recorded it
        conn.execute("INSERT INTO schema_migrations VALUES (3, 'from_a_newer_release', 'x')")
    assert status(empty_database, folder) == [
        MigrationStatus(0, "baseline", "applied"),
        MigrationStatus(1, "create_notes", "applied"),
        MigrationStatus(2, "seed_notes", "changed"),
        MigrationStatus(3, "from_a_newer_release", "no-file"),
        MigrationStatus(4, "later", "pending"),
    ]


def test_dry_run_applies_nothing_and_returns_what_would_run(empty_database, folder):
    assert versions(migrate(empty_database, folder, dry_run=True)) == [0, 1, 2]
    assert versions(pending(empty_database, folder)) == [0, 1, 2]
    assert not exists(empty_database, "schema_migrations")
    assert not exists(empty_database, "items")
    migrate(empty_database, folder)
    write(folder, "0003_more.sql", "CREATE TABLE more (id int);\n")
    assert versions(migrate(empty_database, folder, dry_run=True)) == [3]
    assert not exists(empty_database, "more")


def test_a_no_transaction_file_builds_an_index_concurrently(empty_database, folder):
    write(
        folder,
        "0003_notes_body_idx.sql",
        "-- itemsapi: no-transaction\n"
        "-- Concurrently: writers to notes are not held up while the index builds.\n"
        "CREATE INDEX CONCURRENTLY notes_body_idx ON notes (body) WHERE body LIKE 'a%';\n",
    )
    assert versions(migrate(empty_database, folder)) == [0, 1, 2, 3]
    assert query(
        empty_database,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'notes_body_idx'::regclass",
    ) == [(True,)]
    assert [row[:2] for row in recorded(empty_database)][-1] == (3, "notes_body_idx")


def test_a_no_transaction_file_must_hold_a_single_statement(empty_database, folder):
    write(
        folder,
        "0003_two_statements.sql",
        "-- itemsapi: no-transaction\nCREATE TABLE one (id int);\nCREATE TABLE two (id int);\n",
    )
    with pytest.raises(MigrationFailedError, match=r"0003_two_statements\.sql.*multiple commands"):
        migrate(empty_database, folder)
    assert not exists(empty_database, "one")
    assert [row[0] for row in recorded(empty_database)] == [0, 1, 2]


def test_a_failing_migration_rolls_back_alone_and_names_its_file(empty_database, folder):
    write(folder, "0003_fails.sql", "CREATE TABLE half (id int);\nSELECT 1 / 0;\n")
    write(folder, "0004_after.sql", "CREATE TABLE after_the_failure (id int);\n")
    with pytest.raises(MigrationFailedError) as excinfo:
        migrate(empty_database, folder)
    assert str(excinfo.value) == "migration 0003_fails.sql failed: division by zero"
    assert isinstance(excinfo.value.__cause__, psycopg.errors.DivisionByZero)
    assert [row[0] for row in recorded(empty_database)] == [0, 1, 2]
    assert exists(empty_database, "notes")
    assert not exists(empty_database, "half")
    assert not exists(empty_database, "after_the_failure")


def test_a_file_that_commits_by_itself_is_refused(empty_database, folder):
    write(folder, "0003_commits.sql", "CREATE TABLE committed (id int);\nCOMMIT;\n")
    with pytest.raises(MigrationFailedError, match=r"0003_commits\.sql ended the runner's"):
        migrate(empty_database, folder)
    assert [row[0] for row in recorded(empty_database)] == [0, 1, 2]
