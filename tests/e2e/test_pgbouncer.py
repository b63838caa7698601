"""The API behind a real PgBouncer in transaction mode: nothing in the startup packet that the
pooler refuses, no prepared statements, and statement_timeout and TimeZone still in force,
taken from the role on every server connection the pooler opens."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import psycopg
import pytest

from itemsapi.config import Settings
from itemsapi.serve import checks
from tests.e2e.topology import APP_ROLE, STATEMENT_TIMEOUT_MS, PgBouncer, prepare_database
from tests.helpers import Cluster, TableLock, etag_of, free_port, http, item_payload

pytestmark = pytest.mark.slow

# Two workers' pools of 4, and each worker's 2 export and 1 import slots (their connections
# go through the pooler too): 2 x (4 + 3).
POOLER_POOL_SIZE = 14
# What the API needs behind a transaction-mode pooler (docs/operations.md, Running at scale).
BEHIND_POOLER = {
    "ITEMSAPI_PREPARE_THRESHOLD": "none",
    "ITEMSAPI_SESSION_SETTINGS": "server",
    "ITEMSAPI_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
    "ITEMSAPI_POOLER_POOL_SIZE": str(POOLER_POOL_SIZE),
    "ITEMSAPI_WORKERS": "2",
    "ITEMSAPI_POOL_MIN_SIZE": "1",
    "ITEMSAPI_POOL_MAX_SIZE": "4",
}
LOAD_THREADS = 8
LOAD_REQUESTS_PER_THREAD = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("pooled-pg"), free_port()).init()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def pgbouncer(cluster, tmp_path_factory) -> Iterator[PgBouncer]:
    prepare_database(cluster)
    pooler = PgBouncer(
        tmp_path_factory.mktemp("pgbouncer"), cluster, POOLER_POOL_SIZE, ["postgres", APP_ROLE]
    ).start()
    yield pooler
    pooler.stop()


@pytest.fixture
def api(pgbouncer, cluster, start_server):
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("TRUNCATE items RESTART IDENTITY")
    return start_server(pgbouncer.url(APP_ROLE), **BEHIND_POOLER)


def test_startup_options_are_what_pgbouncer_refuses(pgbouncer):
    # Why session_settings "server" exists: the startup packet's options are refused outright.
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(pgbouncer.url(APP_ROLE) + "?options=" + quote("-c TimeZone=UTC"))


def test_crud_conditional_writes_listing_and_probes_through_the_pooler(api):
    for probe in ("live", "ready", "health"):
        assert http("GET", f"{api.url}/{probe}").status == 200, probe

    created = [http("POST", f"{api.url}/v1/items", item_payload(name=f"n{i}")) for i in range(7)]
    assert [r.status for r in created] == [201] * 7
    item = created[0].json()
    # The role's TimeZone (UTC), not the database's New York: timestamps end in Z.
    assert item["created_at"].endswith("Z"), item["created_at"]

    url = f"{api.url}/v1/items/{item['id']}"
    assert http("GET", url).json()["name"] == "n0"
    stale = etag_of(item)
    patched = http("PATCH", url, {"quantity": 9}, headers={"If-Match": stale})
    assert patched.status == 200
    assert patched.json()["version"] == item["version"] + 1
    assert http("PUT", url, item_payload(), headers={"If-Match": stale}).status == 412
    assert http("DELETE", url, headers={"If-Match": stale}).status == 412
    assert http("DELETE", url, headers={"If-Match": etag_of(patched.json())}).status == 204
    assert http("GET", url).status == 404

    seen, cursor = [], None
    for _ in range(5):
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = http("GET", f"{api.url}/v1/items{query}").json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"n{i}" for i in range(1, 7)]

    api.stop()
    log = api.log_path.read_text()
    assert '"level": "ERROR"' not in log, log  # the role's settings match: no start-up error
    assert "connection budget fits the server" in log


def test_a_bounded_load_run_has_no_errors(api, record_property):
    ids = [http("POST", f"{api.url}/v1/items", item_payload()).json()["id"] for _ in range(4)]

    def client(n: int) -> Counter:
        statuses: Counter = Counter()
        for i in range(LOAD_REQUESTS_PER_THREAD):
            item_url = f"{api.url}/v1/items/{ids[(n + i) % len(ids)]}"
            kind = i % 4
            if kind == 0:
                response = http("POST", f"{api.url}/v1/items", item_payload(quantity=i))
            elif kind == 1:
                response = http("PATCH", item_url, {"quantity": i})
            elif kind == 2:
                response = http("GET", item_url)
            else:
                response = http("GET", f"{api.url}/v1/items?limit=20&sort=-id")
            statuses[response.status] += 1
        return statuses

    started = time.monotonic()
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        totals = sum(pool.map(client, range(LOAD_THREADS)), Counter())
    elapsed = time.monotonic() - started
    requests = sum(totals.values())
    errors = requests - totals[200] - totals[201]
    record_property("pgbouncer_load", {"requests": requests, "errors": errors,
                                       "rps": round(requests / elapsed)})  # fmt: skip
    print(f"pgbouncer load: {requests} requests, {errors} errors, {requests / elapsed:.0f} rps")
    assert requests == LOAD_THREADS * LOAD_REQUESTS_PER_THREAD
    assert errors == 0, totals


def test_statement_timeout_is_enforced_through_the_pooler(api, cluster):
    assert http("POST", f"{api.url}/v1/items", item_payload()).status == 201
    lock = TableLock(cluster.url)
    try:
        lock.hold()
        started = time.monotonic()
        slow = http("GET", f"{api.url}/v1/items/1")
        waited = time.monotonic() - started
    finally:
        lock.release()
        lock.conn.close()
    assert slow.status == 503, slow.body
    assert slow.json()["type"].endswith("database-timeout")
    assert STATEMENT_TIMEOUT_MS / 1000 <= waited < STATEMENT_TIMEOUT_MS / 1000 + 2
    assert http("GET", f"{api.url}/v1/items/1").status == 200


def test_the_start_check_reads_the_role_settings_and_the_pooler_budget(pgbouncer, caplog):
    settings = Settings(
        database_url=pgbouncer.url(APP_ROLE), session_settings="server",
        statement_timeout_ms=STATEMENT_TIMEOUT_MS + 1, pooler_pool_size=POOLER_POOL_SIZE,
        workers=3, pool_min_size=1, pool_max_size=4,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="itemsapi.serve.checks"):
        checks.check_database(settings, settings.database_url)
    messages = {r.getMessage(): r for r in caplog.records}
    assert any("pooler's server pool" in m for m in messages), messages  # 3 x (4 + 3) > 14
    mismatch = next(r for m, r in messages.items() if "session settings differ" in m)
    assert mismatch.found == {"statement_timeout_ms": STATEMENT_TIMEOUT_MS, "timezone": "UTC"}

    caplog.clear()
    fitting = settings.replace(statement_timeout_ms=STATEMENT_TIMEOUT_MS, workers=2)
    with caplog.at_level(logging.INFO, logger="itemsapi.serve.checks"):
        checks.check_database(fitting, fitting.database_url)
    assert [r.getMessage() for r in caplog.records] == ["connection budget fits the server"]
