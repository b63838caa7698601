"""GET /v1/items/export and POST /v1/items/import through Flask's test client, on the real test
database: formats, filters and sort orders, end markers, scopes, slots, and all-or-nothing
imports with every bad line named."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import datetime

import orjson
import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from itemsapi.app import close_app, create_app
from itemsapi.auth.scopes import SCOPES
from itemsapi.db import list_query, statements
from itemsapi.db.list_query import ListQuery
from itemsapi.web import admission
from tests.helpers import create_item, create_key, item_payload

NDJSON = "application/x-ndjson"


def ndjson(*items: dict) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def lines(body: bytes) -> list[dict]:
    return [orjson.loads(line) for line in body.splitlines()]


def post_import(client, body: bytes, **headers: str):
    return client.post("/v1/items/import", data=body, content_type=NDJSON, headers=headers)


def test_export_sends_every_item_as_the_api_shows_it_then_a_complete_marker(client):
    made = [create_item(client, name=f"item {n}", price=n + 0.5) for n in range(3)]
    response = client.get("/v1/items/export", headers={"Accept": NDJSON})
    assert response.status_code == 200
    assert response.mimetype == NDJSON
    *rows, marker = lines(response.data)
    assert marker == {"export": {"complete": True, "rows": 3}}
    for sent, item in zip(rows, made, strict=True):
        shown = client.get(f"/v1/items/{item['id']}").get_json()
        assert {k: v for k, v in sent.items() if not k.endswith("_at")} == {
            k: v for k, v in shown.items() if not k.endswith("_at")
        }
        for moment in ("created_at", "updated_at"):  # the same instant, RFC 3339 either way
            assert datetime.fromisoformat(sent[moment]) == datetime.fromisoformat(shown[moment])


def test_an_ndjson_line_is_the_item_as_postgresql_writes_it_in_json_byte_for_byte(client):
    name = 'tab\t"q" back\\slash é\u0001 ☃'
    attributes = {"k": "a\nb", "z": [1.5, None]}
    item = create_item(client, name=name, description="", price=1000000, quantity=0,
                       attributes=attributes)  # fmt: skip
    line = client.get("/v1/items/export").data.split(b"\n")[0].decode()
    fields, moments = line.split(',"created_at":', 1)
    assert fields == (
        f'{{"id":{item["id"]},"name":"tab\\t\\"q\\" back\\\\slash é\\u0001 ☃","description":"",'
        '"price":1000000,"quantity":0,"attributes":{"k": "a\\nb", "z": [1.5, null]},"version":1'
    )
    stamp = r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00"'
    assert re.fullmatch(f'{stamp},"updated_at":{stamp}}}', moments)


def test_ndjson_lines_are_row_to_json_of_the_lists_rows_for_every_kind_of_value(client, sql):
    # Rows only SQL can make too: NaN (numeric allows it), odd instants, every escape.
    sql.execute(
        r"""INSERT INTO items (name, description, price, quantity, attributes, version,
                               created_at, updated_at) VALUES
        (E'\\ " \x01\x1f \u2028 é ☃ \t\r\n', E'x\by', NULL, 0, '{}', 1,
         '2026-01-01 00:00:00+00', 'infinity'),
        ('p', '', 'NaN', 2147483647, '{"a": [1, 2.50, null, true, {"b": "\\u00e9 \\n"}]}',
         9223372036854775807, '1999-12-31 23:59:59.5+00', '2026-06-01 12:00:00.000001+02'),
        ('q', 'd', 0.01, 1, '{"k": 1e3}', 2, now(), now()),
        ('r', 'd', 99999999.99, 1, '{}', 3, now(), now()),
        ('s', 'd', 1000000, 1, '{}', 4, now(), now())"""
    )
    query = statements.text(list_query.list_sql, *list_query.list_shape(ListQuery()))
    with sql.transaction():
        sql.execute("SET LOCAL TimeZone = 'UTC'")
        expected = sql.execute(
            f"SELECT row_to_json(r)::text AS line FROM ({query}) AS r", {"limit": None}
        ).fetchall()
    *sent, _ = client.get("/v1/items/export").data.decode().split("\n")[:-1]
    assert sent == [row["line"] for row in expected]
    assert len(sent) == 5


def test_export_applies_the_lists_filters_and_sort_order(client, monkeypatch):
    for name, price in [("apple pie", 3), ("banana pie", 1), ("avocado pie", 2), ("cherry", 5),
                        ("cherry pie", 5)]:  # fmt: skip
        create_item(client, name=name, price=price)
    response = client.get("/v1/items/export?q=pie&sort=-price&max_price=4")
    *rows, marker = lines(response.data)
    assert [row["name"] for row in rows] == ["apple pie", "avocado pie", "banana pie"]
    assert marker["export"]["rows"] == 3
    # A time range sorted by id: a list's page takes bounded steps (list_query.walk_first_sql),
    # an export the one plan that reads every row, however short the steps.
    monkeypatch.setattr(list_query, "FEW", 2)
    monkeypatch.setattr(list_query, "WALK", 3)
    response = client.get("/v1/items/export?created_from=2000-01-01T00:00:00Z&sort=-id")
    *rows, marker = lines(response.data)
    assert [row["name"] for row in rows] == ["cherry pie", "cherry", "avocado pie",
                                             "banana pie", "apple pie"]  # fmt: skip


def test_export_as_csv_has_a_header_every_row_and_a_marker_record(client):
    create_item(client, name='a "quoted", name\nover two lines', attributes={"k": [1, 2]})
    create_item(client, name="plain", price=None)
    response = client.get("/v1/items/export", headers={"Accept": "text/csv"})
    assert response.mimetype == "text/csv"
    records = list(csv.reader(io.StringIO(response.data.decode())))
    assert records[0][:3] == ["id", "name", "description"]
    assert records[1][1] == 'a "quoted", name\nover two lines'
    assert orjson.loads(records[1][5]) == {"k": [1, 2]}
    assert records[2][3] == ""  # no price
    assert records[-1] == ["#export complete rows=2"]


@pytest.fixture
def other_app(clean_db: str) -> Iterator[Callable[..., FlaskClient]]:
    """other_app(**settings): a test client (full-scope key) of an app with those settings."""
    apps: list[Flask] = []

    def make(**settings: object) -> FlaskClient:
        apps.append(create_app({"database_url": clean_db, "cache_prime": 0, **settings}))
        client = apps[-1].test_client()
        with psycopg.connect(clean_db, autocommit=True) as conn:
            token = create_key(conn, "other", list(SCOPES))[1]
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    yield make
    for app in apps:
        close_app(app)


def test_an_export_cut_off_by_its_time_limit_says_so_and_resumes_with_its_cursor(client, other_app):
    with psycopg.connect(client.application.extensions["itemsapi"].settings.database_url) as conn:
        conn.execute(
            "INSERT INTO items (name, description) SELECT 'item ' || to_char(n, 'FM0000'),"
            " repeat('x', 100) FROM generate_series(0, 1999) AS n"
        )
    hurried = other_app(export_time_limit=0.000001)
    *rows, marker = lines(hurried.get("/v1/items/export?sort=name").data)
    assert marker["export"]["complete"] is False
    assert marker["export"]["reason"] == "time-limit"
    assert marker["export"]["rows"] == len(rows) < 2000
    cursor = marker["export"]["next_cursor"]
    *rest, end = lines(client.get(f"/v1/items/export?sort=name&cursor={cursor}").data)
    assert end["export"]["complete"] is True
    assert [r["name"] for r in rows + rest] == [f"item {n:04d}" for n in range(2000)]


def test_export_refuses_a_limit_and_a_media_type_it_cannot_send(client):
    response = client.get("/v1/items/export?limit=5")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "limit"
    assert client.get("/v1/items/export", headers={"Accept": "application/json"}).status_code == 406


def test_export_needs_the_read_scope_and_import_the_write_scope(app, clean_db):
    with psycopg.connect(clean_db, autocommit=True) as conn:
        reader = create_key(conn, "reader", ["read"])[1]
    client = app.test_client()
    assert client.get("/v1/items/export").status_code == 401
    auth = {"Authorization": f"Bearer {reader}"}
    assert client.get("/v1/items/export", headers=auth).status_code == 200
    response = post_import(client, ndjson(item_payload()), **auth)
    assert response.status_code == 403


def test_import_stores_every_line_and_the_cache_drops_what_it_held(client, sql):
    create_item(client, name="before")
    assert client.get("/v1/items?limit=100").get_json()["items"][0]["name"] == "before"
    response = post_import(client, ndjson(*(item_payload(name=f"n{n}") for n in range(500))))
    assert response.status_code == 200
    assert response.get_json() == {"imported": 500}
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 501
    page = client.get("/v1/items?limit=100").get_json()["items"]  # the cached page was dropped
    assert [item["name"] for item in page[1:3]] == ["n0", "n1"]


def test_a_bad_line_near_the_end_stores_nothing_and_is_named_with_its_field(client, sql):
    items = [item_payload(name=f"n{n}") for n in range(1000)]
    items[998] = item_payload(price="12")
    body = ndjson(*items[:999]) + b"{not json\n" + b"\n"
    response = post_import(client, body)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "urn:itemsapi:problem:validation-error"
    assert problem["errors"] == [
        {"field": "price", "message": "must be a number", "line": 999},
        {"field": None, "message": problem["errors"][1]["message"], "line": 1000},
    ]
    assert "not valid JSON" in problem["errors"][1]["message"]
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0


def test_import_applies_the_single_posts_rules_to_each_line(client, sql):
    body = (
        b'{"name": "a", "name": "b"}\n'  # a repeated member, as a POST refuses it
        + ndjson({"name": " "}, {"name": "x", "id": 3}, {"name": "ok:colon", "quantity": 7.0})
    )
    errors = post_import(client, body).get_json()["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(1, None), (2, "name"), (3, "id")]
    assert "twice" in errors[0]["message"]
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0


def test_import_lists_at_most_the_first_hundred_errors(client):
    response = post_import(client, ndjson(*({"price": -1} for _ in range(300))))
    errors = response.get_json()["errors"]
    assert len(errors) == 100
    assert errors[-1]["line"] == 50  # two per line: name missing, price negative


def test_import_refuses_other_media_types_too_large_bodies_and_no_length(client, other_app, sql):
    assert client.post("/v1/items/import", json=item_payload()).status_code == 415
    small = other_app(max_import_bytes=1024)
    response = post_import(small, ndjson(*[item_payload()] * 50))
    assert response.status_code == 413
    assert response.get_json()["type"] == "urn:itemsapi:problem:body-too-large"
    chunked = client.post(
        "/v1/items/import", input_stream=io.BytesIO(ndjson(item_payload())),
        content_type=NDJSON, headers={"Transfer-Encoding": "chunked"},
    )  # fmt: skip
    assert chunked.status_code == 411
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0


def test_transfer_slots_are_taken_at_once_or_refused_and_given_back_once():
    slots = admission.TransferSlots("export", 1)
    release = slots.take()
    with pytest.raises(admission.Overloaded, match="every export slot is taken"):
        slots.take()
    release()
    release()  # a second give-back must not make room for two
    slots.take()
    with pytest.raises(admission.Overloaded):
        slots.take()


def test_other_methods_on_the_transfer_paths_are_405_and_they_have_no_unversioned_copy(client):
    for method, path, allowed in [("put", "export", "GET, HEAD, OPTIONS"),
                                  ("delete", "import", "OPTIONS, POST")]:  # fmt: skip
        response = getattr(client, method)(f"/v1/items/{path}")
        assert response.status_code == 405
        assert response.headers["Allow"] == allowed
    assert client.get("/items/export").status_code == 404
    assert client.get("/v1/items/12").status_code == 404  # ids are still items' paths


def test_options_on_the_transfer_paths_lists_their_own_methods_only(client):
    assert set(client.options("/v1/items/export").headers["Allow"].split(", ")) == {
        "GET", "HEAD", "OPTIONS"
    }  # fmt: skip
    assert set(client.options("/v1/items/import").headers["Allow"].split(", ")) == {
        "POST", "OPTIONS"
    }  # fmt: skip


def test_an_export_gives_its_slot_back_however_its_body_ends(client, other_app):
    for n in range(3):
        create_item(client, name=f"n{n}")
    one_slot = other_app(export_slots=1)
    for _ in range(3):
        with one_slot.head("/v1/items/export") as head:  # a body never read
            assert head.status_code == 200
        with one_slot.get("/v1/items/export", buffered=False) as partly:
            assert next(partly.response)  # the first chunk, then the client goes away
        with one_slot.get("/v1/items/export") as whole:
            assert lines(whole.data)[-1]["export"]["complete"] is True
