"""Clients that retry every POST with its Idempotency-Key until it is acknowledged, and a way to
catch their writes at the moment that makes a blind retry dangerous: committed in PostgreSQL,
not yet answered. The kill tests (tests/e2e/test_idempotent_retries.py, test_replicas.py) kill a
server there, so that a client retrying without a key would store the item twice."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator

import psycopg

from tests.helpers import http, item_payload, wait_until

RETRY_FOR = 60.0  # seconds a client keeps retrying one POST before the test gives up
# What a client retries besides no answer at all: 409, its earlier attempt still in flight;
# 502, a balancer whose replica died with the request; 503, overload or a database away.
RETRIED = (409, 502, 503)


class RetryingClients:
    """`count` threads, each POSTing items one after another. Every POST has its own key, also
    written into the item's attributes as `marker` (how the database is counted afterwards), and
    is sent again with the same key and body after whatever came back (no answer, a reset, one of
    RETRIED) until a 201 acknowledges it. Used as a context manager: the clients stop at exit."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.acknowledged: dict[str, int] = {}  # key -> the id its 201 named
        self.outcomes: Counter[str] = Counter()  # what the attempts met: 201, replayed, 502...
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(count)]

    def __enter__(self) -> RetryingClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        assert not self._errors, self._errors

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        """Until `count` more POSTs than now are acknowledged."""
        target = len(self.acknowledged) + count
        wait_until(lambda: len(self.acknowledged) >= target, timeout, f"{count} more 201s")

    def _client(self, number: int) -> None:
        sent = 0
        try:
            while not self._stop.is_set():
                self._post_until_acknowledged(f"client-{number}-post-{sent}")
                sent += 1
        except BaseException as exc:  # reported at exit
            self._errors.append(exc)

    def _post_until_acknowledged(self, key: str) -> None:
        body = item_payload(name="retried", attributes={"marker": key})
        give_up = time.monotonic() + RETRY_FOR
        while time.monotonic() < give_up:
            try:
                response = http("POST", f"{self.url}/v1/items", body,
                                headers={"Idempotency-Key": key}, timeout=10)  # fmt: skip
            except OSError as exc:  # reset, refused, or no answer: the POST may have committed
                outcome = type(exc).__name__
            else:
                outcome = str(response.status)
                if response.status == 201:
                    replayed = response.headers.get("idempotent-replayed") == "true"
                    with self._lock:
                        self.acknowledged[key] = response.json()["id"]
                        self.outcomes["201 replayed" if replayed else "201"] += 1
                    return
                assert response.status in RETRIED, response.body
            with self._lock:
                self.outcomes[outcome] += 1
            time.sleep(0.05)
        raise AssertionError(f"{key} not acknowledged within {RETRY_FOR}s")


def assert_clients_stored_once(
    database_url: str, clients: RetryingClients, record_property, name: str
) -> Counter[str]:
    """Every acknowledged POST's item stored once, under the id its 201 named; nothing stored
    that no client was told of. The figures are recorded in the test's report as `name` and
    printed. Returns what the clients' attempts met (201, replayed, 502...)."""
    stored = _stored_once(database_url, clients.acknowledged)
    figures = {"acknowledged": len(clients.acknowledged), "stored": stored, **clients.outcomes}
    record_property(name, figures)
    print(f"{name}: {figures}")
    return clients.outcomes


def _stored_once(database_url: str, acknowledged: dict[str, int]) -> int:
    """How many items carry a marker, once each is checked."""
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT attributes->>'marker', id FROM items WHERE attributes ? 'marker'"
        ).fetchall()
    per_marker = Counter(marker for marker, _ in stored)
    duplicates = {marker: n for marker, n in per_marker.items() if n > 1}
    assert not duplicates
    lost = set(acknowledged.items()) - set(stored)
    assert not lost
    assert set(per_marker) == set(acknowledged)
    return len(stored)


@contextlib.contextmanager
def commits_held(superuser_url: str) -> Iterator[psycopg.Connection]:
    """While inside, every commit that waits for its WAL to be flushed (synchronous_commit on,
    the default) waits as well for a synchronous standby that does not exist. Such a write is
    durable and becomes visible when the wait ends, but its client has no answer yet. The wait
    ends at exit (the setting reset) or when the statement's timeout cancels it: either way the
    commit stands. Yields the superuser's connection, for held_commits."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            yield conn
        finally:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")


def held_commits(conn: psycopg.Connection) -> list[int]:
    """The client ports of the sessions whose commit is waiting in commits_held."""
    rows = conn.execute("SELECT client_port FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
    return [port for (port,) in rows]
