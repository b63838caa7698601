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

import psycopg

from bench.run import database_url, load
from bench.write_rounds import add_pgbench_options, alternate

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
    measured = alternate(url, args, lambda wide: build(url, wide), ("include", "narrow"))
    build(url, False)  # as shipped
    results = {"settings": {k: str(v) for k, v in vars(args).items()}, **measured}
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
