# ruff: noqa: RUF001 - Cyrillic and CJK text on purpose: searches in non-Latin scripts
"""GET /v1/items's filters, search, totals and sparse fields against real PostgreSQL.

The oracle test draws random data and random parameters, walks every page of each list the API
answers and compares it, in order, with a plain SQL query written independently of the API's
(no stored vector, no index expressions): the rows, their order, each exactly once, and the
exact count."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from psycopg.types.json import Jsonb

from itemsapi.app import services_of
from itemsapi.db import list_query
from tests.helpers import wait_until
from tests.integration.test_list import walk

CASES = 500
ROWS = 240

WORDS = ["apple", "pear", "fig", "red", "green", "juicy", "sweet", "груша", "яблоко", "梨", "äpfel"]
COLORS = ["red", "green", "blue"]
START = datetime(2026, 1, 1, tzinfo=UTC)
# The vector the trigger keeps (sql/migrations/0009), written out again for the oracle.
VECTOR = (
    "setweight(to_tsvector('simple', name), 'A')"
    " || setweight(to_tsvector('simple', description), 'B')"
)
QUERY = "websearch_to_tsquery('simple', %(search)s)"


def moment(rng: random.Random) -> datetime:
    return START + timedelta(days=rng.randrange(300), microseconds=rng.randrange(10**6))


@pytest.fixture
def random_items(sql) -> list[int]:
    rng = random.Random(31)  # noqa: S311 - reproducible data, no secret
    for _ in range(ROWS):
        attributes: dict[str, Any] = {}
        if rng.random() < 0.7:
            attributes["color"] = rng.choice(COLORS)
        if rng.random() < 0.5:
            attributes["size"] = rng.choice([1, 2, "2", True])
        created = moment(rng)
        sql.execute(
            "INSERT INTO items (name, description, price, quantity, attributes, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                " ".join(rng.sample(WORDS, rng.randint(1, 3))),
                " ".join(rng.sample(WORDS, rng.randint(0, 4))),
                None if rng.random() < 0.2 else Decimal(rng.randrange(0, 2000)) / 100,
                rng.randrange(0, 50),
                Jsonb(attributes),
                created,
                created + timedelta(days=rng.randrange(30)),
            ),
        )
    sql.execute("ANALYZE items")
    return [row["id"] for row in sql.execute("SELECT id FROM items")]


KINDS = ["ids", "price", "has_price", "quantity", "created", "updated", "attr", "attributes",
         "search", "q"]  # fmt: skip


# Each case of the cut-short walk's test has a time range, and maybe other filters.
TIME_KINDS = ["created", "updated"]


def random_parameters(
    rng: random.Random, ids: list[int], required: list[str] | None = None
) -> tuple[dict[str, str], str, dict]:
    """(query string parameters, oracle WHERE, oracle parameters); one of `required` always."""
    params: dict[str, str] = {}
    where, values = ["true"], {}
    kinds = rng.sample(KINDS, rng.randint(0, 3))
    if required and not set(required) & set(kinds):
        kinds.append(rng.choice(required))
    if "attributes" in kinds and "attr" in kinds:  # one key asked twice is refused (400)
        kinds.remove("attr")
    for kind in kinds:
        if kind == "ids":
            chosen = [*rng.sample(ids, rng.randint(1, 30)), 10**9]  # one that does not exist
            params["ids"] = ",".join(map(str, chosen))
            where.append("id = ANY(%(ids)s)")
            values["ids"] = chosen
        elif kind == "price":
            low = Decimal(rng.randrange(0, 1500)) / 100
            params["min_price"] = str(low)
            params["max_price"] = str(low + 5)
            where.append("price >= %(low)s AND price <= %(high)s")
            values |= {"low": low, "high": low + 5}
        elif kind == "has_price":
            has = rng.random() < 0.5
            params["has_price"] = "true" if has else "false"
            where.append("price IS NOT NULL" if has else "price IS NULL")
        elif kind == "quantity":
            low = rng.randrange(0, 50)
            params |= {"min_quantity": str(low), "max_quantity": str(low + rng.randrange(10))}
            where.append("quantity BETWEEN %(qlow)s AND %(qhigh)s")
            values |= {"qlow": low, "qhigh": int(params["max_quantity"])}
        elif kind in ("created", "updated"):
            low = moment(rng)
            high = low + timedelta(days=rng.randrange(1, 120))
            params[f"{kind}_from"] = low.isoformat().replace("+00:00", "Z")
            params[f"{kind}_before"] = high.isoformat()
            where.append(f"{kind}_at >= %({kind}_low)s AND {kind}_at < %({kind}_high)s")
            values |= {f"{kind}_low": low, f"{kind}_high": high}
        elif kind == "attr":
            key, value = rng.choice([("color", rng.choice(COLORS)), ("size", 2), ("size", "2")])
            params[f"attr.{key}"] = value if key == "color" else orjson.dumps(value).decode()
            where.append("attributes -> %(attr_key)s = %(attr_value)s")
            values |= {"attr_key": key, "attr_value": Jsonb(value)}
        elif kind == "attributes":
            wanted = {"color": rng.choice(COLORS), "size": rng.choice([1, True])}
            params["attributes"] = orjson.dumps(wanted).decode()
            where.append("attributes -> 'color' = %(c)s AND attributes -> 'size' = %(s)s")
            values |= {"c": Jsonb(wanted["color"]), "s": Jsonb(wanted["size"])}
        elif kind == "search":
            first, second = rng.sample(WORDS, 2)
            params["search"] = rng.choice(
                [first, f"{first} or {second}", f"{first} -{second}", f'"{first} {second}"']
            )
            where.append(f"({VECTOR}) @@ {QUERY}")
            values["search"] = params["search"]
        else:
            params["q"] = rng.choice(["app", "PEAR", "гру", "een"])
            where.append("strpos(lower(name), lower(%(q)s)) > 0")
            values["q"] = params["q"]
    return params, " AND ".join(where), values


# The oracle's ORDER BY of each sort, ascending; descending flips each part. A missing price
# sorts below every price.
ORDERS = {
    "id": ["id"],
    "name": ["name", "id"],
    "price": ["price NULLS FIRST", "id"],
    "created_at": ["created_at", "id"],
    "updated_at": ["updated_at", "id"],
    "relevance": [f"ts_rank({VECTOR}, {QUERY})", "id"],
}


def oracle_order(sort: str) -> str:
    parts = ORDERS[sort.lstrip("-")]
    if sort.startswith("-"):
        parts = [
            p.replace(" NULLS FIRST", "") + " DESC" + (" NULLS LAST" if "NULLS" in p else "")
            for p in parts
        ]
    return ", ".join(parts)


def test_every_filter_and_combination_returns_exactly_the_oracles_rows_in_order(
    client, sql, random_items
):
    compare_with_oracle(client, sql, random_items, CASES, seed=1031)


def test_a_time_range_sorted_by_another_key_pages_the_same_when_its_walk_is_cut_short(
    client, sql, random_items, monkeypatch
):
    """ROWS rows fit in one walk of an index (list_query.walk_first_sql), so every page comes
    from its first two steps. With 3 matches read first, walks of 7 entries and ranges of 40
    rows read whole, pages come from each of its four steps."""
    monkeypatch.setattr(list_query, "FEW", 3)
    monkeypatch.setattr(list_query, "WALK", 7)
    monkeypatch.setattr(list_query, "RANGE_READ", 40)
    compare_with_oracle(
        client, sql, random_items, CASES // 2, seed=2031, kinds=TIME_KINDS, sorts=list_query.RISING
    )


def compare_with_oracle(client, sql, ids, cases, *, seed, kinds=None, sorts=tuple(ORDERS)):
    rng = random.Random(seed)  # noqa: S311 - reproducible cases, no secret
    for case in range(cases):
        params, where, values = random_parameters(rng, ids, kinds)
        allowed = [s for s in sorts if s != "relevance" or "search" in params]
        sort = rng.choice(["", "-"]) + rng.choice(allowed)
        params |= {"sort": sort, "limit": str(rng.choice([5, 30, 100]))}
        statement = f"SELECT id FROM items WHERE {where} ORDER BY {oracle_order(sort)}"
        expected = [row["id"] for row in sql.execute(statement, values)]
        seen, _ = walk(client, urlencode(params))
        assert [item["id"] for item in seen] == expected, (case, params)
        if case % 10 == 0:
            counted = client.get(
                f"/v1/items?{urlencode(params)}", headers={"Prefer": "count=exact"}
            )
            assert counted.get_json()["count"] == len(expected), (case, params)


@pytest.fixture
def texts(client) -> dict[str, int]:
    bodies = {
        "pie": {"name": "Apple pie", "description": "baked with green apples"},
        "tart": {"name": "Pear tart", "description": "a pie of pears and apple"},
        "cyrillic": {"name": "Грушевый пирог", "description": "пирог с грушей"},
        "chinese": {"name": "梨 汁", "description": "fresh"},
    }
    return {
        key: client.post("/v1/items", json=body).get_json()["id"] for key, body in bodies.items()
    }


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("apple", ["pie", "tart"]),
        ('"apple pie"', ["pie"]),  # a phrase: the words next to each other, in this order
        ("pie -apple", []),
        ("pie -green", ["tart"]),
        ("tart or пирог", ["tart", "cyrillic"]),
        ("ГРУШЕЙ", ["cyrillic"]),  # simple lower-cases, in any script
        ("梨", ["chinese"]),
    ],
)
def test_search_reads_web_search_syntax(client, texts, search, expected):
    body = client.get("/v1/items", query_string={"search": search}).get_json()
    assert [item["id"] for item in body["items"]] == [texts[key] for key in expected]


def test_relevance_puts_a_name_match_before_a_description_match(client, texts):
    query = {"search": "pie", "sort": "-relevance", "limit": 1}
    first = client.get("/v1/items", query_string=query).get_json()
    assert [item["name"] for item in first["items"]] == ["Apple pie"]
    second = client.get("/v1/items", query_string={**query, "cursor": first["next_cursor"]})
    assert [item["name"] for item in second.get_json()["items"]] == ["Pear tart"]


@pytest.mark.parametrize("search", ["-apple", "-apple !", "!!!", "x" * 201])
def test_a_search_without_a_word_to_find_is_refused(client, search):
    response = client.get("/v1/items", query_string={"search": search})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "search"


def test_counts_are_given_only_when_asked_and_say_which(client, texts, sql):
    sql.execute("ANALYZE items")
    plain = client.get("/v1/items?limit=1")
    assert "count" not in plain.get_json()
    assert "Preference-Applied" not in plain.headers
    for prefer in ("exact", "estimated"):  # estimated is exact on a small table
        answer = client.get("/v1/items?limit=1", headers={"Prefer": f"count={prefer}"})
        assert answer.get_json()["count"] == 4
        assert answer.headers["Preference-Applied"] == f"count={prefer}"
    planned = client.get("/v1/items?search=apple", headers={"Prefer": "count=planned"})
    assert isinstance(planned.get_json()["count"], int)
    assert planned.headers["Preference-Applied"] == "count=planned"
    unknown = client.get("/v1/items", headers={"Prefer": "count=roughly"})
    assert "count" not in unknown.get_json()  # a preference not understood is ignored


def test_sparse_fields_on_the_list_and_an_item_keep_the_etag(client, texts):
    listed = client.get("/v1/items?fields=name,id&limit=2").get_json()
    assert listed["items"] == [{"id": 1, "name": "Apple pie"}, {"id": 2, "name": "Pear tart"}]
    whole = client.get("/v1/items/1")
    sparse = client.get("/v1/items/1?fields=price")
    assert sparse.get_json() == {"price": None}
    assert sparse.headers["ETag"] == whole.headers["ETag"]
    tag = whole.headers["ETag"]
    assert client.get("/v1/items/1?fields=name", headers={"If-None-Match": tag}).status_code == 304
    for url in ("/v1/items?fields=name,colour", "/v1/items/1?fields=", "/v1/items/1?fields=id,"):
        bad = client.get(url)
        assert bad.status_code == 400, url
        assert bad.get_json()["errors"][0]["field"] == "fields"


def test_a_cursor_works_only_with_the_filters_it_was_made_for(client, texts):
    first = client.get("/v1/items?search=apple&limit=1").get_json()
    cursor = first["next_cursor"]
    assert client.get(f"/v1/items?search=apple&limit=5&cursor={cursor}").status_code == 200
    for other in ("search=pie", "", "search=apple&min_price=1", "sort=-id&search=apple"):
        response = client.get(f"/v1/items?{other}&cursor={cursor}")
        assert response.status_code == 400, other
        assert response.get_json()["errors"][0]["field"] == "cursor"
    unfiltered = client.get("/v1/items?limit=1").get_json()["next_cursor"]
    assert client.get(f"/v1/items?q=apple&cursor={unfiltered}").status_code == 400


def test_every_bad_parameter_is_reported_at_once(client):
    query = (
        "min_quantity=-1&created_from=yesterday&ids=1,x&attr.size=[1]&sort=relevance&has_price=1"
    )
    body = client.get(f"/v1/items?{query}").get_json()
    fields = sorted(error["field"] for error in body["errors"])
    assert fields == ["attr.size", "created_from", "has_price", "ids", "min_quantity", "sort"]


def test_prefer_return_minimal_answers_writes_without_a_body(client):
    minimal = {"Prefer": "return=minimal"}
    created = client.post("/v1/items", json={"name": "quiet"}, headers=minimal)
    assert (created.status_code, created.data) == (201, b"")
    assert created.headers["Location"] == "/v1/items/1"
    assert created.headers["ETag"] == '"1-1"'
    assert created.headers["Preference-Applied"] == "return=minimal"
    replaced = client.put("/v1/items/1", json={"name": "still quiet"}, headers=minimal)
    assert (replaced.status_code, replaced.data, replaced.headers["ETag"]) == (204, b"", '"1-2"')
    patched = client.patch(
        "/v1/items/1", json={"quantity": 2},
        headers={**minimal, "Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert (patched.status_code, patched.data, patched.headers["ETag"]) == (204, b"", '"1-3"')
    assert client.get("/v1/items/1").get_json()["quantity"] == 2


def test_filtered_and_searched_pages_are_cached_and_dropped_by_any_write(app, client, texts):
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    url = "/v1/items?search=apple&attr.kind=fruit"
    assert client.get(url).get_json()["items"] == []
    assert client.get(url).headers["X-Cache"] == "hit"
    client.patch(
        f"/v1/items/{texts['pie']}", json={"attributes": {"kind": "fruit"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    after = client.get(url)
    assert after.headers["X-Cache"] == "miss"
    assert [item["id"] for item in after.get_json()["items"]] == [texts["pie"]]
