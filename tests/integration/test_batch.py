"""Batch create: POST /v1/items with a JSON array, all or none, against the real database."""

from __future__ import annotations

from itemsapi.app import close_app, create_app, services_of
from tests.helpers import item_payload, wait_until
from tests.integration.test_openapi import Validator


def rows(count: int) -> list[dict]:
    return [item_payload(name=f"row {n}", quantity=n) for n in range(count)]


def count_items(sql) -> int:
    return sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"]


def test_a_batch_creates_every_item_in_order(client, sql):
    response = client.post("/v1/items", json=rows(1000))
    assert response.status_code == 201
    items = response.get_json()["items"]
    assert [item["name"] for item in items] == [f"row {n}" for n in range(1000)]
    assert [item["quantity"] for item in items] == list(range(1000))
    assert all(item["version"] == 1 for item in items)
    assert items[0]["attributes"] == item_payload()["attributes"]
    assert items[0]["price"] == 19.99
    assert count_items(sql) == 1000
    stored = client.get(f"/v1/items/{items[500]['id']}").get_json()
    assert stored == items[500]


def test_one_bad_row_of_a_thousand_stores_nothing_and_is_named(client, sql):
    batch = rows(1000)
    batch[999]["price"] = -1
    batch[3] = {"name": "ok", "colour": "red"}
    batch[7] = "not an object"
    response = client.post("/v1/items", json=batch)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "urn:itemsapi:problem:validation-error"
    fields = [error["field"] for error in problem["errors"]]
    assert fields == ["[3].colour", "[7]", "[999].price"]
    assert count_items(sql) == 0


def test_nested_attribute_errors_are_named_inside_their_row(client):
    batch = rows(2)
    batch[1]["attributes"] = {"a": {"b": 2**60}}
    errors = client.post("/v1/items", json=batch).get_json()["errors"]
    assert [e["field"] for e in errors] == ["[1].attributes.a.b"]


def test_an_empty_or_too_long_batch_is_422(clean_db, keyed_client, sql):
    app = create_app({"database_url": clean_db, "cache_prime": 0, "max_batch": 3})
    try:
        client = keyed_client(app)
        for batch in ([], rows(4)):
            response = client.post("/v1/items", json=batch)
            assert response.status_code == 422
            assert response.get_json()["errors"][0]["field"] is None
        assert client.post("/v1/items", json=rows(3)).status_code == 201
    finally:
        close_app(app)
    assert count_items(sql) == 3


def test_prefer_return_minimal_answers_ids_and_versions(client, sql):
    response = client.post("/v1/items", json=rows(3), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "return=minimal"
    ids = [row["id"] for row in sql.execute("SELECT id FROM items ORDER BY id").fetchall()]
    assert response.get_json() == {"items": [{"id": i, "version": 1} for i in ids]}


def test_a_batch_with_an_idempotency_key_is_created_once(client, sql):
    headers = {"Idempotency-Key": "batch-1", "Prefer": "return=minimal"}
    first = client.post("/v1/items", json=rows(10), headers=headers)
    again = client.post("/v1/items", json=rows(10), headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Preference-Applied"] == "return=minimal"
    assert again.get_data() == first.get_data()
    assert count_items(sql) == 10
    other = client.post("/v1/items", json=rows(11), headers=headers)
    assert other.status_code == 422
    assert count_items(sql) == 10


def test_a_batch_invalidates_cached_list_pages(app, client):
    # The cache serves only once its listener listens (else every read bypasses it).
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    wait_until(lambda: client.get("/v1/items").headers["X-Cache"] == "hit", 2, "a cached page")
    client.post("/v1/items", json=rows(2))
    page = client.get("/v1/items")
    assert len(page.get_json()["items"]) == 2


def test_the_batch_and_its_responses_are_published_as_sent(client):
    document = client.get("/openapi.json").get_json()
    post = document["paths"]["/v1/items"]["post"]
    names = {parameter["name"] for parameter in post["parameters"]}
    assert {"Idempotency-Key", "Prefer"} <= names
    batch_schema = document["components"]["schemas"]["ItemBatch"]
    assert batch_schema["maxItems"] == 1000
    created = post["responses"]["201"]
    assert {"Idempotent-Replayed", "Preference-Applied"} <= set(created["headers"])
    schema = created["content"]["application/json"]["schema"]
    for headers in ({}, {"Prefer": "return=minimal"}):
        body = client.post("/v1/items", json=rows(2), headers=headers).get_json()
        validator = Validator({**document, **schema})
        assert not list(validator.iter_errors(body))
        assert Validator({**document, **batch_schema}).is_valid(rows(2))
