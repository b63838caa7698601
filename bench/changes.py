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
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import ClientCursor
from psycopg.types.json import Jsonb

from bench.paired import Build, start
from bench.product import pgbench as pgbench_program
from bench.run import (
    PGBENCH_ROW,
    ROOT,
    database_url,
    load,
    stop,
    wait_for,
    wrk_command,
    wrk_result,
)
from itemsapi.db import statements

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


def add_pgbench_options(parser: argparse.ArgumentParser, duration: int) -> None:
    """The options of a pgbench comparison in rounds (this module's write, bench.time_indexes)."""
    parser.add_argument("--rounds", type=int, default=4, help="(4)")
    parser.add_argument("--duration", type=int, default=duration,
                        help=f"seconds per measurement ({duration})")  # fmt: skip
    parser.add_argument("--clients", type=int, default=16, help="pgbench clients (16)")
    parser.add_argument("--rows", type=int, default=10_000, help="items to load (10000)")
    parser.add_argument(
        "--no-flush", action="store_true", help="commit without waiting for WAL flushes"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")


# --- write: pgbench with and without the log ---------------------------------------------------


def write_scripts(url: str) -> dict[str, str]:
    """The API's own INSERT and PATCH statements, with who writes, as pgbench scripts."""
    row = {**PGBENCH_ROW, "attributes": Jsonb(PGBENCH_ROW["attributes"]), "by": "pgbench"}
    patch = statements.update_statement(("quantity", "attributes"), merge_attributes=True)
    with psycopg.connect(url) as conn:
        insert = ClientCursor(conn).mogrify(statements.insert_statement(), row)
        update = ClientCursor(conn).mogrify(
            patch, {"quantity": 5, "attributes": Jsonb({"k": "w"}), "id": 0, "by": "pgbench"}
        )
    return {"post": insert, "patch": update.replace("id = 0", "id = :id")}


def write_cost(url: str, args: argparse.Namespace) -> dict:
    return alternate(url, args, lambda logged: switch(url, logged), ("log", "no_log"))


def alternate(
    url: str, args: argparse.Namespace, setup: Callable[[bool], None], labels: tuple[str, str]
) -> dict:
    """pgbench runs the API's writes (write_scripts) in `args.rounds` rounds, each measuring
    both states `setup(True)` and `setup(False)` (named by `labels`), in alternating order, so
    that the machine's drift touches both alike; ends in the state `setup(True)` makes. Per
    script, the median ratio of transactions per second, first state over second."""
    scripts = write_scripts(url)
    rounds = []
    for number in range(args.rounds):
        measured: dict = {}
        for state in (True, False) if number % 2 == 0 else (False, True):
            setup(state)
            label = labels[0] if state else labels[1]
            for name, statement in scripts.items():
                measured[f"{name}_{label}"] = pgbench(url, statement, args)
        rounds.append(measured)
        print(f"round {number + 1}: {measured}", file=sys.stderr, flush=True)
    setup(True)
    summary = {}
    for name in scripts:
        ratios = [r[f"{name}_{labels[0]}"] / r[f"{name}_{labels[1]}"] for r in rounds]
        summary[name] = {"tps_ratio_median": round(statistics.median(ratios), 3),
                         "tps_ratios": [round(x, 3) for x in ratios]}  # fmt: skip
    return {"rounds": rounds, "summary": summary}


def switch(url: str, on: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger in TRIGGERS:
            verb = "ENABLE" if on else "DISABLE"
            conn.execute(f"ALTER TABLE items {verb} TRIGGER {trigger}")


def pgbench(url: str, statement: str, args: argparse.Namespace) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(f"\\set id random(1, {args.rows})\n{statement};\n")
    try:
        out = subprocess.run(
            [pgbench_program(), "-n", "-c", str(args.clients), "-j", "2", "-T",
             str(args.duration), "-M", "prepared", "-f", script.name, url],
            capture_output=True, text=True, check=True, env=pgbench_env(args),
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    return float(re.search(r"tps = ([\d.]+)", out)[1])


def pgbench_env(args: argparse.Namespace) -> dict[str, str]:
    """Sessions set up as the API's: they announce their writes themselves (after commit), so
    the notification triggers of migration 0002 skip them, and only the log's cost is compared."""
    options = "-c itemsapi.announce=after_commit"
    if args.no_flush:
        options += " -c synchronous_commit=off"
    return {**os.environ, "PGOPTIONS": options}


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
