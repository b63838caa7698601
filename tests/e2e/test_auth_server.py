"""Access control on the real server (Granian, two workers): a revocation holds in every worker
once heard of, refusals are counted, and no token ever reaches the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.helpers import create_key, http, wait_until

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str | None]:
    return {"Authorization": f"Bearer {token}"}


def test_revocation_holds_in_every_worker_and_no_token_is_logged(start_server, clean_db):
    server = start_server(clean_db, "--workers", "2")
    with psycopg.connect(clean_db, autocommit=True) as conn:
        reader_id, reader = create_key(conn, "reader", ["read"])
    unknown = "itemsapi_0123456789ab_" + "Z" * 43
    malformed = "itemsapi-malformed-c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw"
    items = f"{server.url}/v1/items"

    assert http("POST", items, {"name": "x"}).status == 201  # the server's full-scope key
    assert http("GET", items, headers=bearer(reader)).status == 200
    assert http("POST", items, {"name": "x"}, headers=bearer(reader)).status == 403
    assert http("GET", items, headers=bearer(unknown)).status == 401
    assert http("GET", items, headers=bearer(malformed)).status == 401
    assert http("GET", items, headers={"Authorization": None}).status == 401

    revoked = subprocess.run(
        [sys.executable, "-m", "itemsapi", "keys", "revoke", reader_id],
        env={**os.environ, "DATABASE_URL": clean_db}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    # Each worker drops its cached record when the revocation's notification arrives.
    wait_until(lambda: http("GET", items, headers=bearer(reader)).status == 401, 1.0,
               "the revocation", interval=0.01)  # fmt: skip
    # Each request on a new connection: both workers answer some of them.
    assert {http("GET", items, headers=bearer(reader)).status for _ in range(20)} == {401}

    metrics = http("GET", f"{server.url}/metrics").body.decode()
    for reason in ("missing", "malformed", "unknown", "revoked", "insufficient_scope"):
        assert f'itemsapi_auth_failures_total{{reason="{reason}"}}' in metrics, reason

    assert server.stop() == 0
    lines = server.log_lines()
    for token in (server.token, reader, unknown, malformed):
        secret = token.split("_", 2)[2] if token.startswith("itemsapi_") else token
        assert not [line for line in lines if secret in line], token
    access = [json.loads(line) for line in lines if '"itemsapi.access"' in line]
    assert reader_id in {line["principal"] for line in access}
    assert server.token.split("_")[1] in {line["principal"] for line in access}
