"""/v1 is the API's home; the unversioned paths from before it answer as they did, marked
deprecated; GET / says where to go."""

from __future__ import annotations

import pytest

from tests.helpers import item_payload

MERGE_PATCH = "application/merge-patch+json"


def crud_round(client, prefix: str) -> list:
    """Create, read, replace, patch, list two pages, delete: every response, in order."""
    created = client.post(f"{prefix}/items", json=item_payload(name="a"))
    client.post(f"{prefix}/items", json=item_payload(name="b"))
    location = created.headers["Location"]
    etag = created.headers["ETag"]
    responses = [
        created,
        client.get(location),
        client.get(location, headers={"If-None-Match": etag}),
        client.put(location, json=item_payload(name="c"), headers={"If-Match": etag}),
        client.put(location, json=item_payload(name="d"), headers={"If-Match": etag}),  # stale
        client.patch(location, json={"price": 1}, content_type=MERGE_PATCH),
    ]
    first = client.get(f"{prefix}/items?limit=1&sort=name")
    responses += [first, client.get(first.headers["Link"].split(">")[0].lstrip("<"))]
    responses.append(client.delete(location))
    responses.append(client.get(location))
    return responses


def test_v1_does_full_crud_and_points_at_v1(client):
    responses = crud_round(client, "/v1")
    assert [r.status_code for r in responses] == [201, 200, 304, 200, 412, 200, 200, 200, 204, 404]
    assert responses[0].headers["Location"] == "/v1/items/1"
    assert responses[6].headers["Link"].startswith("</v1/items?")
    assert [i["name"] for r in responses[6:8] for i in r.get_json()["items"]] == ["b", "c"]
    assert all("Deprecation" not in r.headers for r in responses)


def test_unversioned_paths_answer_as_v1_does_and_say_they_are_deprecated(app, client, sql):
    v1 = crud_round(client, "/v1")
    sql.execute("TRUNCATE items RESTART IDENTITY")
    old = crud_round(client, "")
    assert [r.status_code for r in old] == [r.status_code for r in v1]
    for new, legacy in zip(v1, old, strict=True):
        assert legacy.headers["Deprecation"] == "true"
        path = legacy.request.full_path.rstrip("?")
        assert f'</v1{path}>; rel="successor-version"' in legacy.headers.getlist("Link")
        if new.status_code not in (204, 304):
            assert strip_times(legacy.get_json()) == strip_times(new.get_json())
    assert old[0].headers["Location"] == "/items/1"  # as before /v1: existing clients follow it
    next_links = [v for v in old[6].headers.getlist("Link") if 'rel="next"' in v]
    assert next_links[0].startswith("</items?")


def strip_times(body):
    if isinstance(body, dict):
        return {k: strip_times(v) for k, v in body.items() if k not in ("created_at", "updated_at")}
    if isinstance(body, list):
        return [strip_times(v) for v in body]
    return body


def test_the_document_lists_v1_and_marks_the_unversioned_paths_deprecated(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/items", "/items/{item_id}"):
        for method, operation in paths[path].items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            successor = paths["/v1" + path][method]
            assert operation["deprecated"] is True
            assert "deprecated" not in successor
            assert operation["operationId"] == successor["operationId"] + "Unversioned"


def test_root_answers_a_json_index(client):
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "itemsapi"
    assert body["links"] == {
        "items": "/v1/items",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/health",
    }
    assert "Accept" in response.headers["Vary"]
    for link in body["links"].values():
        assert client.get(link).status_code == 200, link


@pytest.mark.parametrize(
    ("accept", "redirected"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # a browser
        ("*/*", False),  # curl
        ("", False),
    ],
)
def test_root_sends_a_browser_to_the_docs(client, accept, redirected):
    response = client.get("/", headers={"Accept": accept} if accept else {})
    if redirected:
        assert response.status_code == 302
        assert response.headers["Location"] == "/docs"
    else:
        assert response.status_code == 200
        assert response.mimetype == "application/json"
