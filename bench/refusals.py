"""What a refused API key costs the server, by kind: a fresh unknown key id at every request, one
unknown key id again and again, a wrong secret on a real key id, a revoked key; and a valid key
for reference. Server side: the duration_ms of each request's access line, from a real
`itemsapi serve` with two workers, requests of every kind interleaved on kept-alive connections.

    DATABASE_URL=... python -m bench.refusals [--requests 500] [--baseline-src DIR]

--baseline-src runs the same measurement first against the server built from another source
tree (e.g. `git archive <commit> src | tar -x -C /tmp/before`), so that both are in one run.
The database must have the schema and migrations applied; the bench adds three keys.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.product import new_token
from bench.run import free_port, wait_for, wait_for_workers
from itemsapi.auth.keys import new_token as fresh_token
from itemsapi.auth.keys import revoke_key
from itemsapi.config import Settings
from itemsapi.db.database import direct
from itemsapi.db.keys import KeyRepository
from itemsapi.db.pool import connection_options

KINDS = ("unknown id, fresh", "unknown id, same", "wrong secret", "revoked", "valid")
CONNECTIONS = 8  # spread over both workers (each connection stays with one)
WARM_UP = 100  # rounds before those measured


def tokens(url: str) -> dict[str, object]:
    valid = new_token(url, "bench-valid", ["read"])
    revoked = new_token(url, "bench-revoked", ["read"])
    with direct(url, connection_options(Settings(database_url=url))) as database:
        revoke_key(KeyRepository(database), revoked.split("_")[1])
    return {
        "unknown id, fresh": lambda: fresh_token()[1],
        "unknown id, same": fresh_token()[1],
        "wrong secret": valid[:-8] + "AAAAAAAA",
        "revoked": revoked,
        "valid": valid,
    }


def measure(url: str, requests: int, source: str | None) -> dict[str, list[float]]:
    port = free_port()
    env = {**os.environ, "ITEMSAPI_CACHE_PRIME": "0", "ITEMSAPI_LOG_LEVEL": "INFO"}
    if source:
        env["PYTHONPATH"] = source
    made = tokens(url)
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "itemsapi", "serve", "--port", str(port), "--workers", "2"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for(f"http://127.0.0.1:{port}/ready")
            wait_for_workers(log_path, 2)
            connections = [
                http.client.HTTPConnection("127.0.0.1", port) for _ in range(CONNECTIONS)
            ]
            turn = itertools.cycle(connections)
            for round_ in range(-WARM_UP, requests):  # the warm-up's are not counted
                for index, kind in enumerate(KINDS):
                    token = made[kind]
                    token = token() if callable(token) else token
                    conn = next(turn)
                    # A request id of characters the server echoes: the kind, then the round.
                    request_id = f"k{index}.{round_ + WARM_UP}"
                    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": request_id}
                    conn.request("GET", "/v1/items?limit=1", headers=headers)
                    response = conn.getresponse()
                    response.read()
                    expected = 200 if kind == "valid" else 401
                    if response.status != expected:
                        raise RuntimeError(f"{kind}: {response.status}, not {expected}")
        finally:
            server.terminate()
            server.wait(30)
        durations: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for line in log_path.read_text().splitlines():
            if '"itemsapi.access"' not in line:
                continue
            record = json.loads(line)
            index, _, round_ = record["request_id"].removeprefix("k").partition(".")
            if round_.isdigit() and int(round_) >= WARM_UP:
                durations[KINDS[int(index)]].append(record["duration_ms"] * 1000)
    return durations


def report(title: str, durations: dict[str, list[float]]) -> None:
    print(f"{title}: server-side duration_ms of the access line, µs")
    print(f"  {'kind':<20} {'n':>5} {'median':>8} {'p90':>8}")
    for kind, values in durations.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"  {kind:<20} {len(values):>5} {statistics.median(values):>8.0f} {p90:>8.0f}")
    refused = [statistics.median(durations[kind]) for kind in KINDS if kind != "valid"]
    print(f"  refused kinds: slowest median / fastest = {max(refused) / min(refused):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--baseline-src", help="source tree of the server to compare with")
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    if args.baseline_src:
        report(f"baseline ({args.baseline_src})", measure(url, args.requests, args.baseline_src))
    report("this tree", measure(url, args.requests, None))


if __name__ == "__main__":
    main()
