"""Idempotency-Key on POST and PATCH against the real database: replay, mismatch, in flight,
expiry and purge, keys scoped per principal, the header's syntax, and the setting that makes a
key mandatory."""

from __future__ import annotations

import threading

import psycopg
import pytest

from itemsapi.app import close_app, create_app, services_of
from itemsapi.auth.scopes import SCOPES
from itemsapi.db.idempotency import IdempotencyRepository
from tests.helpers import TableLock, create_key, item_payload, wait_until

KEY = "Idempotency-Key"


def post(client, key: str | None = "k-1", body=None, **headers):
    if key is not None:
        headers[KEY] = key
    return client.post("/v1/items", json=item_payload() if body is None else body, headers=headers)


def count_items(sql) -> int:
    return sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"]


def test_a_retry_gets_the_first_response_again_and_writes_nothing(client, sql):
    first = post(client)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = post(client)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    for name in ("Location", "ETag", "Content-Type"):
        assert again.headers[name] == first.headers[name]
    assert count_items(sql) == 1


def test_the_replay_is_the_first_response_even_after_the_item_changed(client):
    first = post(client).get_json()
    client.patch(f"/v1/items/{first['id']}", json={"name": "Changed"})
    again = post(client)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first
    # ... while a read shows the item as it is now: the replay did not bring back the old one.
    assert client.get(f"/v1/items/{first['id']}").get_json()["name"] == "Changed"


def test_the_same_key_on_another_request_is_422_and_writes_nothing(client, sql):
    assert post(client).status_code == 201
    other = post(client, body=item_payload(name="Other"))
    assert other.status_code == 422
    problem = other.get_json()
    assert problem["type"] == "urn:itemsapi:problem:idempotency-key-reused"
    assert count_items(sql) == 1
    # Another path with the same body is another request too.
    assert client.post("/items", json=item_payload(), headers={KEY: "k-1"}).status_code == 422


def test_a_retry_while_the_first_is_in_flight_is_409_then_replays(app, client, clean_db, sql):
    lock = TableLock(clean_db)
    lock.hold()  # the first request takes its key, then waits to insert
    first: list = []
    thread = threading.Thread(target=lambda: first.append(post(client, key="slow")))
    try:
        thread.start()
        wait_until(lambda: _waiting_backends(sql) > 0, 10, "the first request to wait")
        second = post(client, key="slow")
        assert second.status_code == 409
        assert second.get_json()["type"] == "urn:itemsapi:problem:idempotency-key-in-use"
    finally:
        lock.release()
        thread.join()
        lock.conn.close()
    assert first[0].status_code == 201
    third = post(client, key="slow")
    assert third.headers["Idempotent-Replayed"] == "true"
    assert third.get_json() == first[0].get_json()
    assert count_items(sql) == 1


def _waiting_backends(sql) -> int:
    return sql.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE 'INSERT INTO items%'"
    ).fetchone()["n"]


def test_an_expired_key_runs_again_and_the_purge_deletes_it(app, client, sql):
    first = post(client, key="old").get_json()
    post(client, key="young")
    sql.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                " WHERE key = 'old'")  # fmt: skip
    again = post(client, key="old")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first["id"]  # expired: a new request, a new item
    sql.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    post(client, key="kept")
    repository = IdempotencyRepository(services_of(app).database, 86400.0)
    assert repository.purge(batch=1) == 2  # in batches of one, until none is left
    keys = sql.execute("SELECT key FROM idempotency_keys").fetchall()
    assert [row["key"] for row in keys] == ["kept"]


def test_each_worker_purges_expired_keys_by_itself(clean_db, keyed_client, sql):
    app = create_app({"database_url": clean_db, "cache_prime": 0,
                      "idempotency_purge_interval": 0.1})  # fmt: skip
    try:
        client = keyed_client(app)
        post(client, key="expiring")
        sql.execute("UPDATE idempotency_keys SET created_at = now() - interval '2 days'")
        wait_until(lambda: not sql.execute("SELECT 1 FROM idempotency_keys").fetchall(), 10,
                   "the purge")  # fmt: skip
    finally:
        close_app(app)


