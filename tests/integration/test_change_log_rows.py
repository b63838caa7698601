"""The change log's per-row triggers (sql/migrations/0011) against real PostgreSQL: an item's
latest position kept on the item and never taken from a writer, an id deleted and inserted again
in the order it happened, and the changes recorded before 0011 read as they were."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers import create_item


def changes_after(client, cursor: str) -> list[dict]:
    return client.get("/v1/changes", query_string={"after": cursor}).get_json()["changes"]


def test_an_id_inserted_again_by_an_older_transaction_comes_after_its_delete(client, clean_db, sql):
    """The older transaction takes its id first (writing another item), and inserts X again
    after a newer one deleted it: ordered by transaction id alone, the insert would come first
    and a follower would end without X."""
    x, other = create_item(client, name="x"), create_item(client, name="other")
    cursor = client.get("/v1/changes").get_json()["next_cursor"]
    with psycopg.connect(clean_db) as older:
        older.execute("UPDATE items SET name = 'older', version = version + 1 WHERE id = %s",
                      (other["id"],))  # fmt: skip
        assert client.delete(f"/v1/items/{x['id']}").status_code == 204
        older.execute(
            "INSERT INTO items (id, name, description, quantity, attributes) OVERRIDING SYSTEM"
            " VALUE VALUES (%s, 'again', '', 1, '{}')",
            (x["id"],),
        )
    of_x = [(c["operation"], c["item"].get("name")) for c in changes_after(client, cursor)
            if c["id"] == x["id"]]  # fmt: skip
    assert of_x == [("delete", None), ("insert", "again")]


def test_a_position_a_writer_sets_on_the_item_is_replaced_and_an_insert_may_not_set_one(
    client, sql
):
    item = create_item(client)
    first = changes_after(client, "0-0")[-1]["cursor"]
    sql.execute("UPDATE items SET change_tx = '1', name = 'by hand' WHERE id = %s", (item["id"],))
    stored = sql.execute(
        "SELECT change_tx::text::bigint AS tx FROM items WHERE id = %s", (item["id"],)
    ).fetchone()
    assert stored["tx"] >= int(first.split("-")[0])  # raised to this write's, not '1'
    changes = changes_after(client, first)
    assert [(c["id"], c["item"]["name"]) for c in changes] == [(item["id"], "by hand")]
    with pytest.raises(psycopg.errors.RaiseException, match="kept by the change log"):
        sql.execute(
            "INSERT INTO items (name, description, quantity, attributes, change_tx)"
            " VALUES ('n', '', 1, '{}', '5')"
        )


def test_changes_recorded_before_0011_are_read_from_their_stored_item(client, sql):
    """0010's triggers stored the item as jsonb; those changes keep being served from it."""
    item = create_item(client, name="now")
    sql.execute(
        "INSERT INTO item_changes (tx, item_id, version, operation, changed_by, item)"
        " VALUES (pg_current_xact_id(), %s, 7, 'update', 'before 0011',"
        " jsonb_build_object('id', %s::bigint, 'name', 'stored', 'version', 7))",
        (item["id"], item["id"]),
    )
    history = client.get(f"/v1/items/{item['id']}/history").get_json()["versions"]
    assert [(v["changed_by"], v["item"]["name"]) for v in history][:1] == [
        ("before 0011", "stored")
    ]
    assert history[-1]["item"] | {"etag": None} == {**item, "etag": None} | history[-1]["item"]


def test_a_bulk_insert_into_an_emptied_log_finds_each_previous_change_through_the_index(
    clean_db, sql
):
    """One statement inserting `rows` items after the log was emptied and vacuumed (reltuples
    0): each row's lookup of its previous change must stay a probe of item_changes_item_idx. A
    plan kept from the first firing, when the log was empty, scanned the whole log per row:
    about rows² / 2 rows read."""
    rows = 2000
    sql.execute("VACUUM ANALYZE item_changes")  # clean_db emptied it
    assert sql.execute(
        "SELECT reltuples FROM pg_class WHERE relname = 'item_changes'"
    ).fetchone()["reltuples"] == 0  # fmt: skip
    with psycopg.connect(clean_db) as writer:
        writer.execute(
            "INSERT INTO items (name, description, quantity, attributes)"
            " SELECT 'n' || n, '', 1, '{}' FROM generate_series(1, %s) AS n",
            (rows,),
        )
        seq_read, probes = writer.execute(
            "SELECT seq_tup_read, idx_scan FROM pg_stat_xact_user_tables"
            " WHERE relname = 'item_changes'"
        ).fetchone()
    assert seq_read < rows, f"{seq_read:,} log rows read by sequential scans"
    assert probes >= rows  # one probe of the index per inserted row
