"""How long another replica serves an item's old version after this API changed it: two
`itemsapi serve` servers (two origins, as two replicas) on one database; each PATCH through A is
followed by reads through B, on a kept-alive connection, until B answers with the new version.

    DATABASE_URL=... python -m bench.replica_lag [--writes 200]

The figure is from A's response (the commit is before it) to B's first fresh answer: the write's
announcement (sent by A's announcer after lingering up to 10 ms), PostgreSQL's delivery, and B
applying it. The database must have the schema and migrations applied.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

from bench.product import new_token
from bench.run import free_port, wait_for


def request(conn: http.client.HTTPConnection, method: str, path: str, token: str,
            body: dict | None = None) -> dict:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    payload = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    token = new_token(url, "replica-lag", ["read", "write"])
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "itemsapi", "serve", "--port", str(port), "--workers", "1"],
            env={**os.environ, "ITEMSAPI_CACHE_PRIME": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(f"http://127.0.0.1:{port}/ready")
        a, b = (http.client.HTTPConnection("127.0.0.1", port) for port in ports)
        item = request(a, "POST", "/v1/items", token, {"name": "lag"})
        path = f"/v1/items/{item['id']}"
        lags = []
        for n in range(args.writes):
            request(b, "GET", path, token)  # cached on B
            version = request(a, "PATCH", path, token, {"quantity": n})["version"]
            answered = time.perf_counter()
            while request(b, "GET", path, token)["version"] != version:
                pass
            lags.append(time.perf_counter() - answered)
        lags.sort()
        ms = [1000 * lags[int(q * (len(lags) - 1))] for q in (0.5, 0.99)]
        print(f"{len(lags)} writes: stale on the other replica after the write's response"
              f" p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms, max {1000 * lags[-1]:.1f} ms,"
              f" mean {1000 * statistics.mean(lags):.1f} ms")  # fmt: skip
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
