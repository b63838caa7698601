"""`itemsapi export` and `itemsapi import` on the test database: files in and out, the same
end marker as the endpoint, all or nothing, and the read caches told of an import."""

from __future__ import annotations

import orjson

from itemsapi.app import services_of
from itemsapi.cli import main
from tests.helpers import create_item, item_payload, wait_until


def test_import_then_export_round_trips_the_items_through_files(
    runner, clean_db, monkeypatch, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    source = tmp_path / "in.ndjson"
    source.write_bytes(
        b"".join(orjson.dumps(item_payload(name=f"n{n}")) + b"\n" for n in range(50))
    )
    imported = runner.invoke(main, ["import", str(source)])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout == "imported 50 items\n"
    out = tmp_path / "out.csv"
    exported = runner.invoke(main, ["export", "--format", "csv", "--sort", "-name", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    records = out.read_text().splitlines()
    assert records[0].startswith("id,name,")
    assert records[1].startswith("10,n9,")  # n0 is item 1
    assert records[-1] == "#export complete rows=50"


def test_export_to_stdout_takes_the_lists_filters(runner, clean_db, monkeypatch, client):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    for name in ("apple tart", "pear", "grape tart"):
        create_item(client, name=name)
    result = runner.invoke(main, ["export", "--q", "tart"])
    assert result.exit_code == 0, result.output
    *rows, marker = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [row["name"] for row in rows] == ["apple tart", "grape tart"]
    assert marker == {"export": {"complete": True, "rows": 2}}
    refused = runner.invoke(main, ["export", "--sort", "colour"])
    assert refused.exit_code == 2
    assert "sort" in refused.output


def test_an_import_with_a_bad_line_stores_nothing_and_lists_it(runner, clean_db, monkeypatch, sql):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    body = orjson.dumps(item_payload()) + b"\n" + orjson.dumps(item_payload(price=-2)) + b"\n"
    result = runner.invoke(main, ["import"], input=body)
    assert result.exit_code == 1
    assert "line 2: price: " in result.stderr
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0


def test_an_import_makes_a_running_servers_cache_drop_what_it_held(
    app, client, runner, clean_db, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    create_item(client, name="before")
    assert len(client.get("/v1/items").get_json()["items"]) == 1  # now cached
    assert client.get("/v1/items").headers["X-Cache"] == "hit"
    result = runner.invoke(main, ["import"], input=orjson.dumps(item_payload()) + b"\n")
    assert result.exit_code == 0, result.output
    wait_until(lambda: len(client.get("/v1/items").get_json()["items"]) == 2, 5, "the new item")
