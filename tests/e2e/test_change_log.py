"""Two `itemsapi serve` replicas on one PostgreSQL: a replica SIGKILLed right after a write's
commit, before it announced the write, leaves the other replica's read cache stale only until
its change follower reads the log (ITEMSAPI_CHANGES_POLL_INTERVAL), not until the cache's TTL."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from tests.helpers import http, item_payload, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLL_INTERVAL = 1.0
# Published in docs/operations.md ("Read cache"): a commit no announcement tells of (its server
# died first) is served by no cache later than the poll interval after it, plus a read.
BOUND = POLL_INTERVAL + 0.5
SILENT_ROLE = "itemsapi_silent"


def test_a_replica_killed_after_its_commit_leaves_the_other_stale_only_until_its_next_read(
    cluster, start_server
):
    # The killed replica's role may not announce: its kill always lands before an announcement
    # (otherwise the announcer's 10 ms linger would race the kill).
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        for statement in (
            f"CREATE ROLE {SILENT_ROLE} LOGIN",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SILENT_ROLE}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {SILENT_ROLE}",
            "REVOKE EXECUTE ON FUNCTION itemsapi_announce_items(bigint[], text) FROM PUBLIC",
        ):
            conn.execute(statement)
    silent_url = cluster.url.replace("postgres@", f"{SILENT_ROLE}@", 1)
    env = {"ITEMSAPI_CHANGES_POLL_INTERVAL": str(POLL_INTERVAL), "ITEMSAPI_WORKERS": "1"}
    survivor = start_server(cluster.url, **env)
    doomed = start_server(silent_url, **env, ITEMSAPI_LISTEN_DATABASE_URL=cluster.url)
    created = http("POST", f"{survivor.url}/v1/items", item_payload(quantity=1))
    assert created.status == 201
    path = f"/v1/items/{created.json()['id']}"
    wait_until(
        lambda: http("GET", survivor.url + path).headers.get("x-cache") == "hit", 10, "cached"
    )
    patched = http("PATCH", doomed.url + path, {"quantity": 2},
                   headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert patched.status == 200
    os.killpg(doomed.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    # Committed, never announced: the survivor drops its cached copy when its follower reads
    # the log.
    wait_until(lambda: http("GET", survivor.url + path).json()["quantity"] == 2,
               BOUND, "the survivor to serve the new version", interval=0.01)  # fmt: skip
    assert time.monotonic() - killed <= BOUND
