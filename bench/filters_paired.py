"""A time range sorted by another key, with and without its bounded steps: `python -m
bench.filters_paired [--rounds 15]`, on the rows `python -m bench.filters` loaded.

For each time-range filter of bench.filters with every sort order, the first page and a page
deep in the walk are read by the list's statement as GET /v1/items runs it (sized.list_sql,
whose time ranges go through list_query.walk_first_sql) and by the single plan it had before
(the same statement built with one_page=False and the page's LIMIT), one client, alternately,
so that the machine's drift falls on both. Reports the median milliseconds of each and their
ratio. Results: bench/results/<date>-filters-paired.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.filters import FILTERS, SORTS, deep_key, reused_url, statement
from bench.run import HERE
from itemsapi.db import list_query, sized
from itemsapi.db.statements import text


def timed(conn: psycopg.Connection, statement_: str, params: dict[str, Any]) -> float:
    began = time.perf_counter()
    conn.execute(statement_, params).fetchall()
    return (time.perf_counter() - began) * 1000


def compare(conn: psycopg.Connection, args: dict[str, str], key: Any, rounds: int) -> dict:
    stepped, params, query = statement(args, key)
    plain = text(sized.list_sql, *list_query.list_shape(query), one_page=False)
    times: dict[str, list[float]] = {"stepped": [], "single": []}
    for _ in range(2):  # prepared and cached, as the pool's connections have them
        timed(conn, stepped, params)
        timed(conn, plain, params)
    for _ in range(rounds):
        times["stepped"].append(timed(conn, stepped, params))
        times["single"].append(timed(conn, plain, params))
    medians = {name: round(statistics.median(found), 2) for name, found in times.items()}
    return {**medians, "ratio": round(medians["stepped"] / medians["single"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="(15)")
    args = parser.parse_args()
    ranged = {name: found for name, found in FILTERS.items()
              if any(bound in found for names in list_query.TIME_RANGES.values()
                     for bound in names)}  # fmt: skip
    results = []
    url = reused_url()
    with psycopg.connect(url, autocommit=True, row_factory=dict_row, prepare_threshold=1) as conn:
        for name, filters in ranged.items():
            for sort in SORTS:
                asked = {**filters, "sort": sort, "limit": "20"}
                key = deep_key(conn, asked)
                first = compare(conn, asked, None, args.rounds)
                deep = None if key is None else compare(conn, asked, key, args.rounds)
                entry = {"filter": name, "sort": sort, "first": first, "deep": deep}
                results.append(entry)
                print(json.dumps(entry), flush=True)
    out = HERE / "results" / f"{datetime.now(UTC):%Y-%m-%d}-filters-paired.json"
    out.write_text(json.dumps({"date": str(datetime.now(UTC)), "rounds": args.rounds,
                               "combinations": results}, indent=1) + "\n")  # fmt: skip
    print("\n| filter | sort | first page: steps / single plan ms | deep page ms |")
    print("|---|---|---|---|")
    for entry in results:
        first, deep = entry["first"], entry["deep"]
        deep_text = "-" if deep is None else f"{deep['stepped']} / {deep['single']}"
        print(f"| {entry['filter']} | {entry['sort']} | {first['stepped']} / {first['single']}"
              f" ({first['ratio']}x) | {deep_text} |")  # fmt: skip


if __name__ == "__main__":
    main()