def test_keys_of_one_principal_are_invisible_to_another(app, client, clean_db, sql):
    with psycopg.connect(clean_db, autocommit=True) as conn:
        other_token = create_key(conn, "other", list(SCOPES))[1]
    other = app.test_client()
    other.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {other_token}"
    mine = post(client, key="shared").get_json()
    theirs = post(other, key="shared")
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["id"] != mine["id"]
    # Nor can another principal learn of the key through a 422: a different body is just new.
    assert post(other, key="mine-only", body=item_payload(name="x")).status_code == 201
    post(client, key="mine-only")
    assert count_items(sql) == 4


def test_patch_with_a_key_is_applied_once(client, sql):
    item = post(client, key=None).get_json()
    path = f"/v1/items/{item['id']}"
    body = {"quantity": 7}
    first = client.patch(path, json=body, headers={KEY: "p-1"})
    assert first.status_code == 200
    assert first.get_json()["version"] == 2
    again = client.patch(path, json=body, headers={KEY: "p-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert client.get(path).get_json()["version"] == 2  # not patched twice


def test_a_failed_write_stores_nothing_and_its_retry_runs_again(client, sql):
    missing = client.patch("/v1/items/999", json={"quantity": 1}, headers={KEY: "p-2"})
    assert missing.status_code == 404
    assert not sql.execute("SELECT 1 FROM idempotency_keys").fetchall()
    invalid = post(client, key="bad", body={"name": ""})
    assert invalid.status_code == 422
    assert post(client, key="bad").status_code == 201  # the key was not taken by the failure


def test_a_replay_reaches_the_read_cache_of_the_item(app, client):
    # A replay re-announces its items (the first writer may have died before announcing): the
    # cached item is dropped, and the next read goes to the database.
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    item = post(client, key="cached").get_json()
    path = f"/v1/items/{item['id']}"
    wait_until(lambda: client.get(path).headers["X-Cache"] == "hit", 2, "the item cached")
    post(client, key="cached")
    assert client.get(path).headers["X-Cache"] == "miss"


@pytest.mark.parametrize(
    ("value", "key"),
    [("abc-123", "abc-123"), ('"abc-123"', "abc-123"), ('"a\\"b"', 'a"b'), ("x" * 255, "x" * 255)],
)
def test_a_key_is_read_bare_or_as_a_structured_field_string(client, sql, value, key):
    assert post(client, key=value).status_code == 201
    assert sql.execute("SELECT key FROM idempotency_keys").fetchone()["key"] == key


@pytest.mark.parametrize("value", ["x" * 256, '""', "caf\u00e9"])
def test_a_malformed_key_is_400_and_writes_nothing(client, sql, value):
    response = post(client, key=value)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == KEY
    assert count_items(sql) == 0


def test_a_key_can_be_required_on_post(clean_db, keyed_client, sql):
    app = create_app({"database_url": clean_db, "cache_prime": 0,
                      "require_idempotency_key": True})  # fmt: skip
    try:
        client = keyed_client(app)
        missing = post(client, key=None)
        assert missing.status_code == 400
        assert missing.get_json()["errors"][0]["field"] == KEY
        assert count_items(sql) == 0
        assert post(client, key="given").status_code == 201
        item = client.get("/v1/items").get_json()["items"][0]
        assert client.patch(f"/v1/items/{item['id']}", json={}).status_code == 200
    finally:
        close_app(app)


def test_the_key_is_stored_with_the_write_in_one_transaction(client, sql):
    # The record and the item carry the same transaction id: a process dying after the commit
    # leaves both, one dying before leaves neither.
    post(client, key="tx")
    rows = sql.execute(
        "SELECT (SELECT xmin::text FROM items) AS item, xmin::text AS record FROM idempotency_keys"
    ).fetchone()
    assert rows["item"] == rows["record"]
