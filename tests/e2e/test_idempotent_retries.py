"""Clients that retry with an Idempotency-Key, against a real 2-worker server one of whose
workers is SIGKILLed mid-load while it has writes committed in PostgreSQL and not yet answered
(tests/e2e/retrying.py holds them there): every POST a client makes is retried, with its key,
until it is acknowledged, whatever happened to it (no answer, a reset, 503, 409). Afterwards every
acknowledged item is stored exactly once: no duplicate from a retry of a POST that had in fact
committed, no loss. The same through a load balancer whose replica is killed is in
test_replicas.py."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.e2e.retrying import (
    RetryingClients,
    assert_clients_stored_once,
    commits_held,
    held_commits,
)
from tests.e2e.test_operations import is_running, wait_for_workers_serving, worker_pids
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENTS = 6


def _worker_holding(pids: list[int], ports: list[int]) -> int | None:
    """The worker one of whose database connections has one of these client ports."""
    for pid in pids:
        local = {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp")}
        if local & set(ports):
            return pid
    return None


def test_retrying_with_keys_through_a_worker_kill_stores_every_item_once(
    cluster, start_server, record_property
):
    server = start_server(cluster.url, "--workers", "2")
    wait_for_workers_serving(server, 2)
    with RetryingClients(server.url, CLIENTS) as clients:
        clients.wait_for_more(100)
        with commits_held(cluster.url) as admin:
            wait_until(lambda: len(held_commits(admin)) == CLIENTS, 10, "every client's commit")
            dead = _worker_holding(worker_pids(server), held_commits(admin))
            assert dead is not None
            os.kill(dead, signal.SIGKILL)
            wait_until(lambda: not is_running(dead), 10, "the killed worker to exit")
        clients.wait_for_more(100)

    outcomes = assert_clients_stored_once(
        cluster.url, clients, record_property, "idempotent_retries"
    )
    # The killed worker's clients had no answer for writes that had committed: their retries
    # were answered from the stored responses (a retry without a key would have stored twice).
    assert outcomes["201 replayed"] >= 1
    assert outcomes["RemoteDisconnected"] + outcomes["ConnectionResetError"] >= 1
