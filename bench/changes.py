"""The change log's costs, measured: `python -m bench.changes write|poll|waiters`.

- write: what the log's triggers cost the database. pgbench runs the API's own INSERT and
  PATCH statements (statements.py, with who writes) on one database, in rounds that alternate
  the log's triggers on and off (ALTER TABLE ... DISABLE TRIGGER), so that the machine's drift
  touches both alike; per round, the transactions per second of each.
- poll: long-poll latency, from a write's commit (its 2xx at the writer) to a follower waiting
  with wait=30 being handed it, over HTTP against `itemsapi serve`: p50/p99/max.
- waiters: item GET latency with and without N followers long-polling the same server (in the
  same run, alternating), p50/p99 from wrk.

A benchmark, not a test: it asserts nothing. Results are printed and, with --out, written.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import psycopg

from bench.paired import Build, start
from bench.run import (
    ROOT,
    database_url,
    load,
    stop,
    wait_for,
    wrk_command,
    wrk_result,
)
from bench.write_rounds import add_pgbench_options, alternate

TRIGGERS = ("items_change_tx", "items_changes_insert", "items_changes_update",
            "items_changes_delete")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("write", "poll", "waiters"))
    add_pgbench_options(parser, duration=10)
    parser.add_argument("--samples", type=int, default=300, help="poll: writes timed (300)")
    parser.add_argument("--waiters", type=int, default=500, help="waiters: followers (500)")
    args = parser.parse_args()
    url = database_url("itemsapi_bench_changes")
    load(url, args.rows)
    results = {"write": write_cost, "poll": poll_latency, "waiters": waiters_cost}[args.what](
        url, args
    )
    results = {"what": args.what, "settings": {k: str(v) for k, v in vars(args).items()},
               **results}  # fmt: skip
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


# --- write: pgbench with and without the log ---------------------------------------------------


def write_cost(url: str, args: argparse.Namespace) -> dict:
    return alternate(url, args, lambda logged: switch(url, logged), ("log", "no_log"))


def switch(url: str, on: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger in TRIGGERS:
            verb = "ENABLE" if on else "DISABLE"
            conn.execute(f"ALTER TABLE items {verb} TRIGGER {trigger}")


# --- the server for poll and waiters ----------------------------------------------------------


def serve(url: str, **env: str) -> tuple[subprocess.Popen, str]:
    build = Build("working-tree", ROOT / "src")
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        process, base = start(build, url)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    wait_for(f"{base}/ready")
    return process, base


def call(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=40)
    headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, data, headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload) if payload else {}


def poll_latency(url: str, args: argparse.Namespace) -> dict:
    process, base = serve(url, ITEMSAPI_WORKERS="2")
    try:
        cursor = latest_cursor(base)
        latencies = []
        for _ in range(args.samples):
            got: dict = {}

            def follow(after: str = cursor, got: dict = got) -> None:
                _, got["page"] = call(base, "GET", f"/v1/changes?wait=30&after={after}")
                got["at"] = time.perf_counter()

            follower = threading.Thread(target=follow)
            follower.start()
            time.sleep(0.05)  # waiting before the write
            status, item = call(base, "POST", "/v1/items", {"name": "polled"})
            committed = time.perf_counter()  # the 201: after the commit
            follower.join(35)
            if status != 201 or got["page"]["changes"][0]["id"] != item["id"]:
                raise SystemExit(f"the follower was handed {got}, not item {item}")
            latencies.append((got["at"] - committed) * 1000)
            cursor = got["page"]["next_cursor"]
    finally:
        stop(process)
    latencies.sort()
    return {"commit_to_delivery_ms": {
        "p50": round(statistics.median(latencies), 1),
        "p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "max": round(latencies[-1], 1), "samples": len(latencies),
    }}  # fmt: skip


def waiters_cost(url: str, args: argparse.Namespace) -> dict:
    """Rounds alternate which comes first; followers wait on the current cursor, and one write
    ends their wait (they then stop) before the next measurement."""
    per_worker = str(args.waiters // 2 + 8)
    process, base = serve(url, ITEMSAPI_WORKERS="2", ITEMSAPI_CHANGES_WAITERS=per_worker)
    rounds = []
    try:
        for number in range(args.rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            measured = {}
            for with_waiters in order:
                threads = []
                if with_waiters:
                    cursor = latest_cursor(base)
                    threads = [threading.Thread(target=call, args=(
                        base, "GET", f"/v1/changes?wait=30&after={cursor}"))
                        for _ in range(args.waiters)]  # fmt: skip
                    for thread in threads:
                        thread.start()
                    time.sleep(3)  # all of them waiting
                out = subprocess.run(
                    wrk_command(f"{base}/", "get.lua", 16, args.duration),
                    capture_output=True, text=True, check=True,
                    env={**os.environ, "BENCH_ROWS": str(args.rows)},
                ).stdout  # fmt: skip
                still_waiting = sum(thread.is_alive() for thread in threads)
                if threads:
                    call(base, "POST", "/v1/items", {"name": "wake"})
                    for thread in threads:
                        thread.join(35)
                label = f"with_{args.waiters}_waiters" if with_waiters else "without"
                measured[label] = {**wrk_result(out), "waiting_at_end": still_waiting}
            rounds.append(measured)
            print(f"round {number + 1}: {measured}", file=sys.stderr, flush=True)
    finally:
        stop(process)
    return {"rounds": rounds}


def latest_cursor(base: str) -> str:
    _, page = call(base, "GET", "/v1/changes?limit=1000")
    while page["changes"]:
        cursor = page["next_cursor"]
        _, page = call(base, "GET", f"/v1/changes?limit=1000&after={cursor}")
    return page["next_cursor"]


if __name__ == "__main__":
    main()
