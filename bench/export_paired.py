"""Two builds' exports measured in turn: `python -m bench.export_paired BASE [CHANGED]`.

The paired method of docs/performance.md, for GET /v1/items/export: both builds serve one
database of --rows items (loaded by PostgreSQL itself, generate_series), as the image runs them (2
workers each), and every round exports everything once from each, in turns whose order swaps
every round, curl writing to /dev/null. Per export: rows per second, and the CPU per row of the
server (its processes, from /proc) and of PostgreSQL (the postmaster's reaped children: each
export's connection is its own and ends with it). Before the rounds, one export from each is
hashed: the two builds must send the same bytes.

BASE and CHANGED as for bench.paired (CHANGED defaults to the working tree).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.paired import WORKING_TREE, Build, cpu_seconds, export, start
from bench.product import new_token
from bench.run import database_url, stop, wait_for
from itemsapi.auth.scopes import SCOPES
from itemsapi.db import migrations

MEDIA = {"ndjson": "application/x-ndjson", "csv": "text/csv"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The rows of bench/transfer.py's files, made by the database in seconds.
LOAD = """
INSERT INTO items (name, description, price, quantity, attributes)
SELECT 'item ' || n, repeat('imported by the benchmark ', 2), (n %% 10000) / 4.0, n %% 500,
       jsonb_build_object('color', (ARRAY['red', 'green', 'blue'])[n %% 3 + 1], 'n', n)
FROM generate_series(0, %(rows)s - 1) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision to compare against (e.g. main)")
    parser.add_argument("changed", nargs="?", default=WORKING_TREE, help="(the working tree)")
    parser.add_argument("--format", choices=MEDIA, default="ndjson", help="(ndjson)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="(1000000)")
    parser.add_argument("--rounds", type=int, default=4, help="(4)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()

    url = database_url("itemsapi_bench_export_paired")
    migrations.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LOAD, {"rows": args.rows})
        conn.execute("VACUUM ANALYZE items")
        postmaster = int(
            (Path(conn.execute("SHOW data_directory").fetchone()[0]) / "postmaster.pid")
            .read_text()
            .split()[0]
        )
    token = new_token(url, "bench", list(SCOPES))
    with tempfile.TemporaryDirectory(prefix="itemsapi-export-paired-") as folder:
        builds = [export(args.base, Path(folder) / "base"),
                  export(args.changed, Path(folder) / "changed")]  # fmt: skip
        servers = {build.label: start(build, url) for build in builds}
        try:
            for _, base_url in servers.values():
                wait_for(f"{base_url}/ready")
            digests = {label: digest(base_url, token, args.format)
                       for label, (_, base_url) in servers.items()}  # fmt: skip
            if len(set(digests.values())) != 1:
                raise SystemExit(f"the builds send different exports: {digests}")
            rounds = [
                measure_round(n, builds, servers, token, postmaster, args)
                for n in range(args.rounds)
            ]
        finally:
            for process, _ in servers.values():
                stop(process)
    results = {"format": args.format, "rows": args.rows, "builds": [b.label for b in builds],
               "sha256": digests.popitem()[1], "rounds": rounds}  # fmt: skip
    summarise(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def curl(base_url: str, token: str, fmt: str, output: str) -> list[str]:
    return ["curl", "-sf", "-o", output, "-H", f"Authorization: Bearer {token}",
            "-H", f"Accept: {MEDIA[fmt]}", f"{base_url}/v1/items/export"]  # fmt: skip


def digest(base_url: str, token: str, fmt: str) -> str:
    body = subprocess.run(curl(base_url, token, fmt, "-"), capture_output=True, check=True)
    return hashlib.sha256(body.stdout).hexdigest()


def children_cpu_seconds(pid: int) -> float:
    """cutime + cstime of a process: what its reaped children spent."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def measure_round(
    number: int, builds: list[Build], servers: dict, token: str, postmaster: int,
    args: argparse.Namespace,
) -> dict:  # fmt: skip
    measured = {}
    for build in builds if number % 2 == 0 else builds[::-1]:
        process, base_url = servers[build.label]
        server_before, database_before = cpu_seconds(process.pid), children_cpu_seconds(postmaster)
        started = time.perf_counter()
        subprocess.run(curl(base_url, token, args.format, "/dev/null"), check=True)
        seconds = time.perf_counter() - started
        time.sleep(0.5)  # the export's backend exits and is reaped
        server = cpu_seconds(process.pid) - server_before
        database = children_cpu_seconds(postmaster) - database_before
        measured[build.label] = {
            "rows_s": round(args.rows / seconds),
            "server_cpu_us_per_row": round(server * 1e6 / args.rows, 2),
            "database_cpu_us_per_row": round(database * 1e6 / args.rows, 2),
        }
    print(f"round {number + 1}: " + " | ".join(
        f"{label} {m['rows_s']} rows/s, server {m['server_cpu_us_per_row']} us/row,"
        f" database {m['database_cpu_us_per_row']} us/row" for label, m in measured.items()
    ), flush=True)  # fmt: skip
    return measured


def summarise(results: dict) -> None:
    base, changed = results["builds"]
    for figure in ("rows_s", "server_cpu_us_per_row", "database_cpu_us_per_row"):
        pairs = [(r[base][figure], r[changed][figure]) for r in results["rounds"]]
        ratios = [c / b for b, c in pairs if b]
        median = f"{statistics.median(ratios):.3f}" if ratios else "-"
        listed = ", ".join(f"{b}/{c}" for b, c in pairs)
        print(f"{figure}, {base} / {changed}: {listed}; median ratio {median}")


if __name__ == "__main__":
    main()
