"""A migration applied while the API serves writes: nothing fails, nothing acknowledged is lost.

The migrations are the expand/contract kind docs/operations.md describes: a nullable column, an
index built concurrently, a batched backfill. Loopback only, bounded in count."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from itemsapi.db import migrations
from tests.helpers import http, item_payload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WRITERS = 4
ITEMS_PER_WRITER = 20
PATCHES_PER_ITEM = 5

# Numbered far above the shipped migrations, which the database already has.
EXPAND = {
    "9001_add_note.sql": (
        "SET LOCAL lock_timeout = '5s';\nALTER TABLE items ADD COLUMN note text;\n"
    ),
    "9002_note_index.sql": (
        "-- itemsapi: no-transaction\nCREATE INDEX CONCURRENTLY items_note_idx ON items (note);\n"
    ),
    "9003_backfill_note.sql": (
        "UPDATE items SET note = 'backfilled' WHERE id IN"
        " (SELECT id FROM items WHERE note IS NULL ORDER BY id LIMIT 1000);\n"
    ),
}


def test_migrations_under_write_load_fail_no_request_and_lose_no_write(
    empty_database, start_server, tmp_path: Path
):
    migrations.migrate(empty_database)
    server = start_server(empty_database, "--workers", "2")
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in EXPAND.items():
        (folder / name).write_text(text)

    failures: list[str] = []
    acknowledged: dict[int, tuple[int, int]] = {}  # id -> (version, quantity) last answered
    lock = threading.Lock()
    started = threading.Barrier(WRITERS + 1)

    def write(writer: int) -> None:
        started.wait()
        for n in range(ITEMS_PER_WRITER):
            created = http("POST", f"{server.url}/v1/items", item_payload(name=f"w{writer}-{n}"))
            if created.status != 201:
                failures.append(f"POST {created.status} {created.body[:200]!r}")
                continue
            item = created.json()
            for quantity in range(1, PATCHES_PER_ITEM + 1):
                patched = http(
                    "PATCH", f"{server.url}/v1/items/{item['id']}", {"quantity": quantity},
                    headers={"Content-Type": "application/merge-patch+json"},
                )  # fmt: skip
                if patched.status != 200:
                    failures.append(f"PATCH {patched.status} {patched.body[:200]!r}")
                    continue
                item = patched.json()
            with lock:
                acknowledged[item["id"]] = (item["version"], item["quantity"])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    started.wait()
    applied = migrations.migrate(empty_database, folder)  # while the writers write
    for thread in threads:
        thread.join(120)

    assert [m.path.name for m in applied if m.version] == sorted(EXPAND)
    assert failures == []
    assert len(acknowledged) == WRITERS * ITEMS_PER_WRITER
    with psycopg.connect(empty_database) as conn:
        stored = {
            item_id: (version, quantity)
            for item_id, version, quantity in conn.execute(
                "SELECT id, version, quantity FROM items"
            )
        }
        assert conn.execute("SELECT to_regclass('items_note_idx')").fetchone()[0] is not None
    assert stored == acknowledged
    assert http("GET", f"{server.url}/ready").status == 200
