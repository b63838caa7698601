"""pgbench comparisons in rounds, on the API's own write statements: what bench.changes write,
bench.time_indexes and bench.logical_log share. Each round measures every state in turn, in an
order that changes from round to round, so that the machine's drift touches all alike."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import ClientCursor
from psycopg.types.json import Jsonb

from bench.product import pgbench as pgbench_program
from bench.run import PGBENCH_ROW
from itemsapi.db import statements


def add_pgbench_options(parser: argparse.ArgumentParser, duration: int) -> None:
    """The options of a pgbench comparison in rounds."""
    parser.add_argument("--rounds", type=int, default=4, help="(4)")
    parser.add_argument("--duration", type=int, default=duration,
                        help=f"seconds per measurement ({duration})")  # fmt: skip
    parser.add_argument("--clients", type=int, default=16, help="pgbench clients (16)")
    parser.add_argument("--rows", type=int, default=10_000, help="items to load (10000)")
    parser.add_argument(
        "--no-flush", action="store_true", help="commit without waiting for WAL flushes"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")


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


# A script's rate in one state: its transactions per second.
Rate = Callable[[str], float]


def in_rounds(
    url: str, args: argparse.Namespace, states: dict[str, Callable[[], Rate]]
) -> tuple[list[dict], list[str]]:
    """pgbench runs the API's writes (write_scripts) in `args.rounds` rounds. In each, every
    state is entered once (its function, which returns how to measure a script there), in an
    order that rotates from round to round, and every script measured. The rounds, each
    `{"<script>_<state>": rate}`, and the scripts' names."""
    scripts = write_scripts(url)
    labels = list(states)
    rounds = []
    for number in range(args.rounds):
        shift = number % len(labels)
        measured: dict = {}
        for label in labels[shift:] + labels[:shift]:
            rate = states[label]()
            for name, statement in scripts.items():
                measured[f"{name}_{label}"] = rate(statement)
        rounds.append(measured)
        print(f"round {number + 1}: {measured}", file=sys.stderr, flush=True)
    return rounds, list(scripts)


def ratios(rounds: list[dict], script: str, state: str, baseline: str) -> dict:
    """A script's rate in `state` over its rate in `baseline`: each round's, and their median."""
    each = [r[f"{script}_{state}"] / r[f"{script}_{baseline}"] for r in rounds]
    return {"tps_ratio_median": round(statistics.median(each), 3),
            "tps_ratios": [round(x, 3) for x in each]}  # fmt: skip


def tps(url: str, args: argparse.Namespace) -> Rate:
    """pgbench's own transactions per second."""
    return lambda statement: pgbench(url, statement, args)[0]


def alternate(
    url: str, args: argparse.Namespace, setup: Callable[[bool], None], labels: tuple[str, str]
) -> dict:
    """in_rounds with two states, `setup(True)` and `setup(False)` (named by `labels`),
    alternating; ends in the state `setup(True)` makes. Per script, the ratio of the first
    state's transactions per second over the second's."""

    def state(on: bool) -> Callable[[], Rate]:
        return lambda: (setup(on), tps(url, args))[1]

    rounds, scripts = in_rounds(url, args, {labels[0]: state(True), labels[1]: state(False)})
    setup(True)
    return {"rounds": rounds, "summary": {name: ratios(rounds, name, *labels) for name in scripts}}


def pgbench(url: str, statement: str, args: argparse.Namespace) -> tuple[float, int]:
    """`statement` run by pgbench as `args` say: transactions per second, and how many ran."""
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
    transactions = int(re.search(r"actually processed: (\d+)", out)[1])
    return float(re.search(r"tps = ([\d.]+)", out)[1]), transactions


def pgbench_env(args: argparse.Namespace) -> dict[str, str]:
    """Sessions set up as the API's: they announce their writes themselves (after commit), so
    the notification triggers of migration 0002 skip them, and only the log's cost is compared."""
    options = "-c itemsapi.announce=after_commit"
    if args.no_flush:
        options += " -c synchronous_commit=off"
    return {**os.environ, "PGOPTIONS": options}
