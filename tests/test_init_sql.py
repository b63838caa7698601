"""sql/init.sql, run exactly as the postgres image's entrypoint runs it, then run again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from itemsapi import embedded
from itemsapi.db import schema_path


def psql_binary() -> str:
    return shutil.which("psql") or embedded.program("psql")


def run_psql(conninfo: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            psql_binary(),
            "-v",
            "ON_ERROR_STOP=1",
            "--no-psqlrc",
            "-q",
            "-d",
            conninfo,
            "-f",
            str(schema_path()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_schema_applies_cleanly_to_an_empty_database_and_again(empty_database):
    first = run_psql(empty_database)
    assert first.returncode == 0, first.stderr
    second = run_psql(empty_database)
    assert second.returncode == 0, second.stderr
    assert "ERROR" not in first.stderr + second.stderr
    with psycopg.connect(empty_database) as conn:
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'items'")
        }
    assert {
        "items_pkey",
        "items_name_id_idx",
        "items_price_id_idx",
        "items_created_at_id_idx",
        "items_updated_at_id_idx",
    } <= indexes


def test_schema_path_is_the_repository_file():
    assert schema_path().resolve() == (Path(__file__).parents[1] / "sql" / "init.sql").resolve()


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("name", "", "items_name_length"),
        ("name", "   ", "items_name_not_blank"),
        ("description", "d" * 2001, "items_description_length"),
        ("price", -1, "items_price_range"),
        ("quantity", -1, "items_quantity_range"),
        ("attributes", psycopg.types.json.Jsonb([1]), "items_attributes_object"),
    ],
)
def test_database_constraints_mirror_the_api_rules(sql, column, value, constraint):
    statement = psycopg.sql.SQL("INSERT INTO items (name, {}) VALUES ('ok', %s)")
    if column == "name":
        statement = psycopg.sql.SQL("INSERT INTO items ({}) VALUES (%s)")
    with pytest.raises(psycopg.errors.CheckViolation) as excinfo:
        sql.execute(statement.format(psycopg.sql.Identifier(column)), (value,))
    assert excinfo.value.diag.constraint_name == constraint


def test_price_holds_at_most_ten_digits_two_after_the_point(sql):
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        sql.execute("INSERT INTO items (name, price) VALUES ('x', 100000000)")
    row = sql.execute(
        "INSERT INTO items (name, price) VALUES ('x', 1.005) RETURNING price::text"
    ).fetchone()
    assert row["price"] == "1.01"


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # The examples of RFC 7396, appendix A.
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_jsonb_merge_patch_follows_rfc_7396(sql, target, patch, expected):
    Jsonb = psycopg.types.json.Jsonb
    row = sql.execute(
        "SELECT jsonb_merge_patch(%s, %s) AS merged", (Jsonb(target), Jsonb(patch))
    ).fetchone()
    assert row["merged"] == expected
