"""Issue 28's finding against a real 2-worker server: items with about 1 MiB of attributes, read
again and again, listed 100 a page, and a worker killed and replaced (which primes its cache).
Each worker's memory stays within a bound derived from the settings, where before the cache
kept every item (bounded only by 10,000 entries) and a page of 100 was built whole."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_cache import listening_everywhere
from tests.helpers import http, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIB = 1024 * 1024
ITEMS = 100  # about 100 MiB of JSON: 25 times what the cache may hold
CACHE_BYTES = 4 * MIB
RESPONSE_BYTES = 2 * MIB
CLIENTS = 4
# glibc gives threads up to 8 malloc arenas per core, each keeping what its requests freed:
# pinned, so that the bound does not depend on the machine (docs/operations.md, "Memory").
ARENAS = 16
# Per worker, over its RSS once started: the cache (items and pages, 1.1 x its bytes of JSON,
# and as much again for the objects around the JSON and what the allocator keeps of evicted
# entries), and in each arena what one request at its peak holds, about four times the largest
# body (the database's result, the rows, the JSON, the socket's copy). docs/operations.md,
# "Memory", gives the same formula for the defaults.
BOUND = 2 * CACHE_BYTES * 1.1 + ARENAS * 4 * max(RESPONSE_BYTES, MIB)
ATTRIBUTES = (
    "SELECT jsonb_object_agg('k' || k, repeat(md5(i::text || k), 31))"
    " FROM generate_series(1, 1000) AS k"
)


def workers(server) -> list[int]:
    main = server.process.pid
    return [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def walk(base: str) -> int:
    pages, path = 0, "/v1/items?limit=100"
    while path:
        response = http("GET", base + path, timeout=60)
        assert response.status == 200
        assert len(response.body) <= RESPONSE_BYTES + MIB  # one 1 MiB item may pass it alone
        cursor = response.json()["next_cursor"]
        path = f"/v1/items?limit=100&cursor={cursor}" if cursor else None
        pages += 1
    return pages


def test_each_workers_memory_stays_bounded_under_one_mib_items(start_server, clean_db, sql):
    server = start_server(
        clean_db, "--workers", "2",
        ITEMSAPI_CACHE_MAX_BYTES=str(CACHE_BYTES),
        ITEMSAPI_CACHE_MAX_ENTRY_BYTES=str(2 * MIB),  # 1 MiB items are kept, up to the bound
        ITEMSAPI_MAX_RESPONSE_BYTES=str(RESPONSE_BYTES),
        ITEMSAPI_CACHE_PRIME="10000",
        MALLOC_ARENA_MAX=str(ARENAS),
    )  # fmt: skip
    base = server.url
    wait_until(lambda: listening_everywhere(base), 10, "both listeners")
    started = max(rss(pid) for pid in workers(server))
    sql.execute(
        f"INSERT INTO items (name, attributes) SELECT 'big ' || i, ({ATTRIBUTES})"
        " FROM generate_series(1, %s) AS i",
        (ITEMS,),
    )
    seen: dict[str, int] = {}

    def measure(moment: str) -> None:
        for pid in workers(server):
            seen[f"{moment}, worker {pid}"] = rss(pid) - started

    def read(n: int) -> None:
        assert http("GET", f"{base}/v1/items/{n % ITEMS + 1}", timeout=60).status == 200

    with ThreadPoolExecutor(CLIENTS) as clients:
        list(clients.map(read, range(3 * ITEMS)))
    measure("3 reads of each item")
    with ThreadPoolExecutor(CLIENTS) as clients:
        pages = list(clients.map(lambda _: walk(base), range(3)))
    assert min(pages) >= ITEMS // 2  # cut to 2 MiB: one 1 MiB item a page, not 100
    measure("3 walks of the list")
    killed = workers(server)[0]
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: len(set(workers(server)) - {killed}) == 2, 30, "a new worker")
    wait_until(lambda: listening_everywhere(base), 10, "the new worker's listener")
    time.sleep(3)  # priming: one query, then the rows stored
    measure("the replacement, primed")
    print({moment: f"{grown / MIB:.0f} MiB" for moment, grown in seen.items()})
    assert all(grown <= BOUND for grown in seen.values()), (started, seen)
