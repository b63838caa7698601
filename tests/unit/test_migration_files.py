"""Finding the migration files: their names, numbers, checksums and markers (no database)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from itemsapi.db.migrations import (
    MigrationFileError,
    discover,
    migrations_folder,
)


def write(folder: Path, name: str, text: str = "SELECT 1;\n") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_migrations_are_found_in_version_order_with_their_short_names(tmp_path):
    write(tmp_path, "0010_add_tags.sql")
    write(tmp_path, "0002_items_sku.sql")
    write(tmp_path, "0001_first.sql")
    found = discover(tmp_path)
    assert [(m.version, m.name) for m in found] == [
        (1, "first"),
        (2, "items_sku"),
        (10, "add_tags"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "1_short.sql",
        "00001_five_digits.sql",
        "0001-dash.sql",
        "0001_Upper.sql",
        "0001_.sql",
        "0001_name.SQL",
        "0001_name.sql.bak",
        "0001_name.txt",
        "README.md",
    ],
)
def test_anything_else_in_the_folder_is_refused_by_name(tmp_path, name):
    write(tmp_path, "0001_fine.sql")
    write(tmp_path, name)
    with pytest.raises(MigrationFileError, match=r"NNNN_short_name\.sql") as excinfo:
        discover(tmp_path)
    assert str(excinfo.value).startswith(name)


def test_a_folder_named_like_a_migration_is_refused(tmp_path):
    (tmp_path / "0001_not_a_file.sql").mkdir()
    with pytest.raises(MigrationFileError, match=r"0001_not_a_file\.sql"):
        discover(tmp_path)


def test_dotfiles_are_ignored(tmp_path):
    write(tmp_path, ".gitkeep", "")
    write(tmp_path, ".0001_first.sql.swp")
    assert discover(tmp_path) == []


def test_two_files_with_one_number_are_refused_naming_both(tmp_path):
    write(tmp_path, "0003_one.sql")
    write(tmp_path, "0003_other.sql")
    with pytest.raises(MigrationFileError, match=r"0003_one\.sql and 0003_other\.sql"):
        discover(tmp_path)


def test_version_zero_is_the_baseline_and_refused_as_a_file(tmp_path):
    write(tmp_path, "0000_baseline.sql")
    with pytest.raises(MigrationFileError, match="baseline"):
        discover(tmp_path)


def test_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(MigrationFileError, match="does not exist"):
        discover(tmp_path / "nowhere")


def test_checksum_is_the_sha256_of_the_bytes_and_moves_with_one_byte(tmp_path):
    path = write(tmp_path, "0001_first.sql", "SELECT 1;\n")
    before = discover(tmp_path)[0].checksum
    assert before == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text("SELECT 1; \n")
    assert discover(tmp_path)[0].checksum != before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-- itemsapi: no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);\n", True),
        ("-- itemsapi: no-transaction\r\nCREATE INDEX CONCURRENTLY i ON t (c);\r\n", True),
        ("-- itemsapi: no-transaction", True),
        ("SELECT 1;\n-- itemsapi: no-transaction\n", False),
        ("-- itemsapi: no transaction\nSELECT 1;\n", False),
        ("SELECT 1;\n", False),
    ],
)
def test_only_the_marker_as_first_line_runs_a_file_outside_a_transaction(tmp_path, text, expected):
    write(tmp_path, "0001_first.sql", text)
    assert discover(tmp_path)[0].no_transaction is expected


def test_the_shipped_folder_is_the_repository_one_and_valid():
    folder = migrations_folder()
    assert folder.resolve() == (Path(__file__).parents[2] / "sql" / "migrations").resolve()
    assert discover(folder) == discover()
