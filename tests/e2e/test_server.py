"""The contract end to end: real HTTP against Granian, on PostgreSQL."""

from __future__ import annotations

import json
import threading

import pytest

from tests.helpers import http, item_payload

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(start_server, clean_db):
    return start_server(clean_db, "--workers", "2")


def test_full_crud_cycle_over_http(server):
    base = server.url
    created = http("POST", f"{base}/v1/items", item_payload())
    assert created.status == 201
    item = created.json()
    location = created.headers["location"]
    assert location == f"/v1/items/{item['id']}"
    etag = created.headers["etag"]

    got = http("GET", base + location)
    assert got.status == 200
    assert got.json() == item
    assert http("GET", base + location, headers={"If-None-Match": etag}).status == 304

    patched = http(
        "PATCH",
        base + location,
        {"attributes": {"color": None}},
        headers={"Content-Type": "application/merge-patch+json", "If-Match": etag},
    )
    assert patched.status == 200
    assert patched.json()["attributes"] == {"size": {"w": 10, "h": 20}}
    assert http("PUT", base + location, {"name": "x"}, headers={"If-Match": etag}).status == 412

    replaced = http(
        "PUT", base + location, {"name": "Replaced"}, headers={"If-Match": patched.headers["etag"]}
    )
    assert replaced.status == 200
    assert replaced.json()["version"] == 3

    listed = http("GET", f"{base}/v1/items?limit=10")
    assert [i["id"] for i in listed.json()["items"]] == [item["id"]]

    deleted = http("DELETE", base + location)
    assert deleted.status == 204
    assert deleted.body == b""
    assert http("GET", base + location).status == 404


def test_problem_responses_over_http(server):
    base = server.url
    bad = http("POST", f"{base}/v1/items", b"{", headers={"Content-Type": "application/json"})
    assert bad.status == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert (
        http("POST", f"{base}/v1/items", b"{}", headers={"Content-Type": "text/plain"}).status
        == 415
    )
    too_big = http(
        "POST",
        f"{base}/v1/items",
        headers={"Content-Type": "application/json"},
        declared=1024 * 1024 + 10,
    )
    assert too_big.status == 413
    not_allowed = http("DELETE", f"{base}/v1/items")
    assert not_allowed.status == 405
    assert "POST" in not_allowed.headers["allow"]
    assert http("GET", f"{base}/v1/items/abc").status == 404
    echoed = http("GET", f"{base}/live", headers={"X-Request-ID": "e2e-1"})
    assert echoed.headers["x-request-id"] == "e2e-1"


def test_concurrent_writers_with_one_etag_exactly_one_succeeds(server):
    created = http("POST", f"{server.url}/v1/items", item_payload())
    etag, location = created.headers["etag"], created.headers["location"]
    statuses: list[int] = []
    barrier = threading.Barrier(12)

    def writer(n: int) -> None:
        barrier.wait()
        response = http("PATCH", server.url + location, {"quantity": n}, headers={"If-Match": etag})
        statuses.append(response.status)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [412] * 11
    assert http("GET", server.url + location).json()["version"] == 2


def test_every_log_line_is_json_with_an_access_line_per_request(server):
    http("GET", f"{server.url}/v1/items/1", headers={"X-Request-ID": "log-check"})
    server.stop()
    records = [json.loads(line) for line in server.log_lines()]  # fails on any non-JSON line
    access = [r for r in records if r.get("request_id") == "log-check"]
    assert len(access) == 1
    line = access[0]
    assert line["logger"] == "itemsapi.access"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/items/1", 404)
    assert {"timestamp", "level", "duration_ms", "remote_addr", "response_size"} <= set(line)
