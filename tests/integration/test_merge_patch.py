"""jsonb_merge_patch (sql/migrations/0005_linear_merge_patch.sql): RFC 7396's examples, the same
answers as the baseline's per-key definition on random documents, and patches of many keys
through the API within the statement timeout."""

from __future__ import annotations

import random
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from itemsapi.app import services_of
from itemsapi.db import migrations
from tests.helpers import create_item

MERGE_PATCH = "application/merge-patch+json"

# sql/init.sql's definition, the oracle: created in the session's temporary schema under another
# name (pg_temp functions are called schema-qualified, so its recursion stays within itself).
BASELINE = """
CREATE FUNCTION pg_temp.baseline_merge_patch(target jsonb, patch jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    result jsonb;
    patch_key text;
    patch_value jsonb;
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        result := '{}'::jsonb;
    ELSE
        result := target;
    END IF;
    FOR patch_key, patch_value IN SELECT key, value FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(patch_value) = 'null' THEN
            result := result - patch_key;
        ELSE
            result := jsonb_set(result, ARRAY[patch_key],
                                pg_temp.baseline_merge_patch(result -> patch_key, patch_value));
        END IF;
    END LOOP;
    RETURN result;
END
$$
"""


def merged(sql, target: Any, patch: Any, function: str = "jsonb_merge_patch") -> Any:
    params = tuple(None if value is None else Jsonb(value) for value in (target, patch))
    row = sql.execute(f"SELECT {function}(%s::jsonb, %s::jsonb) AS merged", params).fetchone()
    return row["merged"]


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # RFC 7396, appendix A, in its order, as JSON text.
        ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
        ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
        ('{"a":"b"}', '{"a":null}', "{}"),
        ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
        ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
        ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
        ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
        ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
        ('["a","b"]', '["c","d"]', '["c","d"]'),
        ('{"a":"b"}', '["c"]', '["c"]'),
        ('{"a":"foo"}', "null", "null"),
        ('{"a":"foo"}', '"bar"', '"bar"'),
        ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
        ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
        ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
    ],
)
def test_the_rfc_7396_examples(sql, target, patch, expected):
    row = sql.execute(
        "SELECT jsonb_merge_patch(%s::jsonb, %s::jsonb) = %s::jsonb AS same",
        (target, patch, expected),
    ).fetchone()
    assert row["same"] is True


def test_sql_null_arguments_behave_as_before(sql):
    assert merged(sql, {"a": 1}, None) is None  # a SQL NULL patch is the result
    assert merged(sql, None, {"a": 1, "b": None}) == {"a": 1}  # a SQL NULL target counts as {}


KEYS = ("a", "b", "c", "d", "", "a b", "é", "null")


def random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.choice(["null", "scalar", "array", "object", "object"] if depth < 4 else ["scalar"])
    if kind == "null":
        return None
    if kind == "scalar":
        return rng.choice([0, 1, -2.5, True, False, "", "x", "null", "{}"])
    if kind == "array":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return random_object(rng, depth + 1)


def random_object(rng: random.Random, depth: int) -> dict[str, Any]:
    # Few key names, so that target and patch share many members at every level.
    return {rng.choice(KEYS): random_value(rng, depth) for _ in range(rng.randrange(6))}


def test_the_same_results_as_the_baseline_definition_on_random_documents(sql):
    sql.execute(BASELINE)
    rng = random.Random(7396)  # noqa: S311 - reproducible documents, no secret
    cases = 0
    for _ in range(400):
        target = random_object(rng, 0) if rng.random() < 0.9 else random_value(rng, 3)
        patch = random_object(rng, 0) if rng.random() < 0.9 else random_value(rng, 3)
        for t, p in [(target, patch), (patch, target)]:
            expected = merged(sql, t, p, "pg_temp.baseline_merge_patch")
            assert merged(sql, t, p) == expected, (t, p)
            cases += 1
    assert cases == 800


def test_the_function_stays_immutable_and_parallel_safe(sql):
    row = sql.execute(
        "SELECT provolatile, proparallel FROM pg_proc"
        " WHERE oid = 'jsonb_merge_patch(jsonb, jsonb)'::regprocedure"
    ).fetchone()
    assert (row["provolatile"], row["proparallel"]) == ("i", "s")


@pytest.mark.parametrize("keys", [10_000, 20_000])
def test_a_patch_of_many_keys_completes_within_the_statement_timeout(app, client, keys):
    # Before 0005 the database took about 4 s for 10,000 keys and hit the 5 s timeout (503)
    # at 20,000; linear, both take a small fraction of it.
    assert services_of(app).settings.statement_timeout_ms <= 5000
    item = create_item(client, attributes={"k00000": "old", "k00001": {"nested": 1}, "z": 1})
    patch = {f"k{i:05d}": f"value-{i:05d}" for i in range(keys)}
    patch["k00001"] = {"nested": None, "added": True}
    patch["z"] = None
    response = client.patch(
        f"/v1/items/{item['id']}", json={"attributes": patch}, content_type=MERGE_PATCH
    )
    assert response.status_code == 200, response.get_json()
    attributes = response.get_json()["attributes"]
    assert len(attributes) == keys
    assert attributes["k00000"] == "value-00000"
    assert attributes["k00001"] == {"added": True}
    assert attributes[f"k{keys - 1:05d}"] == f"value-{keys - 1:05d}"
    assert "z" not in attributes


def test_running_the_baseline_again_keeps_the_linear_definition(sql, clean_db):
    # sql/init.sql is idempotent and is run again on live databases (tests/integration/
    # test_init_sql.py); it must define the function as the migrations leave it.
    definition = (
        "SELECT prosrc FROM pg_proc WHERE oid = 'jsonb_merge_patch(jsonb, jsonb)'::regprocedure"
    )
    migrated = sql.execute(definition).fetchone()["prosrc"]
    assert "jsonb_object_agg" in migrated
    sql.execute(migrations.baseline_path().read_text())
    assert sql.execute(definition).fetchone()["prosrc"] == migrated
