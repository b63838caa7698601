"""What browsers and caches are told, per route: the safe headers (nosniff, Cache-Control, Vary,
the docs page's CSP), CORS (preflights answered before authentication, the database and the run
slots; the headers a page's script may read), and the deprecated paths' Sunset and counter.
The same in a real browser: tests/e2e/test_browser_cors.py."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from itemsapi.app import close_app, create_app
from itemsapi.config import ConfigError, Settings
from itemsapi.web.docs import START
from tests.helpers import item_payload

ORIGIN = "http://app.example.test:8080"
ELSEWHERE = "http://evil.example.test"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH",
             "Access-Control-Request-Headers": "authorization, content-type, if-match"}  # fmt: skip


@pytest.fixture
def make_app(clean_db: str) -> Iterator:
    apps: list[Flask] = []

    def make(**settings: object) -> Flask:
        config = {"database_url": clean_db, "pool_min_size": 1, "pool_max_size": 4, **settings}
        apps.append(create_app({"cache_prime": 0, **config}))
        return apps[-1]

    yield make
    for app in apps:
        close_app(app)


def cache_control(response) -> str | None:
    return response.headers.get("Cache-Control")


def test_item_answers_are_private_and_revalidated_and_vary_by_credentials(client):
    created = client.post("/v1/items", json=item_payload())
    location, tag = created.headers["Location"], created.headers["ETag"]
    answers = [
        created,
        client.get(location),
        client.get(location, headers={"If-None-Match": tag}),
        client.patch(location, json={"price": 2}, content_type="application/merge-patch+json"),
        client.get("/v1/items?limit=1"),
        client.get("/items?limit=1"),  # the deprecated paths too
    ]
    assert [a.status_code for a in answers] == [201, 200, 304, 200, 200, 200]
    for answer in answers:
        assert cache_control(answer) == "private, no-cache", answer.request.path
        assert "Authorization" in answer.headers.getlist("Vary")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert client.delete(location).headers["Cache-Control"] == "private, no-cache"


def test_problems_probes_and_the_scrape_are_never_stored(app, client):
    anonymous = app.test_client()
    for answer in [
        client.get("/v1/items/99"),  # 404
        anonymous.get("/v1/items/1"),  # 401
        client.post("/v1/items", json={"name": ""}),  # 422
        client.get("/nowhere"),
        client.get("/live"),
        client.get("/ready"),
        client.get("/health"),
        client.get("/metrics"),
    ]:
        assert cache_control(answer) == "no-store", answer.request.path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_page_has_a_policy_that_lets_only_its_own_scripts_run(client):
    page = client.get("/docs")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["Content-Security-Policy"].split(";")
    )
    starter = base64.b64encode(hashlib.sha256(START.encode()).digest()).decode()
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == f"'self' 'sha256-{starter}'"  # no 'unsafe-inline', no eval
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert f"<script>{START}</script>" in page.get_data(as_text=True)
    assert cache_control(page) == "no-cache"
    assert cache_control(client.get("/openapi.json")) == "no-cache"
    asset = client.get("/docs/static/swagger-ui.css")
    assert "max-age=86400" in cache_control(asset)  # the assets' own choice is kept
    assert "Content-Security-Policy" not in client.get("/openapi.json").headers


def test_an_export_is_not_stored_and_varies_by_what_it_was_asked_for(client):
    export = client.get("/v1/items/export", headers={"Accept": "text/csv"})
    assert export.status_code == 200
    assert cache_control(export) == "no-store"
    assert "Accept" in export.headers.getlist("Vary")


def test_without_origins_there_is_no_cors(client):
    preflight = client.options("/v1/items/1", headers=PREFLIGHT)
    got = client.get("/v1/items", headers={"Origin": ORIGIN})
    for answer in (preflight, got):
        assert not [name for name, _ in answer.headers if name.startswith("Access-Control")]
    assert "Origin" not in got.headers.getlist("Vary")


def test_a_preflight_needs_no_credentials_nor_the_database(make_app):
    # Nothing listens there: any request that reached the database would answer 503.
    app = make_app(database_url="postgresql://itemsapi@127.0.0.1:9/nowhere", cors_origins=ORIGIN,
                   cors_max_age=900)  # fmt: skip
    client = app.test_client()  # no Authorization: a browser never sends it on a preflight
    answer = client.options("/v1/items/7", headers=PREFLIGHT)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed_methods = answer.headers["Access-Control-Allow-Methods"].split(", ")
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= set(allowed_methods)
    allowed = answer.headers["Access-Control-Allow-Headers"].split(", ")
    for header in ("Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key"):
        assert header in allowed
    assert answer.headers["Access-Control-Max-Age"] == "900"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "Origin" in answer.headers.getlist("Vary")
    assert answer.headers["X-Request-ID"]  # telemetry saw it
    assert client.get("/v1/items/7", headers={"Origin": ORIGIN}).status_code == 401


def test_an_origin_not_listed_gets_no_cors_headers(make_app, keyed_client):
    client = keyed_client(make_app(cors_origins=ORIGIN))
    preflight = client.options("/v1/items/1", headers={**PREFLIGHT, "Origin": ELSEWHERE})
    got = client.get("/v1/items", headers={"Origin": ELSEWHERE})
    for answer in (preflight, got):
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert "Origin" in answer.headers.getlist("Vary")


def test_a_listed_origin_reads_the_headers_paging_and_conditional_writes_need(
    make_app, keyed_client
):
    client = keyed_client(make_app(cors_origins=f"{ELSEWHERE},{ORIGIN}", cors_credentials=True))
    created = client.post("/v1/items", json=item_payload(), headers={"Origin": ORIGIN})
    problem = client.get("/v1/items/99", headers={"Origin": ORIGIN})
    for answer in (created, problem):
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        exposed = answer.headers["Access-Control-Expose-Headers"].split(", ")
        for header in ("ETag", "Location", "Link", "Retry-After", "Deprecation", "Sunset",
                       "X-Request-ID"):  # fmt: skip
            assert header in exposed
        assert "Origin" in answer.headers.getlist("Vary")
    assert "Authorization" in created.headers.getlist("Vary")


def test_any_origin_when_asked_and_no_credentials(make_app, keyed_client):
    client = keyed_client(make_app(cors_origins="*"))
    answer = client.get("/v1/items", headers={"Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Origin" not in answer.headers.getlist("Vary")  # the same answer for every origin
    with pytest.raises(ConfigError, match="ITEMSAPI_CORS_ORIGINS may be \\* alone, and only while"):
        Settings(cors_origins="*", cors_credentials=True)
    with pytest.raises(ConfigError, match="is not an origin"):
        Settings(cors_origins="http://app.example.test/path")


def test_the_unversioned_paths_carry_their_sunset_and_are_counted(make_app, keyed_client):
    client = keyed_client(make_app(unversioned_sunset="2027-06-30"))
    route = "/items/{item_id}"

    def counted() -> float:
        samples = [
            sample.value
            for metric in REGISTRY.collect() if metric.name == "itemsapi_unversioned_requests"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["route"] == route
            and sample.labels["principal"] not in ("anonymous", "other")
        ]  # fmt: skip
        return sum(samples)

    before = counted()
    location = client.post("/v1/items", json=item_payload()).headers["Location"]
    old = client.get(location.removeprefix("/v1"))
    new = client.get(location)
    assert old.headers["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert old.headers["Deprecation"] == "true"
    assert "Sunset" not in new.headers
    assert counted() == before + 1
    operation = client.get("/openapi.json").get_json()["paths"][route]["get"]
    assert operation["x-sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert operation["responses"]["200"]["headers"]["Sunset"] == {
        "$ref": "#/components/headers/Sunset"
    }
    assert re.match(
        r"Deprecated: this path stops answering on Wed, 30 Jun 2027", operation["description"]
    )


def test_unversioned_off_serves_v1_alone(make_app, keyed_client):
    client = keyed_client(make_app(unversioned=False))
    assert client.get("/v1/items").status_code == 200
    assert client.get("/items").status_code == 404
    assert client.post("/items", json=item_payload()).status_code == 404
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/v1/items" in paths
    assert not [path for path in paths if path.startswith("/items")]
