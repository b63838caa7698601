"""Two builds of the API measured side by side: `python -m bench.paired BASE [CHANGED]`.

The paired method of docs/performance.md. This machine's speed drifts by more
than most changes are worth, so two builds measured one after the other cannot be compared.
Here both run at the same time on one database, each driven by its own wrk for the same
seconds, and each round compares the CPU the two servers spent per request (utime + stime of
every process of the server, from /proc): whatever the host does, it does to both. Which build
starts first and takes which port swaps every round.

BASE and CHANGED are git revisions; CHANGED defaults to the working tree, uncommitted edits
included. Each build's `src/` runs on this checkout's virtualenv, so dependencies are shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.run import (
    PRODUCTION_ENV,
    ROOT,
    SCENARIOS,
    database_url,
    deep_page,
    free_port,
    load,
    stop,
    tree_proc_files,
    wait_for,
    wrk_command,
    wrk_result,
)

WORKING_TREE = "working-tree"
# Beyond `make bench`'s: a POST carrying a fresh Idempotency-Key. Against a build without keys
# (main before them) it is a plain POST there: the pair is the key's cost.
PAIRED_SCENARIOS = {
    **SCENARIOS,
    "post_key": ("/items", "post_key.lua", "POST /items with a fresh Idempotency-Key"),
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Build:
    label: str
    src: Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision to compare against (e.g. HEAD, main)")
    parser.add_argument("changed", nargs="?", default=WORKING_TREE,
                        help=f"git revision to measure (default: the {WORKING_TREE})")  # fmt: skip
    parser.add_argument("--scenario", choices=PAIRED_SCENARIOS, default="get", help="(get)")
    parser.add_argument("--rounds", type=int, default=6, help="(6)")
    parser.add_argument("--duration", type=int, default=6, help="seconds per round (6)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each round (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections each (16)")
    parser.add_argument("--rows", type=int, default=10_000, help="items to load (10000)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    if args.base == args.changed:
        parser.error("BASE and CHANGED must be two different builds")

    with tempfile.TemporaryDirectory(prefix="itemsapi-paired-") as folder:
        builds = [export(args.base, Path(folder) / "base"),
                  export(args.changed, Path(folder) / "changed")]  # fmt: skip
        url = database_url()
        load(url, args.rows)
        path, script, _ = PAIRED_SCENARIOS[args.scenario]
        path = path or deep_page(url, args.rows)  # one page for every round
        rounds = [measure_round(number, builds, url, path, script, args)
                  for number in range(args.rounds)]  # fmt: skip
    settings = {name: value for name, value in vars(args).items() if name != "out"}
    results = {"scenario": args.scenario, "settings": settings,
               "builds": [b.label for b in builds], "rounds": rounds}  # fmt: skip
    summarise(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def export(revision: str, into: Path) -> Build:
    """A revision's src/ and sql/ (the schema and migrations it ships) unpacked into a folder
    (the working tree's are used where they are)."""
    if revision == WORKING_TREE:
        return checked(Build(WORKING_TREE, ROOT / "src"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src", "sql"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return checked(Build(revision, into / "src"))


def checked(build: Build) -> Build:
    """Make sure a server started with this build's PYTHONPATH imports this build's code."""
    imported = subprocess.run(
        [sys.executable, "-c", "import itemsapi; print(itemsapi.__file__)"],
        env=server_env(build, ""), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(imported).resolve().is_relative_to(build.src.resolve()):
        raise SystemExit(f"{build.label}: the server would import {imported}, not {build.src}")
    return build


def server_env(build: Build, database: str) -> dict[str, str]:
    return {**os.environ, **PRODUCTION_ENV, "PYTHONPATH": str(build.src),
            "DATABASE_URL": database, "ITEMSAPI_LOG_LEVEL": "INFO"}  # fmt: skip


def measure_round(
    number: int, builds: list[Build], url: str, path: str, script: str | None,
    args: argparse.Namespace,
) -> dict:  # fmt: skip
    order = builds if number % 2 == 0 else builds[::-1]
    servers = {}
    try:
        for build in order:
            servers[build.label] = start(build, url)
        for _, base_url in servers.values():
            wait_for(f"{base_url}/ready")
        drive(servers, path, script, args.warmup, args)
        before = {label: cpu_seconds(process.pid) for label, (process, _) in servers.items()}
        outputs = drive(servers, path, script, args.duration, args)
        after = {label: cpu_seconds(process.pid) for label, (process, _) in servers.items()}
    finally:
        for process, _ in servers.values():
            stop(process)
    measured = {}
    for build in builds:
        result = wrk_result(outputs[build.label])
        spent = after[build.label] - before[build.label]
        per_request = round(spent * 1e6 / max(result["requests"], 1))
        measured[build.label] = {**result, "cpu_us_per_request": per_request}
    line = " | ".join(
        f"{label} {m['rps']} rps {m['cpu_us_per_request']} us/req"
        + (f" {m['errors']} ERRORS" if m["errors"] else "")
        for label, m in measured.items()
    )
    print(f"round {number + 1}: {line}", flush=True)
    return measured


def start(build: Build, url: str) -> tuple[subprocess.Popen, str]:
    """`itemsapi serve` from a build, as the image runs it; the process and its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "itemsapi", "serve", "--port", str(port)],
        env=server_env(build, url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def drive(servers: dict, path: str, script: str | None, seconds: int,
          args: argparse.Namespace) -> dict[str, str]:  # fmt: skip
    """wrk against every server at once, for the same seconds; wrk's output by build."""
    env = {**os.environ, "BENCH_ROWS": str(args.rows)}
    runners = {
        label: subprocess.Popen(wrk_command(base_url + path, script, args.connections, seconds),
                                stdout=subprocess.PIPE, text=True, env=env)
        for label, (_, base_url) in servers.items()
    }  # fmt: skip
    return {label: runner.communicate()[0] for label, runner in runners.items()}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its descendants (Granian's workers), from /proc."""
    ticks = 0
    for stat in tree_proc_files(pid, "stat"):
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)", which may hold spaces
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return ticks / CLOCK_TICKS


def summarise(results: dict) -> None:
    base, changed = results["builds"]
    pairs = [(r[base]["cpu_us_per_request"], r[changed]["cpu_us_per_request"])
             for r in results["rounds"]]  # fmt: skip
    less = sum(1 for b, c in pairs if c < b)
    ratios = [c / b for b, c in pairs if b]
    print(f"\n{results['scenario']}: CPU us per request, {base} / {changed}: "
          + ", ".join(f"{b}/{c}" for b, c in pairs))  # fmt: skip
    if ratios:
        print(f"{changed} spent less CPU per request in {less} of {len(pairs)} rounds; "
              f"median ratio {statistics.median(ratios):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
