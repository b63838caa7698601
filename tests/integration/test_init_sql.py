"""sql/init.sql, run exactly as the postgres image's entrypoint runs it, then run again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from itemsapi.db.migrations import baseline_path as schema_path
from tests.helpers import apply_baseline, make_the_schema_fail, pg_program, run_at_once


def psql_binary() -> str:
    return shutil.which("psql") or pg_program("psql")


def psql_command(conninfo: str) -> list[str]:
    return [
        psql_binary(), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q",
        "-d", conninfo, "-f", str(schema_path()),
    ]  # fmt: skip


def run_psql(conninfo: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        psql_command(conninfo), capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


def schema_objects(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'items'"
                " UNION ALL SELECT to_regprocedure('jsonb_merge_patch(jsonb, jsonb)')::text"
            )
        }


RUNS_AT_ONCE = 4


def test_schema_applies_cleanly_to_an_empty_database_and_again(empty_database):
    first = run_psql(empty_database)
    assert first.returncode == 0, first.stderr
    second = run_psql(empty_database)
    assert second.returncode == 0, second.stderr
    assert "ERROR" not in first.stderr + second.stderr
    assert {
        "items_pkey",
        "items_name_id_idx",
        "items_price_id_idx",
        "items_created_at_id_idx",
        "items_updated_at_id_idx",
    } <= schema_objects(empty_database)


def test_runs_started_together_by_psql_all_succeed(empty_database):
    # Several containers or replicas may apply the schema as they start, at the same moment.
    runs = [
        subprocess.Popen(psql_command(empty_database), stderr=subprocess.PIPE, text=True)
        for _ in range(RUNS_AT_ONCE)
    ]
    errors = [run.communicate(timeout=60)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * RUNS_AT_ONCE, errors
    assert {"items_pkey", "jsonb_merge_patch(jsonb,jsonb)"} <= schema_objects(empty_database)


def test_init_db_runs_started_together_all_succeed(empty_database):
    # `itemsapi init-db` as a Kubernetes init container: every replica runs it as it starts.
    assert run_at_once(lambda: apply_baseline(empty_database), RUNS_AT_ONCE) == []
    assert {"items_pkey", "jsonb_merge_patch(jsonb,jsonb)"} <= schema_objects(empty_database)


def test_a_run_on_a_live_database_does_not_wait_for_its_writes(sql, clean_db):
    # Replicas apply the schema as they start, while others serve. An open write transaction
    # (a slow request, a pgAdmin session) must not hold the script up: a script queued for the
    # table's lock would in turn hold up every write that comes after it.
    sql.execute("INSERT INTO items (name) VALUES ('busy')")
    with psycopg.connect(clean_db) as writer:
        writer.execute("UPDATE items SET quantity = 1")  # left open: the row lock stays held
        run = run_psql(clean_db, PGOPTIONS="-c lock_timeout=2000")
        writer.rollback()
    assert run.returncode == 0, run.stderr


def test_a_run_that_fails_part_way_leaves_nothing_behind(empty_database):
    make_the_schema_fail(empty_database)
    run = run_psql(empty_database)
    assert run.returncode != 0
    assert "cannot change return type" in run.stderr
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)


def test_schema_path_is_the_repository_file():
    assert schema_path().resolve() == (Path(__file__).parents[2] / "sql" / "init.sql").resolve()


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
