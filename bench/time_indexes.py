"""What a write would pay for time indexes that carry the other time: `python -m
bench.time_indexes [--rounds 4]`.

An option measured and not taken (docs/performance.md, "Filters and search at a million rows"):
with `INCLUDE (updated_at)` on the creation-time index (and `created_at` on the other), the
first page of a time range sorted by the other time could read its keys from the index alone.
pgbench runs the API's own INSERT and PATCH statements (as bench.changes write does) on one
database, in rounds that alternate the wide indexes and the shipped narrow ones (rebuilt between
measurements, the table holding --rows items), so that the machine's drift touches both alike;
per round, the transactions per second of each. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import psycopg

from bench.changes import add_pgbench_options, pgbench, write_scripts
from bench.run import database_url, load

INDEXES = {  # name: (key, the column it would carry)
    "items_created_at_id_idx": ("created_at, id", "updated_at"),
    "items_updated_at_id_idx": ("updated_at, id", "created_at"),
}


def build(url: str, wide: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name, (key, carried) in INDEXES.items():
            include = f" INCLUDE ({carried})" if wide else ""
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON items ({key}){include}")
        conn.execute("VACUUM ANALYZE items")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_pgbench_options(parser, duration=8)
    args = parser.parse_args()
    url = database_url("itemsapi_bench_time_indexes")
    load(url, args.rows)
    scripts = write_scripts(url)
    rounds = []
    for number in range(args.rounds):
        measured: dict = {}
        for wide in (True, False) if number % 2 == 0 else (False, True):
            build(url, wide)
            label = "include" if wide else "narrow"
            for name, statement in scripts.items():
                measured[f"{name}_{label}"] = pgbench(url, statement, args)
        rounds.append(measured)
        print(f"round {number + 1}: {measured}", file=sys.stderr, flush=True)
    build(url, False)  # as shipped
    summary = {}
    for name in scripts:
        ratios = [r[f"{name}_include"] / r[f"{name}_narrow"] for r in rounds]
        summary[name] = {"tps_ratio_median": round(statistics.median(ratios), 3),
                         "tps_ratios": [round(x, 3) for x in ratios]}  # fmt: skip
    results = {"settings": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
               "summary": summary}  # fmt: skip
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
