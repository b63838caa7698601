"""The change log and its feed against real PostgreSQL: nothing skipped when transactions commit
out of the order of their positions, each item's changes in order, a follower's copy equal to
the table (also restarted from its saved cursor), histories saying who changed what, retention
and 410, long-polls that hold no run slot."""

from __future__ import annotations

import os
import random
import threading
from datetime import datetime

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from itemsapi.app import close_app, create_app, services_of
from tests.helpers import create_item, wait_until

# Operations the out-of-order test makes in all; the full run is 20,000
# (ITEMSAPI_TEST_CHANGE_OPERATIONS=20000, about 10 minutes: docs/performance.md).
OPERATIONS = int(os.environ.get("ITEMSAPI_TEST_CHANGE_OPERATIONS", "480"))
WRITERS = 8
MAX_DELAY = 0.5  # seconds each write's transaction is held open after its change, at most
FIELDS = ("id", "name", "description", "price", "quantity", "attributes", "version")

# Installed by the test that needs it: each statement changing items then holds its transaction
# open for a random while, after its change is in the log, before it commits, so commit order
# differs from the order the changes took their positions in. Named to fire after the log's.
DELAY_TRIGGERS = """
CREATE FUNCTION test_hold_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(random() * {delay});
    RETURN NULL;
END $$;
CREATE TRIGGER zz_test_hold AFTER INSERT OR UPDATE OR DELETE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION test_hold_transaction();
"""
UNDO_DELAY = "DROP FUNCTION IF EXISTS test_hold_transaction() CASCADE"


