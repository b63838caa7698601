"""Two `itemsapi serve` replicas behind a real HAProxy that health-checks /ready, PgBouncer in
front of PostgreSQL. One replica is SIGKILLed (its whole process group, as a node or pod dies)
under a write load: the balancer routes around it, every acknowledged write is stored, and the
only failures are POSTs that reached the dying replica (the policy in topology.py: a POST that
reached a replica is never retried elsewhere, since it may have been stored).

Clients that retry every POST with its Idempotency-Key through the balancer while a replica is
killed with writes committed and not yet answered get every acknowledged item stored exactly once.

With the read cache on (each replica LISTENs on a direct connection, as a pooler in transaction
mode cannot carry LISTEN), a write through one replica is read through the other within the
cache's published bound."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.retrying import (
    RetryingClients,
    assert_clients_stored_once,
    commits_held,
    held_commits,
)
from tests.e2e.test_pgbouncer import BEHIND_POOLER
from tests.e2e.topology import APP_ROLE, HAProxy, PgBouncer, prepare_database
from tests.helpers import TOKENS, Cluster, free_port, http, item_payload, wait_until


def _when_refused(url: str) -> float:
    """The moment (monotonic) a killed replica's port refuses connections."""
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
        except ConnectionRefusedError:
            return time.monotonic()
        except OSError:
            pass
        time.sleep(0.001)
    raise AssertionError(f"{url} still accepts connections 10 s after SIGKILL")


pytestmark = pytest.mark.slow

# The read cache's published bound from a commit to every replica serving it (docs/operations.md).
STALENESS_BOUND = 0.25
CLIENTS = 4  # concurrent writers: the most POSTs a replica can have in flight at the kill
LOAD_SECONDS = 4.0
KILL_AFTER = 1.5
MAX_REQUESTS = 4000  # a bound on the loop, whatever the speed
RETRYING_CLIENTS = 6


@pytest.fixture
def topology(tmp_path, start_server) -> Iterator[tuple[Cluster, HAProxy, list]]:
    cluster = Cluster(tmp_path / "pg", free_port()).init()
    cluster.start()
    pooler = None
    balancer = None
    try:
        direct = prepare_database(cluster)
        pooler = PgBouncer(tmp_path / "pgbouncer", cluster, 10, ["postgres", APP_ROLE]).start()
        env = {**BEHIND_POOLER, "ITEMSAPI_WORKERS": "1", "ITEMSAPI_LISTEN_DATABASE_URL": direct}
        replicas = [start_server(pooler.url(APP_ROLE), **env) for _ in range(2)]
        balancer = HAProxy(tmp_path / "haproxy", [r.url.removeprefix("http://") for r in replicas])
        # Both replicas serve one database: the key made for the first is good through either.
        TOKENS[balancer.url] = replicas[0].bearer
        yield cluster, balancer.start(), replicas
    finally:
        if balancer is not None:
            TOKENS.pop(balancer.url, None)
            balancer.stop()
        if pooler is not None:
            pooler.stop()
        cluster.stop()


