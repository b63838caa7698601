"""Memory per worker under issue 28's probe: `python -m bench.memory_probe [REVISION]`.

A 2-worker server of REVISION (default: the working tree, as bench.paired builds it) over
--items items whose `attributes` each hold about 1 MiB of JSON, then each worker's VmRSS (MB):
after start, after reading every item three times (8 clients), after walking the whole list
three times with limit=100, and the replacement of a worker killed with SIGKILL, 5 s after it
starts with no request (what priming loads). --env KEY=VALUE sets server variables.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import psycopg

from bench.paired import WORKING_TREE, export, server_env
from bench.product import new_token
from bench.run import database_url, free_port, stop, wait_for
from itemsapi.auth.scopes import SCOPES
from itemsapi.db import migrations

DATABASE = "itemsapi_memory_probe"
# 1,000 members of 1 KB each: about 1 MiB of JSON, as the probe sent.
ATTRIBUTES = (
    "SELECT jsonb_object_agg('k' || k, repeat(md5(%s::text || k), 31))"
    " FROM generate_series(1, 1000) AS k"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", nargs="?", default=WORKING_TREE)
    parser.add_argument("--items", type=int, default=300, help="(300)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    url = database_url(DATABASE)
    load(url, args.items)
    token = new_token(url, "probe", list(SCOPES))
    with tempfile.TemporaryDirectory() as folder:
        build = export(args.revision, Path(folder))
        env = {**server_env(build, url), **dict(pair.split("=", 1) for pair in args.env)}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "itemsapi", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(f"{base}/ready")
            time.sleep(5)  # both workers started, priming done
            report(process.pid, "started")
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda n: get(base, f"/v1/items/{n % args.items + 1}", token),
                              range(3 * args.items)))  # fmt: skip
            report(process.pid, "3 reads of each item")
            for _ in range(3):
                walk(base, token)
            report(process.pid, "3 walks of the list, limit=100")
            os.kill(workers(process.pid)[0], signal.SIGKILL)
            before = set(workers(process.pid))
            deadline = time.monotonic() + 30
            while len(set(workers(process.pid)) - before) < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(5)
            report(process.pid, "5 s after a worker was killed and replaced, no request")
        finally:
            stop(process)


def load(url: str, items: int) -> None:
    migrations.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(items):
            conn.execute(
                f"INSERT INTO items (name, attributes) VALUES (%s, ({ATTRIBUTES}))",  # noqa: S608
                (f"big {n}", n),
            )


def get(base: str, path: str, token: str) -> bytes:
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(base + path, headers=headers)  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
        return response.read()


def walk(base: str, token: str) -> None:
    path: str | None = "/v1/items?limit=100"
    while path:
        cursor = orjson.loads(get(base, path, token))["next_cursor"]
        path = f"/v1/items?limit=100&cursor={cursor}" if cursor else None


def workers(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(pid: int, moment: str) -> None:
    figures = ", ".join(f"{rss_mb(worker):.0f}" for worker in sorted(workers(pid)))
    print(f"{moment}: workers' VmRSS {figures} MB", flush=True)


if __name__ == "__main__":
    main()
