"""POST /items and GET /items/{id}."""

import re

import pytest

from tests.helpers import create_item, etag_of, item_payload

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_returns_201_with_location_etag_and_the_item(client):
    response = client.post("/v1/items", json=item_payload())
    assert response.status_code == 201
    item = response.get_json()
    assert response.headers["Location"] == f"/v1/items/{item['id']}"
    assert response.headers["ETag"] == etag_of(item)
    assert {k: item[k] for k in item_payload()} == item_payload()
    assert item["version"] == 1
    assert RFC3339_UTC.match(item["created_at"])
    assert item["created_at"] == item["updated_at"]


def test_create_applies_defaults(client):
    response = client.post("/v1/items", json={"name": "bare"})
    item = response.get_json()
    assert (item["description"], item["price"], item["quantity"], item["attributes"]) == (
        "",
        None,
        0,
        {},
    )


def test_get_returns_the_item_and_its_etag(client):
    item = create_item(client)
    response = client.get(f"/v1/items/{item['id']}")
    assert response.status_code == 200
    assert response.get_json() == item
    assert response.headers["ETag"] == etag_of(item)
    assert response.mimetype == "application/json"


def test_if_none_match_gives_304_with_empty_body(client):
    item = create_item(client)
    for header in (etag_of(item), f"W/{etag_of(item)}", f'"other", {etag_of(item)}', "*"):
        response = client.get(f"/v1/items/{item['id']}", headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.data == b""
        assert response.headers["ETag"] == etag_of(item)
    stale = client.get(f"/v1/items/{item['id']}", headers={"If-None-Match": '"1-0"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/items/999",
        "/v1/items/0",
        "/v1/items/-1",
        "/v1/items/abc",
        "/v1/items/1.5",
        "/v1/items/9223372036854775808",
        "/v1/items/99999999999999999999",
        "/nowhere",
    ],
)
def test_unknown_or_impossible_ids_are_404_problems(client, path):
    create_item(client)
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 404
    assert {"type", "title", "detail"} <= set(problem)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize(
    "path", ["/v1/items/0", "/v1/items/9223372036854775808", "/v1/items/" + "9" * 40]
)
def test_impossible_ids_are_404_whatever_the_method(client, method, path):
    response = getattr(client, method)(path, json={"name": "x"})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_largest_bigint_id_is_a_plain_404(client):
    assert client.get("/v1/items/9223372036854775807").status_code == 404


def test_create_stores_exactly_what_was_acknowledged(client, sql):
    item = create_item(client, price=0.1, attributes={"deep": {"list": [1, "two", None]}})
    row = sql.execute(
        "SELECT price::text, attributes FROM items WHERE id = %s", (item["id"],)
    ).fetchone()
    assert row["price"] == "0.10"
    assert row["attributes"] == {"deep": {"list": [1, "two", None]}}


def test_invalid_body_lists_every_bad_field_and_stores_nothing(client, sql):
    response = client.post(
        "/v1/items",
        json={"name": "", "price": 1.234, "quantity": True, "version": 3, "attributes": None},
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(fields) == {"name", "price", "quantity", "version", "attributes"}
    assert fields["version"] == "is read-only"
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0