def test_killing_a_replica_under_writes_loses_no_acknowledged_write(topology, record_property):
    cluster, balancer, replicas = topology
    wait_until(lambda: http("GET", f"{balancer.url}/ready").status == 200, 10, "the balancer")

    acknowledged: dict[int, float] = {}  # id: when its 201 came
    failures: list[tuple[float, int | str]] = []  # (when it was sent, what came back)
    sent = 0
    lock = threading.Lock()
    started = time.monotonic()

    def writer() -> None:
        nonlocal sent
        while time.monotonic() - started < LOAD_SECONDS:
            with lock:
                if sent >= MAX_REQUESTS:
                    return
                sent += 1
            sent_at = time.monotonic() - started
            try:
                response = http("POST", f"{balancer.url}/v1/items", item_payload(), timeout=10)
                outcome: int | str = response.status
            except OSError as exc:
                outcome = type(exc).__name__
            with lock:
                if outcome == 201:
                    acknowledged[response.json()["id"]] = time.monotonic() - started
                else:
                    failures.append((sent_at, outcome))

    threads = [threading.Thread(target=writer) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(KILL_AFTER)
    killed_at = time.monotonic() - started
    os.killpg(replicas[0].process.pid, signal.SIGKILL)
    closed_at = _when_refused(replicas[0].url) - started
    for thread in threads:
        thread.join(LOAD_SECONDS + 30)

    stored = cluster.item_ids()
    figures = {"requests": sent, "failures": len(failures),
               "acknowledged": len(acknowledged), "stored": len(stored),
               "port_closed_after_s": round(closed_at - killed_at, 3)}  # fmt: skip
    record_property("replica_kill", figures)
    print(f"replica kill: {figures}")

    assert set(acknowledged) <= stored  # every 201 is in the database
    assert len(stored) - len(acknowledged) <= len(failures)  # a failed POST may have been stored
    # Only POSTs that reached the dying replica fail: sent after the kill and before its port
    # stopped accepting (in its handler, or in its accept queue while the process was torn
    # down); whatever was sent later found the port closed and was retried on the survivor.
    assert all(killed_at - 1 <= at <= closed_at for at, _ in failures), (closed_at, failures)
    assert all(outcome == 502 for _, outcome in failures), failures  # never a reset or a 5xx
    assert any(at > killed_at + 1 for at in acknowledged.values()), "no write after the kill"
    # and the survivor alone answers through the balancer from now on
    assert http("POST", f"{balancer.url}/v1/items", item_payload()).status == 201


def test_retrying_with_keys_through_a_replica_kill_stores_every_item_once(
    topology, record_property
):
    cluster, balancer, replicas = topology
    wait_until(lambda: http("GET", f"{balancer.url}/ready").status == 200, 10, "the balancer")
    with RetryingClients(balancer.url, RETRYING_CLIENTS) as clients:
        clients.wait_for_more(100)
        # Every client's write committed and unanswered: the balancer's round robin has sent
        # some of them to the replica about to die. (A held commit outlasting the role's
        # statement_timeout is let go and answered: the wait is retried until all are held.)
        with commits_held(cluster.url) as admin:
            wait_until(lambda: len(held_commits(admin)) == RETRYING_CLIENTS, 10,
                       "every client's commit", interval=0.01)  # fmt: skip
            os.killpg(replicas[0].process.pid, signal.SIGKILL)
            _when_refused(replicas[0].url)
        clients.wait_for_more(100)

    outcomes = assert_clients_stored_once(
        cluster.url, clients, record_property, "idempotent_retries_replica_kill"
    )
    # The balancer answered 502 for the POSTs the dead replica had committed, and their
    # retries, sent to the survivor, were answered from the stored responses.
    assert outcomes["502"] >= 1
    assert outcomes["201 replayed"] >= 1


def test_a_write_through_one_replica_is_read_through_the_other_within_the_bound(topology):
    _, _, (first, second) = topology
    created = http("POST", f"{first.url}/v1/items", item_payload())
    assert created.status == 201
    path = f"/v1/items/{created.json()['id']}"

    def served_from_cache() -> bool:
        return http("GET", second.url + path).headers.get("x-cache") == "hit"

    wait_until(served_from_cache, 10, "the other replica to cache the item")
    patched = http(
        "PATCH", first.url + path, {"quantity": 7},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert patched.status == 200
    acknowledged = time.monotonic()
    wait_until(
        lambda: http("GET", second.url + path).json()["version"] == patched.json()["version"],
        STALENESS_BOUND, "the other replica to serve the new version", interval=0.005,
    )  # fmt: skip
    seen_after = time.monotonic() - acknowledged
    assert seen_after <= STALENESS_BOUND
    assert http("GET", second.url + path).json()["quantity"] == 7
