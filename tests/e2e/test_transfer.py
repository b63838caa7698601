"""Export and import against a real 2-worker Granian server on real PostgreSQL: many rows, each
once, in bounded worker memory; export slots full refuse the next export while item requests
are served; a bad line near the end or a cut connection stores nothing.

200,000 rows by default: the file takes about two minutes at that size on the shared two-core
machine, and five times the rows would take ten. ITEMSAPI_TEST_TRANSFER_ROWS=1000000 runs it at
issue 30's million (docs/performance.md, "Export and import"); `python -m bench.transfer --rows
1000000` measures the same at that size beside psql."""

from __future__ import annotations

import json
import os
import socket
import time
from http.client import HTTPConnection, HTTPResponse
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest

from tests.e2e.crowd import _children
from tests.helpers import http, item_payload, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS = int(os.environ.get("ITEMSAPI_TEST_TRANSFER_ROWS", "200000"))
IMPORT_TIMEOUT = max(120, ROWS // 2_000)  # seconds; an import's pace is PostgreSQL's indexing
NDJSON = "application/x-ndjson"
# A worker's peak RSS may grow this much during an export of ~80 MB: far less than the body.
EXPORT_GROWTH_BOUND = 40 * 2**20


def fill(database_url: str, rows: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (name, description, price, attributes)"
            " SELECT 'item ' || n, repeat('d', 300), mod(n, 1000) + 0.25,"
            " jsonb_build_object('n', n)"
            " FROM generate_series(1, %s) AS n",
            [rows],
        )


def count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


def peak_rss(pid: int) -> dict[int, int]:
    """VmHWM (the peak resident set of its life so far) of each worker of the server."""
    peaks = {}
    for child in _children(pid):
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks[child] = int(line.split()[1]) * 1024
    return peaks


def open_export(server, path: str = "/v1/items/export") -> tuple[HTTPConnection, HTTPResponse]:
    parts = urlsplit(server.url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {server.bearer()}"})
    return conn, conn.getresponse()


@pytest.fixture
def server(start_server, clean_db):
    return start_server(clean_db, "--workers", "2")


def test_an_export_of_many_rows_sends_each_once_in_bounded_worker_memory(server, clean_db):
    fill(clean_db, ROWS)
    before = peak_rss(server.process.pid)
    started = time.perf_counter()
    conn, response = open_export(server)
    assert response.status == 200
    ids, size, rest = [], 0, b""
    while chunk := response.read(1 << 16):
        size += len(chunk)
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        ids += [orjson.loads(line).get("id") for line in lines]
    conn.close()
    seconds = time.perf_counter() - started
    assert ids[-1] is None  # the end marker, last (its content: the integration tests)
    assert rest == b""
    assert ids[:-1] == list(range(1, ROWS + 1))  # every row, once, in id order
    after = peak_rss(server.process.pid)
    growth = max(after[pid] - before.get(pid, after[pid]) for pid in after)
    print(
        f"\n[export] {ROWS} rows, {size / 2**20:.0f} MiB in {seconds:.2f}s:"
        f" {ROWS / seconds:,.0f} rows/s; worker peak RSS {max(after.values()) / 2**20:.0f} MiB"
        f" (grew {growth / 2**20:.1f} MiB)"
    )
    assert size > 2 * EXPORT_GROWTH_BOUND
    assert growth < EXPORT_GROWTH_BOUND


def test_export_slots_full_refuse_the_next_export_while_item_requests_are_served(
    start_server, clean_db
):
    fill(clean_db, ROWS)  # far more than socket buffers hold: an unread export stays open
    server = start_server(clean_db, "--workers", "2", ITEMSAPI_EXPORT_SLOTS="1")
    held, refused = [], []
    for _ in range(40):  # until each worker holds its one export and one more was refused
        conn, response = open_export(server)
        if response.status == 200:
            held.append(conn)  # its body left unread: the export holds its slot
        else:
            refused.append((response.status, response.getheader("Retry-After"), response.read()))
            conn.close()
        if len(held) == 2 and refused:
            break
    assert len(held) == 2
    status, retry_after, body = refused[0]
    assert status == 503
    assert int(retry_after) >= 1
    assert json.loads(body)["type"] == "urn:itemsapi:problem:overloaded"
    for n in range(20):  # item requests keep being served meanwhile, on both workers
        assert http("GET", f"{server.url}/v1/items/{n + 1}").status == 200
        assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
        assert http("GET", f"{server.url}/v1/items?limit=5").status == 200
    for conn in held:
        conn.close()
    # A client gone mid-export gives its slot back: exports are taken again on both workers.
    wait_until(lambda: _export_answers(server), 10, "an export after the held ones closed")


def _export_answers(server) -> bool:
    conn, response = open_export(server, "/v1/items/export?max_price=0.5")
    try:
        return response.status == 200 and b'"complete":true' in response.read()
    finally:
        conn.close()


def _ndjson(rows: int, bad_line: int | None = None) -> bytes:
    lines = [orjson.dumps(item_payload(name=f"n{n}", quantity=n)) for n in range(1, rows + 1)]
    if bad_line is not None:
        lines[bad_line - 1] = orjson.dumps(item_payload(quantity=-1))
    return b"\n".join(lines) + b"\n"


def import_body(server, body: bytes):
    return http(
        "POST", f"{server.url}/v1/items/import", body, {"Content-Type": NDJSON},
        timeout=IMPORT_TIMEOUT,
    )  # fmt: skip


def test_an_import_of_many_rows_stores_each_once(server, clean_db):
    body = _ndjson(ROWS)
    started = time.perf_counter()
    response = import_body(server, body)
    seconds = time.perf_counter() - started
    assert response.status == 200, response.body
    assert response.json() == {"imported": ROWS}
    print(f"\n[import] {ROWS} rows in {seconds:.2f}s: {ROWS / seconds:,.0f} rows/s")
    with psycopg.connect(clean_db) as conn:
        quantities = conn.execute("SELECT array_agg(quantity ORDER BY id) FROM items").fetchone()
    assert quantities[0] == list(range(1, ROWS + 1))


def test_an_import_with_a_bad_line_near_the_end_stores_nothing(server, clean_db):
    body = _ndjson(ROWS, bad_line=ROWS - 1)
    response = import_body(server, body)
    assert response.status == 422
    assert response.json()["errors"] == [
        {"field": "quantity", "message": "Input should be greater than or equal to 0",
         "line": ROWS - 1}
    ]  # fmt: skip
    assert count(clean_db) == 0


def test_a_connection_cut_mid_import_stores_nothing(server, clean_db):
    body = _ndjson(50_000)
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    head = (
        f"POST /v1/items/import HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {server.bearer()}\r\nContent-Type: {NDJSON}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[: len(body) // 2])  # half the rows, and then gone
    time.sleep(0.5)
    sock.close()
    # Every import slot is free again (the one cut gave its slot back): a whole one goes in.
    small = _ndjson(3)
    wait_until(
        lambda: http(
            "POST", f"{server.url}/v1/items/import", small, {"Content-Type": NDJSON}
        ).status == 200,
        10, "an import after the cut one",
    )  # fmt: skip
    assert count(clean_db) == 3  # of the cut one, nothing