class Follower:
    """A client's copy of the items, kept by reading the feed from its cursor; checks as it goes
    that no change comes twice and that each item's versions and positions only rise."""

    def __init__(self, client: FlaskClient, cursor: str | None = None, copy=None) -> None:
        self.client = client
        self.cursor = cursor
        self.copy: dict[int, dict] = dict(copy or {})
        self.seen: set[str] = set()
        self.last: dict[int, tuple[int, int]] = {}  # id -> (version, seq) of its last change

    def read(self, wait: float = 0) -> int:
        query = {"limit": 500, "wait": wait, **({"after": self.cursor} if self.cursor else {})}
        response = self.client.get("/v1/changes", query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        for change in body["changes"]:
            self.apply(change)
        self.cursor = body["next_cursor"]
        return len(body["changes"])

    def apply(self, change: dict) -> None:
        assert change["cursor"] not in self.seen, f"{change['cursor']} delivered twice"
        self.seen.add(change["cursor"])
        item_id, seq = change["id"], int(change["cursor"].split("-")[1])
        version, last_seq = self.last.get(item_id, (0, 0))
        assert seq > last_seq, f"item {item_id}: change {seq} after {last_seq}"
        if change["operation"] == "delete":
            assert change["version"] >= version
            self.copy.pop(item_id, None)
        else:
            assert change["version"] > version, (item_id, change["version"], version)
            self.copy[item_id] = change["item"]
        self.last[item_id] = (change["version"], seq)

    def drain(self) -> None:
        while self.read():
            pass


def table(sql: psycopg.Connection) -> dict[int, dict]:
    rows = sql.execute(
        "SELECT id, name, description, price::float8 AS price, quantity, attributes, version,"
        " updated_at FROM items"
    ).fetchall()
    return {row["id"]: row for row in rows}


def same(copy: dict[int, dict], rows: dict[int, dict]) -> None:
    assert copy.keys() == rows.keys()
    for item_id, row in rows.items():
        kept = copy[item_id]
        assert {f: kept[f] for f in FIELDS} == {f: row[f] for f in FIELDS}, item_id
        assert datetime.fromisoformat(kept["updated_at"]) == row["updated_at"]


@pytest.fixture
def held_transactions(clean_db):
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(UNDO_DELAY)
        conn.execute(DELAY_TRIGGERS.format(delay=MAX_DELAY))
    yield
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(UNDO_DELAY)


def api_writer(app: Flask, token: str, ids: list[int], count: int, seed: int) -> None:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    pick = random.Random(seed)  # noqa: S311 (test data)
    for _ in range(count):
        roll = pick.random()
        if roll < 0.25 or not ids:
            ids.append(create_item(client, name=f"w{seed}")["id"])
        elif roll < 0.3:
            rows = [{"name": f"b{seed}", "quantity": n} for n in range(3)]
            created = client.post("/v1/items", json=rows)
            assert created.status_code == 201
            ids.extend(item["id"] for item in created.get_json()["items"])
        elif roll < 0.9:
            item_id = pick.choice(ids)
            change = {"quantity": pick.randrange(1000), "attributes": {"by": seed}}
            assert client.patch(f"/v1/items/{item_id}", json=change).status_code in (200, 404)
        else:
            assert client.delete(f"/v1/items/{pick.choice(ids)}").status_code in (204, 404)


def psql_writer(url: str, ids: list[int], count: int, seed: int) -> None:
    """Direct SQL, two items per transaction: it takes its transaction id with the first and
    may then wait for another writer's lock on the second (the order the log must keep)."""
    pick = random.Random(seed)  # noqa: S311 (test data)
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(count // 2):
            with conn.transaction():
                for item_id in pick.sample(ids[:50], 2) if len(ids) >= 2 else ():
                    conn.execute(
                        "UPDATE items SET name = 'psql', version = version + 1,"
                        " updated_at = now() WHERE id = %s",
                        (item_id,),
                    )


@pytest.fixture
def wide_app(clean_db):
    """Room for eight writers each holding its connection up to MAX_DELAY, and a follower."""
    app = create_app({"database_url": clean_db, "pool_max_size": 12, "blocking_threads": 12,
                      "cache_prime": 0})  # fmt: skip
    yield app
    close_app(app)


def test_eight_writers_committing_out_of_order_a_follower_misses_nothing(
    wide_app, api_token, keyed_client, sql, clean_db, held_transactions
):
    client = keyed_client(wide_app)
    ids = [create_item(client, name="seed")["id"] for _ in range(10)]
    per_writer = OPERATIONS // WRITERS
    writers = [
        threading.Thread(target=api_writer, args=(wide_app, api_token, ids, per_writer, n))
        for n in range(WRITERS - 1)
    ]
    writers.append(threading.Thread(target=psql_writer, args=(clean_db, ids, per_writer, 99)))
    continuous, restarted = Follower(client), Follower(client)
    saved: list[tuple] = []  # the restarted follower's cursor and copy, as a file would keep
    done = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            while not done.is_set():
                continuous.read(wait=0.2)
                if not saved:
                    restarted.read()
                    if not writers[0].is_alive():  # the middle: it stops here
                        saved.append((restarted.cursor, dict(restarted.copy)))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=follow)
    for thread in (*writers, reader):
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert not errors, errors
    assert saved, "the restart came after every writer ended"
    resumed = Follower(client, *saved[0])
    continuous.drain()
    resumed.drain()
    rows = table(sql)
    same(continuous.copy, rows)
    same(resumed.copy, rows)
    logged = {f"{r['tx']}-{r['seq']}" for r in sql.execute(
        "SELECT tx::text, seq FROM item_changes")}  # fmt: skip
    print(f"{OPERATIONS} operations: {len(logged)} changes logged, {len(rows)} items at the end")
    assert continuous.seen == logged  # none missed; none twice (Follower.apply)
    assert restarted.seen.isdisjoint(resumed.seen)  # resumed after its cursor, not before
    assert restarted.seen | resumed.seen == logged


def test_a_change_is_handed_out_only_once_no_older_transaction_can_commit_before_it(
    client, clean_db, sql
):
    item = create_item(client)
    cursor = client.get("/v1/changes").get_json()["next_cursor"]
    with psycopg.connect(clean_db) as early:
        # Takes its transaction id first, and commits last.
        early.execute("UPDATE items SET name = 'early', version = version + 1 WHERE id = %s",
                      (item["id"],))  # fmt: skip
        late = create_item(client, name="late")
        page = client.get("/v1/changes", query_string={"after": cursor}).get_json()
        assert page["changes"] == []
        assert page["next_cursor"] == cursor
        early.commit()
    page = client.get("/v1/changes", query_string={"after": cursor}).get_json()
    assert [(c["id"], c["item"]["name"]) for c in page["changes"]] == [
        (item["id"], "early"), (late["id"], "late"),
    ]  # fmt: skip


def test_one_items_changes_come_in_their_order_when_its_later_writer_started_first(
    client, clean_db, sql
):
    """T2 takes its transaction id (writing another item), then waits for T1's lock on X: its
    id is lower, its version of X newer. Ordered by transaction id alone, X would go back."""
    x, other = create_item(client, name="x"), create_item(client, name="other")
    cursor = client.get("/v1/changes").get_json()["next_cursor"]
    with psycopg.connect(clean_db) as t2, psycopg.connect(clean_db) as t1:
        t2.execute("UPDATE items SET name = 't2', version = version + 1 WHERE id = %s",
                   (other["id"],))  # fmt: skip
        t1.execute("UPDATE items SET name = 't1', version = version + 1 WHERE id = %s",
                   (x["id"],))  # fmt: skip
        blocked = threading.Thread(
            target=lambda: t2.execute(
                "UPDATE items SET name = 't2', version = version + 1 WHERE id = %s", (x["id"],)
            )
        )
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive()  # waiting for t1's row lock
        t1.commit()
        blocked.join()
        t2.commit()
    changes = client.get("/v1/changes", query_string={"after": cursor}).get_json()["changes"]
    of_x = [(c["item"]["name"], c["version"]) for c in changes if c["id"] == x["id"]]
    assert of_x == [("t1", 2), ("t2", 3)]


def test_history_says_who_changed_what_through_the_api_psql_batches_and_imports(
    client, sql, api_token
):
    key_id = sql.execute("SELECT id FROM api_keys").fetchone()["id"]
    item = create_item(client, name="first", price=1.5)
    client.patch(f"/v1/items/{item['id']}", json={"price": 2.5})
    sql.execute("UPDATE items SET name = 'by psql', version = version + 1 WHERE id = %s",
                (item["id"],))  # fmt: skip
    client.delete(f"/v1/items/{item['id']}")
    response = client.get(f"/v1/items/{item['id']}/history")
    assert response.status_code == 200
    versions = response.get_json()["versions"]
    role = sql.execute("SELECT session_user AS role").fetchone()["role"]
    assert [(v["operation"], v["version"], v["changed_by"], v["changed_fields"])
            for v in versions] == [
        ("delete", 3, key_id, None),
        ("update", 3, role, ["name"]),
        ("update", 2, key_id, ["price"]),
        ("insert", 1, key_id, ["attributes", "description", "name", "price", "quantity"]),
    ]  # fmt: skip
    assert versions[1]["item"]["name"] == "by psql"
    paged = client.get(f"/v1/items/{item['id']}/history?limit=3").get_json()
    rest = client.get(f"/v1/items/{item['id']}/history?before={paged['next_cursor']}").get_json()
    assert [v["version"] for v in paged["versions"] + rest["versions"]] == [3, 3, 2, 1]
    batch = client.post("/v1/items", json=[{"name": "b1"}, {"name": "b2"}]).get_json()["items"]
    imported = client.post("/v1/items/import", data=b'{"name": "imported"}\n',
                           content_type="application/x-ndjson")  # fmt: skip
    assert imported.status_code == 200, imported.get_json()
    imported_id = sql.execute("SELECT id FROM items WHERE name = 'imported'").fetchone()["id"]
    for item_id in (batch[0]["id"], batch[1]["id"], imported_id):
        (only,) = client.get(f"/v1/items/{item_id}/history").get_json()["versions"]
        assert (only["operation"], only["changed_by"]) == ("insert", key_id)
    assert client.get("/v1/items/999999/history").status_code == 404


def test_changes_older_than_the_retention_are_pruned_in_batches_and_their_cursors_get_410(
    app, client, sql
):
    old = [create_item(client, name=f"old{n}") for n in range(5)]
    first = client.get("/v1/changes?limit=1").get_json()["next_cursor"]
    sql.execute("UPDATE item_changes SET changed_at = now() - interval '8 days'")
    kept = create_item(client, name="kept")
    changes = services_of(app).changes
    assert changes.prune(batch=2) == len(old)  # three transactions of at most two
    gone = client.get("/v1/changes", query_string={"after": first})
    assert gone.status_code == 410
    assert gone.get_json()["type"] == "urn:itemsapi:problem:cursor-expired"
    assert "copy the items again" in gone.get_json()["detail"]
    page = client.get("/v1/changes").get_json()  # from the oldest kept
    assert [c["id"] for c in page["changes"]] == [kept["id"]]
    last_pruned = sql.execute("SELECT tx::text || '-' || seq AS c FROM item_changes_pruned")
    after_pruned = client.get("/v1/changes", query_string={"after": last_pruned.fetchone()["c"]})
    assert [c["id"] for c in after_pruned.get_json()["changes"]] == [kept["id"]]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("after=abc", ["after"]),
        ("after=1-99999999999999999999&limit=0&wait=31", ["after", "limit", "wait"]),
        ("wait=nan&cursor=x", ["cursor", "wait"]),
        ("after=1-2&after=1-3", ["after"]),
    ],
)
def test_bad_feed_parameters_are_400_each_named(client, query, fields):
    response = client.get(f"/v1/changes?{query}")
    assert response.status_code == 400
    assert sorted(e["field"] for e in response.get_json()["errors"]) == sorted(fields)


