"""The read cache in one process against real PostgreSQL: X-Cache, invalidation by this API's
writes and by anyone else's (the triggers' NOTIFY), the listener's outages, /cache/clear,
/health and /metrics."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask

from itemsapi.app import close_app, create_app, services_of
from itemsapi.cache.notification import CHANNEL
from tests.helpers import create_item, etag_of, wait_until


def listening(app: Flask) -> bool:
    return services_of(app).listener.listening


@pytest.fixture
def cached_client(app, keyed_client):
    wait_until(lambda: listening(app), 10, "the listener")
    return keyed_client(app)


def read(client, item_id: int) -> tuple[dict, str]:
    response = client.get(f"/v1/items/{item_id}")
    assert response.status_code == 200
    return response.get_json(), response.headers["X-Cache"]


def cached(client, item_id: int) -> None:
    """Read until a hit."""
    wait_until(lambda: read(client, item_id)[1] == "hit", 2, f"item {item_id} cached")


def test_a_read_is_a_miss_then_a_hit_and_a_write_here_invalidates(cached_client):
    item = create_item(cached_client)
    assert read(cached_client, item["id"])[1] == "miss"
    cached(cached_client, item["id"])
    cached_client.patch(f"/v1/items/{item['id']}", json={"name": "Renamed"})
    body, served = read(cached_client, item["id"])
    assert (body["name"], served) == ("Renamed", "miss")


def test_etags_and_304_are_unchanged_and_marked(cached_client):
    item = create_item(cached_client)
    cached(cached_client, item["id"])
    response = cached_client.get(
        f"/v1/items/{item['id']}", headers={"If-None-Match": etag_of(item)}
    )
    assert response.status_code == 304
    assert response.headers["ETag"] == etag_of(item)
    assert response.headers["X-Cache"] == "hit"


def test_list_pages_are_cached_and_dropped_by_any_write(cached_client):
    create_item(cached_client, name="a")
    first = cached_client.get("/v1/items?limit=5")
    assert first.headers["X-Cache"] == "miss"
    # Until the write's own announcement has come back, which drops the page once more.
    wait_until(
        lambda: cached_client.get("/v1/items?limit=5").headers["X-Cache"] == "hit", 2, "a hit"
    )
    assert cached_client.get("/items?limit=5").headers["X-Cache"] == "hit"  # one cache, both paths
    create_item(cached_client, name="b")
    again = cached_client.get("/v1/items?limit=5")
    assert again.headers["X-Cache"] == "miss"
    assert [i["name"] for i in again.get_json()["items"]] == ["a", "b"]


def test_a_change_made_outside_the_api_is_seen(cached_client, sql):
    item = create_item(cached_client)
    read(cached_client, item["id"])
    sql.execute("UPDATE items SET name = 'from psql' WHERE id = %s", (item["id"],))
    wait_until(lambda: read(cached_client, item["id"])[0]["name"] == "from psql", 2, "the change")


def test_one_statement_changing_many_rows_leaves_nothing_stale(cached_client, sql):
    sql.execute("INSERT INTO items (name) SELECT 'n' || i FROM generate_series(1, 10000) AS i")
    ids = [1, 2, 5000, 9999, 10000]
    for item_id in ids:
        cached(cached_client, item_id)
    sql.execute("UPDATE items SET quantity = quantity + 1")  # one notification: a flush
    wait_until(lambda: read(cached_client, 1)[0]["quantity"] == 1, 2, "the flush")
    assert all(read(cached_client, item_id)[0]["quantity"] == 1 for item_id in ids)


def test_a_killed_listener_means_bypass_then_recovery_with_correct_answers(app, sql, keyed_client):
    client = keyed_client(app)
    wait_until(lambda: listening(app), 10, "the listener")
    item = create_item(client)
    read(client, item["id"])
    sql.execute("SELECT pg_terminate_backend(%s)", (services_of(app).listener.backend_pid,))
    wait_until(lambda: not listening(app), 2, "the listener to notice")
    assert read(client, item["id"])[1] == "bypass"
    # A change made while nobody listens is not heard of: the cache must not serve from before.
    sql.execute("UPDATE items SET name = 'during the gap' WHERE id = %s", (item["id"],))
    wait_until(lambda: listening(app), 5, "the listener to come back")
    body, served = read(client, item["id"])
    assert (body["name"], served) == ("during the gap", "miss")
    cached(client, item["id"])


def test_an_unreachable_listen_url_means_bypass_and_a_health_report(clean_db, keyed_client):
    broken = "postgresql://nobody@127.0.0.1:9/nothing"
    app = create_app({"database_url": clean_db, "listen_database_url": broken})
    try:
        client = keyed_client(app)
        item = create_item(client)
        assert read(client, item["id"])[1] == "bypass"
        assert read(client, item["id"])[1] == "bypass"
        cache = client.get("/health").get_json()["checks"]["cache"]
        assert cache == {"status": "not listening", "entries": 0}
    finally:
        close_app(app)


def test_the_cache_can_be_turned_off(clean_db, keyed_client):
    app = create_app({"database_url": clean_db, "cache": False})
    try:
        client = keyed_client(app)
        item = create_item(client)
        assert read(client, item["id"])[1] == "bypass"
        assert client.get("/health").get_json()["checks"]["cache"]["status"] == "off"
    finally:
        close_app(app)


def test_clear_empties_this_worker_and_tells_every_other(cached_client, clean_db):
    item = create_item(cached_client)
    read(cached_client, item["id"])
    with psycopg.connect(clean_db, autocommit=True) as other:
        other.execute(f"LISTEN {CHANNEL}")
        assert cached_client.post("/cache/clear").status_code == 204
        # The item's own announcement may come first: the announcer sends it off the request
        # path, and on a loaded machine after this LISTEN.
        heard = []
        for notification in other.notifies(timeout=2):
            heard.append(notification.payload)
            if notification.payload == "clear":
                break
    assert heard[-1] == "clear"
    assert read(cached_client, item["id"])[1] == "miss"


def test_health_and_metrics_report_the_cache(cached_client):
    item = create_item(cached_client)
    cached(cached_client, item["id"])
    cache = cached_client.get("/health").get_json()["checks"]["cache"]
    assert cache == {"status": "listening", "entries": 1}
    text = cached_client.get("/metrics").get_data(as_text=True)
    for name in (
        'itemsapi_cache_lookups_total{outcome="hit",region="item"}',
        'itemsapi_cache_invalidations_total{source="write"}',
        "itemsapi_cache_evictions_total",
        "itemsapi_cache_entries",
        "itemsapi_cache_listener_connected",
        "itemsapi_cache_notification_lag_seconds_count",
    ):
        assert name in text, name


def test_each_write_is_announced_once_by_the_api_and_outside_writes_by_the_triggers(
    client, clean_db, sql
):
    """The API's announcements name its server (its own workers skip them); the triggers'
    name none; each write is heard of exactly once."""

    def heard_after(write) -> list[str]:
        write()
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
        heard += [n.payload for n in listener.notifies(timeout=0.3)]  # nothing twice
        return [payload.split(":", 1)[1] for payload in heard]

    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        item = {}
        [created] = heard_after(lambda: item.update(create_item(client)))
        item_id = str(item["id"])
        [patched] = heard_after(lambda: client.patch(f"/v1/items/{item_id}", json={"name": "x"}))
        outside = heard_after(lambda: sql.execute("UPDATE items SET name = 'y' WHERE id = %s",
                                                  (item["id"],)))  # fmt: skip
        [deleted] = heard_after(lambda: client.delete(f"/v1/items/{item_id}"))
    listed, _, origin = created.partition(":")
    assert listed == item_id
    assert origin
    assert created == patched == deleted
    assert outside == [item_id]


def test_this_servers_own_announcements_are_skipped_and_other_servers_applied(
    app, cached_client, sql
):
    mine, theirs = create_item(cached_client), create_item(cached_client)
    cached(cached_client, mine["id"])
    cached(cached_client, theirs["id"])
    announce = "SELECT itemsapi_announce_items(%s, %s)"
    sql.execute(announce, ([mine["id"]], services_of(app).cached_items.origin))
    sql.execute(announce, ([theirs["id"]], "another-server"))
    # Notifications arrive in commit order: once the second is applied, the first was handled.
    wait_until(lambda: read(cached_client, theirs["id"])[1] == "miss", 2, "the announcement")
    assert read(cached_client, mine["id"])[1] == "hit"


def test_a_worker_that_starts_listening_primes_its_cache_with_the_items_changed_last(
    clean_db, sql, keyed_client
):
    ids = [sql.execute("INSERT INTO items (name) VALUES ('x') RETURNING id").fetchone()["id"]
           for _ in range(5)]  # fmt: skip
    sql.execute(
        "UPDATE items SET name = 'changed last', updated_at = now() WHERE id = %s", (ids[0],)
    )
    app = create_app({"database_url": clean_db, "pool_max_size": 2, "cache_prime": 3})
    try:
        cache = services_of(app).cached_items.cache
        wait_until(lambda: len(cache) == 3, 10, "the primed cache")
        client = keyed_client(app)
        assert [read(client, item_id)[1] for item_id in (ids[0], ids[4], ids[3])] == ["hit"] * 3
        assert read(client, ids[1])[1] == "miss"
        sql.execute(
            "UPDATE items SET name = 'before the gap', updated_at = now() WHERE id = %s",
            (ids[1],),
        )
        # Its notification applied (a miss), so it cannot land while the primer reads.
        wait_until(lambda: read(client, ids[1])[1] == "miss", 2, "the notification")
        # A gap in listening: the cache is kept (the change log says what changed meanwhile,
        # cache/follower.py) but not used until listening again.
        services_of(app).cached_items.on_listening(False)
        assert len(cache) >= 3
        assert read(client, ids[0])[1] == "bypass"
        services_of(app).cached_items.on_listening(True)
        wait_until(lambda: len(cache) >= 3, 10, "the cache in use again")
        assert read(client, ids[0])[1] == "hit"  # unchanged, kept through the gap
        assert read(client, ids[1])[0]["name"] == "before the gap"
    finally:
        close_app(app)
