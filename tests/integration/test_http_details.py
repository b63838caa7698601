"""HTTP details a new user tripped over: strict entity tags, one URL per item, the API's own
404s, no Content-Type without a body, no redirect built from the Host header, a readiness probe
that answers at once when the database refuses connections."""

from __future__ import annotations

import time

import pytest

from itemsapi.app import close_app, create_app
from tests.helpers import create_item, etag_of, free_port

NOT_FOUND = "urn:itemsapi:problem:item-not-found"


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
@pytest.mark.parametrize("value", ["2-1", "hello", 'W/ "1-1"', '"1-1" "1-2"', '"1-1", *'])
def test_entity_tags_that_are_not_quoted_are_400_and_change_nothing(client, sql, header, value):
    item = create_item(client)
    path = f"/v1/items/{item['id']}"
    if header == "If-Match":
        response = client.patch(path, json={"quantity": 99}, headers={header: value})
    else:
        response = client.get(path, headers={header: value})
    assert response.status_code == 400
    body = response.get_json()
    assert body["type"] == "urn:itemsapi:problem:invalid-header"
    assert body["errors"][0]["field"] == header
    assert sql.execute("SELECT version FROM items").fetchone()["version"] == 1


def test_quoted_tags_in_a_list_still_match(client):
    item = create_item(client)
    path = f"/v1/items/{item['id']}"
    both = f'"0-0", {etag_of(item)}'
    assert client.get(path, headers={"If-None-Match": both}).status_code == 304
    assert client.patch(path, json={"quantity": 1}, headers={"If-Match": both}).status_code == 200


@pytest.mark.parametrize("segment", ["-1", "abc", "02", "0", "1.0", "+1", "%201", "9" * 30])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_a_malformed_item_id_is_the_apis_own_404(client, segment, method):
    create_item(client)  # item 1 exists: "02" and "+1" must not reach it
    response = client.open(f"/v1/items/{segment}", method=method, json={"name": "x"})
    assert response.status_code == 404
    body = response.get_json()
    assert body["type"] == NOT_FOUND
    assert body["detail"].startswith("item ")
    assert "spelling" not in body["detail"]


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/items/1/extra", "/v2/items"])
def test_an_unknown_path_is_a_problem_without_werkzeugs_advice(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert "If you entered the URL manually" not in response.get_json()["detail"]


def test_a_doubled_slash_is_not_redirected_to_the_requests_host(client):
    response = client.get("/v1//items", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "Location" not in response.headers


def test_responses_without_a_body_carry_no_content_type(client):
    item = create_item(client)
    path = f"/v1/items/{item['id']}"
    not_modified = client.get(path, headers={"If-None-Match": etag_of(item)})
    options = client.options(path)
    deleted = client.delete(path)
    for response in (not_modified, options, deleted):
        assert response.status_code in (200, 204, 304)
        assert response.data == b""
        assert "Content-Type" not in response.headers, response.status_code


def test_ready_answers_at_once_with_one_reason_when_connections_are_refused():
    app = create_app(
        {"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/x", "ready_timeout": 3}
    )
    try:
        client = app.test_client()
        reasons, took = set(), []
        for _ in range(5):
            started = time.monotonic()
            response = client.get("/ready")
            took.append(time.monotonic() - started)
            assert response.status_code == 503
            reasons.add(response.get_json()["reason"])
        assert reasons == {"DatabaseUnavailable"}
        assert max(took) < 1.5  # the 3 s timeout is never waited out
    finally:
        close_app(app)
