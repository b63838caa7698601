"""Probes through the test client: database up, unreachable, or without the schema. (Outages
while serving are tested end to end.)"""

from collections.abc import Iterator

import pytest
from flask import Flask

from itemsapi.app import close_app, create_app
from itemsapi.db import migrations


def test_live_is_ok(client):
    response = client.get("/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_is_200_when_the_database_answers(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"


def test_health_reports_database_and_pool(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["environment"] == "development"
    database = body["checks"]["database"]
    assert database["status"] == "ok"
    assert database["latency_ms"] >= 0
    assert set(database["pool"]) == {"size", "available", "waiting"}
    assert database["pool"]["size"] >= 1


def test_probes_report_unavailable_when_the_database_cannot_be_reached(clean_db):
    # A server that is not there: nothing listens on this socket directory.
    app = create_app(
        {
            "database_url": "postgresql://postgres@/x?host=/nonexistent&port=1",
            "pool_timeout": 0.3,
            "ready_timeout": 0.5,
        }
    )
    try:
        client = app.test_client()
        assert client.get("/live").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["Retry-After"]
        health = client.get("/health")
        assert health.status_code == 503
        assert health.get_json()["checks"]["database"]["status"] == "unavailable"
        # A well-formed key: checking it needs the database, which is down: 503, not 401.
        token = "itemsapi_000000000000_" + "a" * 43
        item = client.get("/v1/items/1", headers={"Authorization": f"Bearer {token}"})
        assert item.status_code == 503
        assert item.mimetype == "application/problem+json"
        assert item.headers["Retry-After"]
    finally:
        close_app(app)


@pytest.fixture
def app_without_schema(empty_database: str) -> Iterator[Flask]:
    # Access control off: what is under test is the item statements meeting no schema (with it
    # on, a key's lookup meets it first: tests/integration/test_auth_keys.py).
    app = create_app({"database_url": empty_database, "ready_timeout": 2, "auth": "off"})
    yield app
    close_app(app)


def test_without_the_schema_probes_say_so_and_item_requests_get_503_not_500(
    app_without_schema, empty_database, caplog
):
    # caplog is set up after the app: create_app replaces the root logger's handlers.
    client = app_without_schema.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.get_json() == {"status": "unavailable", "reason": "SchemaMissing"}
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["checks"]["database"]["error"] == "SchemaMissing"
    for method, path, body in [
        ("GET", "/v1/items/1", None),
        ("GET", "/v1/items?sort=-price&q=abc", None),
        ("POST", "/v1/items", {"name": "x"}),
        ("PUT", "/v1/items/1", {"name": "x"}),
        ("PATCH", "/v1/items/1", {"attributes": {"a": 1}}),
        ("DELETE", "/v1/items/1", None),
    ]:
        response = client.open(path, method=method, json=body)
        assert response.status_code == 503, (method, path, response.get_data(as_text=True))
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["type"].endswith(":database-unavailable")
        assert "items" not in response.get_json()["detail"]  # the server's words stay inside
        assert response.headers["Retry-After"]
    logged = [r.getMessage() for r in caplog.records if r.name == "itemsapi.web.problems"]
    assert 'relation "items" does not exist' in logged[0]
    assert "itemsapi migrate" in logged[0]

    migrations.migrate(empty_database)  # as `itemsapi migrate` would, while the app runs
    assert client.get("/ready").status_code == 200
    created = client.post("/v1/items", json={"name": "x"})
    assert created.status_code == 201
    assert client.get(created.headers["Location"]).status_code == 200