def test_a_long_poll_gets_the_change_it_waited_for_without_holding_a_run_slot(
    clean_db, keyed_client
):
    # One run slot and no queue: a waiter holding its slot would make the write below a 503.
    app = create_app({"database_url": clean_db, "blocking_threads": 1, "max_queued": 0,
                      "pool_max_size": 2, "cache_prime": 0})  # fmt: skip
    try:
        client = keyed_client(app)
        cursor = client.get("/v1/changes").get_json()["next_cursor"]
        answer: dict = {}
        waiter = threading.Thread(
            target=lambda: answer.update(
                client.get("/v1/changes", query_string={"after": cursor, "wait": 20}).get_json()
            )
        )
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()
        item = create_item(client)  # would be 503 if the waiter held the only slot
        waiter.join(20)
        assert [c["id"] for c in answer["changes"]] == [item["id"]]
    finally:
        close_app(app)


def test_a_long_poll_beyond_the_waiting_places_is_answered_at_once(clean_db, keyed_client):
    app = create_app({"database_url": clean_db, "changes_waiters": 0, "cache_prime": 0})
    try:
        client = keyed_client(app)
        cursor = client.get("/v1/changes").get_json()["next_cursor"]
        writer = threading.Timer(2.0, lambda: create_item(client))
        writer.start()
        page = client.get("/v1/changes", query_string={"after": cursor, "wait": 10}).get_json()
        assert page == {"changes": [], "next_cursor": cursor}  # answered before the write
        writer.join()
    finally:
        close_app(app)


