"""Sizes against real PostgreSQL: list pages cut to ITEMSAPI_MAX_RESPONSE_BYTES with a cursor
that still reaches every item once, and priming that stops at the cache's bytes."""

from __future__ import annotations

import orjson
import pytest

from itemsapi.app import close_app, create_app, services_of
from tests.helpers import wait_until

PAGE_BYTES = 64 * 1024


def attributes(size: int) -> dict[str, str]:
    """About `size` bytes of JSON in values of 1 KB."""
    return {f"k{n:05}": "v" * 1000 for n in range(size // 1012)}


@pytest.fixture
def sized_client(clean_db, keyed_client):
    app = create_app(
        {"database_url": clean_db, "pool_max_size": 2, "max_response_bytes": PAGE_BYTES}
    )
    yield keyed_client(app)
    close_app(app)


def test_a_page_over_the_ceiling_is_cut_and_walking_still_reaches_every_item_once(
    sized_client,
):
    sizes = [20_000] * 12 + [3 * PAGE_BYTES] + [500] * 30 + [20_000] * 5
    for n, size in enumerate(sizes):
        response = sized_client.post(
            "/v1/items", json={"name": f"n{n:03}", "attributes": attributes(size)}
        )
        assert response.status_code == 201
    for sort in ("id", "-id", "name", "-price", "updated_at"):
        seen, pages, url = [], 0, f"/v1/items?limit=100&sort={sort}"
        while url:
            response = sized_client.get(url)
            assert response.status_code == 200
            body = orjson.loads(response.data)
            # A page is within the ceiling, unless one item alone passes it.
            assert len(response.data) <= PAGE_BYTES or len(body["items"]) == 1
            seen.extend(item["id"] for item in body["items"])
            pages += 1
            cursor = body["next_cursor"]
            url = f"/v1/items?limit=100&sort={sort}&cursor={cursor}" if cursor else None
        assert sorted(seen) == list(range(1, len(sizes) + 1)), sort  # each once
        assert pages >= 7, sort  # three 20 KB items a page: one page of 48 without the cut


def test_an_item_larger_than_the_ceiling_is_listed_alone(sized_client):
    for size in (500, 3 * PAGE_BYTES, 500):
        sized_client.post("/v1/items", json={"name": "x", "attributes": attributes(size)})
    first = orjson.loads(sized_client.get("/v1/items?limit=100").data)
    assert [item["id"] for item in first["items"]] == [1]
    second = sized_client.get(f"/v1/items?limit=100&cursor={first['next_cursor']}")
    body = orjson.loads(second.data)
    assert [item["id"] for item in body["items"]] == [2]
    assert len(second.data) > PAGE_BYTES
    last = orjson.loads(sized_client.get(f"/v1/items?cursor={body['next_cursor']}").data)
    assert ([item["id"] for item in last["items"]], last["next_cursor"]) == ([3], None)


def test_priming_stops_at_the_cache_bytes_and_skips_items_over_the_entry_cap(clean_db, sql):
    sql.execute(
        "INSERT INTO items (name, attributes) SELECT 'n' || i, %s FROM generate_series(1, 40) i",
        (orjson.dumps(attributes(48_000)).decode(),),
    )
    big = sql.execute(
        "INSERT INTO items (name, attributes) VALUES ('big', %s) RETURNING id",
        (orjson.dumps(attributes(100_000)).decode(),),
    ).fetchone()["id"]
    app = create_app(
        {
            "database_url": clean_db,
            "pool_max_size": 2,
            "cache_prime": 1000,
            "cache_max_bytes": 1024 * 1024,
            "cache_max_entry_bytes": 64 * 1024,
        }
    )
    try:
        cache = services_of(app).cached_items.cache
        wait_until(lambda: len(cache) > 0, 10, "the primed cache")
        # 1 MiB holds 21 of the 48 KB items; the 100 KB one, changed last, is over the cap.
        assert 15 <= len(cache) <= 21
        assert cache.item(big, lambda: "loaded") == ("loaded", "miss")
    finally:
        close_app(app)


def test_every_writer_keeps_the_attributes_length_and_rows_without_it_are_measured(
    sized_client, sql
):
    def stored(item_id: int) -> tuple[int, int]:
        return (
            sql.execute(
                "SELECT attributes_bytes, octet_length(attributes::text) AS length FROM items"
                " WHERE id = %s",
                (item_id,),
            )
            .fetchone()
            .values()
        )

    created = sized_client.post("/v1/items", json={"name": "a", "attributes": attributes(40_000)})
    item_id = created.get_json()["id"]
    sized_client.patch(
        f"/v1/items/{item_id}", json={"attributes": {"extra": "x" * 30_000}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    sql.execute(
        "UPDATE items SET attributes = attributes || '{\"more\": 1}' WHERE id = %s", (item_id,)
    )
    length, actual = stored(item_id)
    assert length == actual > 60_000
    # Rows written before the column existed (NULL) are measured when listed instead.
    sql.execute("ALTER TABLE items DISABLE TRIGGER items_attributes_bytes")
    try:
        sql.execute(
            "INSERT INTO items (name, attributes) SELECT 'legacy', %s FROM generate_series(1, 2)",
            (orjson.dumps(attributes(40_000)).decode(),),
        )
    finally:
        sql.execute("ALTER TABLE items ENABLE TRIGGER items_attributes_bytes")
    assert (
        sql.execute("SELECT count(*) FROM items WHERE attributes_bytes IS NULL").fetchone()["count"]
        == 2
    )
    first = orjson.loads(sized_client.get("/v1/items?q=legacy&limit=100").data)
    assert len(first["items"]) == 1  # the two pass 64 KiB
    second = sized_client.get(f"/v1/items?q=legacy&limit=100&cursor={first['next_cursor']}")
    assert len(orjson.loads(second.data)["items"]) == 1
