"""Clients that retry with an Idempotency-Key, against a real 2-worker server one of whose
workers is SIGKILLed mid-load: every POST a client makes is retried, with its key, until it is
acknowledged, whatever happened to it (no answer, a reset, 503, 409). Afterwards every
acknowledged item is stored exactly once: no duplicate from a retry of a POST that had in fact
committed, no loss."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import psycopg
import pytest

from tests.e2e.test_operations import is_running, wait_for_workers_serving, worker_pids
from tests.helpers import http, item_payload, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENTS = 6
RETRY_FOR = 60.0  # seconds a client keeps retrying one POST before the test gives up


def test_retrying_with_keys_through_a_worker_kill_stores_every_item_once(
    clean_db, start_server, record_property
):
    server = start_server(clean_db, "--workers", "2")
    wait_for_workers_serving(server, 2)
    acknowledged: dict[str, int] = {}  # key -> id of the item its 201 named
    outcomes: Counter[str] = Counter()  # what the attempts met: 201, replayed, reset, 503...
    lock = threading.Lock()
    stop = threading.Event()

    def post_until_acknowledged(key: str) -> None:
        give_up = time.monotonic() + RETRY_FOR
        while time.monotonic() < give_up:
            headers = {"Idempotency-Key": key}
            try:
                response = http("POST", f"{server.url}/v1/items", item_payload(name=key),
                                headers=headers, timeout=5)  # fmt: skip
            except OSError as exc:  # reset, refused, or no answer: the POST may have committed
                outcome = type(exc).__name__
            else:
                outcome = str(response.status)
                if response.status == 201:
                    replayed = response.headers.get("idempotent-replayed") == "true"
                    with lock:
                        acknowledged[key] = response.json()["id"]
                        outcomes["201 replayed" if replayed else "201"] += 1
                    return
                assert response.status in (409, 503), response.body  # nothing else is retried
            with lock:
                outcomes[outcome] += 1
            time.sleep(0.05)
        raise AssertionError(f"{key} not acknowledged within {RETRY_FOR}s")

    errors: list[BaseException] = []

    def client(number: int) -> None:
        sent = 0
        try:
            while not stop.is_set():
                post_until_acknowledged(f"client-{number}-post-{sent}")
                sent += 1
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 200, 60, "200 acknowledged POSTs")
        dead = worker_pids(server)[0]
        os.kill(dead, signal.SIGKILL)
        killed_at = len(acknowledged)
        wait_until(lambda: not is_running(dead), 10, "the killed worker to exit")
        wait_until(lambda: len(acknowledged) >= killed_at + 200, 60, "200 POSTs after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors

    with psycopg.connect(clean_db) as conn:
        stored = conn.execute("SELECT name, id FROM items").fetchall()
    per_key = Counter(name for name, _ in stored)
    duplicates = {name: n for name, n in per_key.items() if n > 1}
    lost = {key for key, item_id in acknowledged.items() if (key, item_id) not in set(stored)}
    figures = {"acknowledged": len(acknowledged), "stored": len(stored), **outcomes}
    record_property("idempotent_retries", figures)
    print(f"idempotent retries through a worker kill: {figures}")
    assert not duplicates
    assert not lost
    assert set(per_key) == set(acknowledged)  # nothing stored that no client was told of
    # The kill did meet requests in flight (else this test proved nothing): they were retried.
    assert sum(n for outcome, n in outcomes.items() if not outcome.startswith("201")) >= 1