def test_a_listener_cut_off_keeps_its_cache_and_serves_nothing_changed_meanwhile(
    app, sql, keyed_client
):
    client = keyed_client(app)
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    changed, unchanged = create_item(client), create_item(client)
    services_of(app).follower.catch_up()  # the log read past their inserts
    for item in (changed, unchanged):
        wait_until(lambda i=item: cached_read(client, i["id"])[1] == "hit", 2, "cached")
    listener = services_of(app).listener
    # The follower's read turn held through the gap: a listener back before the UPDATE commits
    # would otherwise hear its NOTIFY, and the test could read before that is applied.
    with services_of(app).follower._reading:
        sql.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        wait_until(lambda: not listener.listening, 2, "the listener to notice")
        # Not heard of by anyone listening: the change log knows.
        sql.execute("UPDATE items SET name = 'in the gap', version = version + 1 WHERE id = %s",
                    (changed["id"],))  # fmt: skip
    cache = services_of(app).cached_items.cache
    wait_until(lambda: cache.usable, 5, "the listener back, and the log applied")
    assert cached_read(client, unchanged["id"])[1] == "hit"  # the cache was kept
    assert cached_read(client, changed["id"])[0]["name"] == "in the gap"


def test_a_change_nobody_announced_is_dropped_from_the_cache_by_the_follower(
    app, sql, keyed_client
):
    """What a server killed between its commit and its announcement leaves: a commit no
    notification tells of. The worker's follower reads it from the log within its interval."""
    client = keyed_client(app)
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    item = create_item(client)
    wait_until(lambda: cached_read(client, item["id"])[1] == "hit", 2, "cached")
    with sql.transaction():
        sql.execute("SET LOCAL itemsapi.announce = 'after_commit'")  # as the API: no NOTIFY
        sql.execute("UPDATE items SET name = 'unannounced', version = version + 1 WHERE id = %s",
                    (item["id"],))  # fmt: skip
    interval = services_of(app).settings.changes_poll_interval
    wait_until(lambda: cached_read(client, item["id"])[0]["name"] == "unannounced",
               interval + 2, "the follower")  # fmt: skip


def cached_read(client, item_id: int) -> tuple[dict, str]:
    response = client.get(f"/v1/items/{item_id}")
    assert response.status_code == 200
    return response.get_json(), response.headers["X-Cache"]


def test_a_truncate_is_recorded_as_a_delete_of_every_item(client, sql):
    items = [create_item(client), create_item(client)]
    cursor = client.get("/v1/changes").get_json()["next_cursor"]
    sql.execute("TRUNCATE items")
    changes = client.get("/v1/changes", query_string={"after": cursor}).get_json()["changes"]
    assert [(c["operation"], c["id"]) for c in changes] == [("delete", i["id"]) for i in items]
