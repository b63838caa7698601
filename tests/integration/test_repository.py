"""ItemRepository against a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from itemsapi.config import Settings
from itemsapi.db.database import Database
from itemsapi.db.filters import Filters
from itemsapi.db.items import ItemRepository
from itemsapi.db.list_query import ListQuery
from itemsapi.db.pool import ConnectionEvents, create_pool
from itemsapi.db.server import ServerFacts, create_database, inspect_server
from itemsapi.errors import (
    ConstraintViolation,
    DatabaseUnavailable,
    ItemNotFound,
    PreconditionFailed,
    SchemaMissing,
)
from itemsapi.web.schemas import validate_write
from tests.helpers import TableLock, api_backends, apply_baseline, run_at_once, wait_until


@contextmanager
def _open_pool(database_url: str, max_size: int) -> Iterator[ConnectionPool]:
    settings = Settings(database_url=database_url, pool_min_size=1, pool_max_size=max_size)
    pool = create_pool(settings, ConnectionEvents())
    pool.open(wait=True)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def repo(clean_db: str) -> Iterator[ItemRepository]:
    with _open_pool(clean_db, max_size=8) as pool:
        yield ItemRepository(Database(pool))


@pytest.fixture
def one_connection_pool(clean_db: str) -> Iterator[ConnectionPool]:
    """A pool holding a single connection: every call lands on the same session."""
    with _open_pool(clean_db, max_size=1) as pool:
        yield pool


def new(repo: ItemRepository, **fields) -> dict:
    return repo.create(validate_write({"name": "thing", **fields}))


def test_create_returns_the_stored_row_with_server_fields(repo):
    item = new(repo, price=2.5, attributes={"k": [1, 2]})
    assert item["id"] == 1
    assert item["version"] == 1
    assert item["price"] == 2.5
    assert item["attributes"] == {"k": [1, 2]}
    assert item["created_at"] == item["updated_at"]
    assert item["created_at"].utcoffset().total_seconds() == 0  # connections run in UTC
    assert repo.get(1) == item


def test_get_missing_item_raises_not_found(repo):
    with pytest.raises(ItemNotFound):
        repo.get(12345)


def test_get_survives_its_prepared_statement_being_deallocated(one_connection_pool, clean_db):
    # A pooler or a DISCARD ALL can drop a session's prepared statements behind our back.
    repo = ItemRepository(Database(one_connection_pool))
    item = new(repo)
    assert repo.get(item["id"]) == item  # prepared on the pool's only connection
    [backend] = api_backends(clean_db)
    with one_connection_pool.connection() as conn:
        conn.execute("DEALLOCATE ALL")
    assert repo.get(item["id"]) == item
    assert api_backends(clean_db) == [backend]  # the same session, prepared again


def test_a_read_whose_connection_dies_under_it_is_retried_once(one_connection_pool, clean_db):
    repo = ItemRepository(Database(one_connection_pool))
    item = new(repo)
    read: dict = {}
    lock = TableLock(clean_db)
    try:
        lock.hold()
        reader = threading.Thread(target=lambda: read.update(row=repo.get(item["id"])))
        reader.start()

        def waiting() -> list[int]:
            return api_backends(clean_db, waiting_on_lock=True)

        wait_until(lambda: len(waiting()) == 1, 10, "the read to block")
        [first] = waiting()
        with psycopg.connect(clean_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        wait_until(lambda: waiting() not in ([], [first]), 10, "the retry to block")
        lock.release()
    finally:
        lock.conn.close()
    reader.join(10)
    assert read["row"] == item


def test_replace_resets_omitted_fields_and_bumps_version(repo):
    item = new(repo, description="d", price=1, quantity=3, attributes={"a": 1})
    replaced = repo.replace(item["id"], validate_write({"name": "other"}), None)
    assert replaced["name"] == "other"
    assert (replaced["description"], replaced["price"], replaced["quantity"]) == ("", None, 0)
    assert replaced["attributes"] == {}
    assert replaced["version"] == 2
    assert replaced["updated_at"] > item["updated_at"]
    assert replaced["created_at"] == item["created_at"]


def test_patch_changes_only_given_fields_and_merges_attributes(repo):
    item = new(repo, price=4, attributes={"keep": 1, "drop": 2, "nested": {"x": 1}})
    patched = repo.patch(
        item["id"], {"quantity": 9, "attributes": {"drop": None, "nested": {"y": 2}}}, None
    )
    assert patched["quantity"] == 9
    assert patched["price"] == 4
    assert patched["attributes"] == {"keep": 1, "nested": {"x": 1, "y": 2}}
    assert patched["version"] == 2


def test_empty_patch_is_a_no_op(repo):
    item = new(repo)
    assert repo.patch(item["id"], {}, None) == item


def test_version_precondition_is_checked_atomically(repo):
    item = new(repo)
    with pytest.raises(PreconditionFailed) as excinfo:
        repo.patch(item["id"], {"quantity": 1}, [7])
    assert excinfo.value.current_version == 1
    with pytest.raises(PreconditionFailed):  # If-Match with no tag for this item
        repo.replace(item["id"], validate_write({"name": "other"}), [])
    assert repo.get(item["id"])["quantity"] == 0
    assert repo.patch(item["id"], {"quantity": 1}, [5, 1])["version"] == 2
    with pytest.raises(ItemNotFound):
        repo.patch(999, {"quantity": 1}, [1])


def test_of_concurrent_writers_with_the_same_version_exactly_one_wins(repo):
    item = new(repo)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            repo.patch(item["id"], {"quantity": n}, [1])
            outcomes.append("ok")
        except PreconditionFailed:
            outcomes.append("412")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["412"] * 7 + ["ok"]
    assert repo.get(item["id"])["version"] == 2


def test_delete_then_gone(repo):
    item = new(repo)
    with pytest.raises(PreconditionFailed):
        repo.delete(item["id"], [2])
    repo.delete(item["id"], [1])
    with pytest.raises(ItemNotFound):
        repo.get(item["id"])
    with pytest.raises(ItemNotFound):
        repo.delete(item["id"], None)


def test_database_refusal_becomes_a_domain_error(repo):
    # Bypasses validation on purpose: the database's own constraint must still hold.
    with pytest.raises(ConstraintViolation, match="items_quantity_range"):
        repo.create(
            {"name": "x", "description": "", "price": None, "quantity": -5, "attributes": {}}
        )


def test_text_the_database_cannot_hold_is_refused_not_truncated(repo):
    # Bypasses validation on purpose: a NUL must not cut the value short on its way in.
    with pytest.raises(ConstraintViolation):
        repo.create(
            {"name": "a\x00b", "description": "", "price": None, "quantity": 0, "attributes": {}}
        )
    assert repo.list(ListQuery()).items == []


def test_list_walks_every_match_once_in_order(repo):
    prices = [5, None, 1, 5, 3, None, 2, 5]
    for n, price in enumerate(prices):
        new(repo, name=f"item {n}", price=price)
    seen, after = [], None
    while True:
        page = repo.list(ListQuery(limit=3, sort="price", descending=True, after=after))
        seen.extend((row["price"], row["id"]) for row in page.items)
        if page.next_key is None:
            break
        after = page.next_key
    expected = sorted(
        ((p, i + 1) for i, p in enumerate(prices)),
        key=lambda t: (-1 if t[0] is None else t[0], t[1]),
        reverse=True,
    )
    assert seen == expected


def test_list_filters(repo):
    new(repo, name="Red 50% off", price=10)
    new(repo, name="red_apple", price=20)
    new(repo, name="green", price=30)
    new(repo, name="REDDISH", price=None)

    def names(filters: Filters) -> list[str]:
        return [r["name"] for r in repo.list(ListQuery(filters=filters)).items]

    assert names(Filters(q="red")) == ["Red 50% off", "red_apple", "REDDISH"]
    assert names(Filters(q="50%")) == ["Red 50% off"]
    assert names(Filters(q="d_a")) == ["red_apple"]  # _ is literal, not "any character"
    assert names(Filters(min_price=Decimal(15), max_price=Decimal(30))) == ["red_apple", "green"]


def test_a_column_outside_the_allow_list_never_reaches_sql(repo):
    item = new(repo)
    with pytest.raises(ValueError, match="not writable"):
        repo.patch(item["id"], {"version": 99}, None)
    assert repo.get(item["id"])["version"] == 1


def test_without_the_schema_ping_and_item_statements_raise_schema_missing(empty_database):
    with _open_pool(empty_database, max_size=1) as pool:
        repo = ItemRepository(Database(pool))
        with pytest.raises(SchemaMissing):
            repo.ping(timeout=2)
        with pytest.raises(SchemaMissing):
            repo.get(1)
        with pytest.raises(SchemaMissing):
            new(repo)
        apply_baseline(empty_database)
        repo.ping(timeout=2)  # no restart needed: nothing was prepared while it was missing
        assert new(repo)["id"] == 1


def test_a_schema_without_the_merge_function_is_not_in_place(repo, sql):
    item = new(repo)
    sql.execute("DROP FUNCTION jsonb_merge_patch(jsonb, jsonb)")
    try:
        with pytest.raises(SchemaMissing):
            repo.ping(timeout=2)
        with pytest.raises(SchemaMissing):
            repo.patch(item["id"], {"attributes": {"a": 1}}, None)
    finally:
        apply_baseline(sql.info.dsn)
    repo.ping(timeout=2)


def test_inspect_server_reports_the_connection_limit_and_the_schema(database_url, empty_database):
    with psycopg.connect(database_url) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    assert inspect_server(database_url) == ServerFacts(limit - reserved, schema_in_place=True)
    assert inspect_server(empty_database) == ServerFacts(limit - reserved, schema_in_place=False)


def test_inspect_server_of_an_unreachable_server_is_database_unavailable():
    with pytest.raises(DatabaseUnavailable):
        inspect_server("postgresql://postgres@/x?host=/nonexistent&port=1")


def test_create_database_called_at_once_by_several_processes_creates_it_once(database_url):
    # Two `itemsapi` commands started together on one embedded server both create its database.
    name = f"created_{uuid.uuid4().hex[:10]}"
    failures = run_at_once(lambda: create_database(database_url, name), 6, timeout=30)
    try:
        assert failures == []
        with psycopg.connect(database_url) as conn:
            found = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            assert found.fetchone() == (1,)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name))
            )
