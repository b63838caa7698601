"""Helpers that build test data and talk HTTP, shared by the test modules."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import psycopg
from flask.testing import FlaskClient


def item_payload(**overrides: Any) -> dict[str, Any]:
    """A valid POST/PUT body; keyword arguments replace or add fields."""
    payload: dict[str, Any] = {
        "name": "Widget",
        "description": "A useful widget",
        "price": 19.99,
        "quantity": 5,
        "attributes": {"color": "red", "size": {"w": 10, "h": 20}},
    }
    payload.update(overrides)
    return payload


def create_item(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/items", json=item_payload(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def etag_of(item: dict[str, Any]) -> str:
    return f'"{item["id"]}-{item["version"]}"'


class HttpResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> HttpResponse:
    """One real HTTP request (no client library between the test and the server)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return HttpResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def run_at_once(action: Callable[[], object], times: int, timeout: float = 60) -> list[Exception]:
    """Run `action` in `times` threads released together; return what they raised (an
    exception in a thread would not fail the test on its own)."""
    start = threading.Barrier(times)
    failures: list[Exception] = []

    def run() -> None:
        start.wait()
        try:
            action()
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return failures


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Until `predicate` holds, asking every `interval` seconds; a refused or reset request
    (OSError) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_the_schema_fail(database_url: str) -> None:
    """Give the database a jsonb_merge_patch(jsonb, jsonb) returning something else: the
    script's CREATE OR REPLACE FUNCTION, after the table and its indexes, cannot replace it,
    so sql/init.sql fails part way, and no retry helps."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION jsonb_merge_patch(jsonb, jsonb) RETURNS text"
            " LANGUAGE sql AS 'SELECT 1::text'"
        )


class TableLock:
    """While held, a transaction has ACCESS EXCLUSIVE on items: every statement on it waits."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)

    def hold(self) -> None:
        self.conn.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.rollback()


def api_backends(database_url: str, *, waiting_on_lock: bool = False) -> list[int]:
    """Server pids of the API's pooled sessions (optionally only those waiting on a lock)."""
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = 'itemsapi'"
    if waiting_on_lock:
        query += " AND wait_event_type = 'Lock'"
    with psycopg.connect(database_url) as conn:
        return [pid for (pid,) in conn.execute(query)]
