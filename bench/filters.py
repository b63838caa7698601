"""Filters and search at a million rows: `python -m bench.filters [--rows 1000000]`.

Loads the rows with COPY into a schema without migration 0009, applies 0009 on the loaded table
(its batched backfill and concurrent index builds, timed), then, for every documented filter
with every sort order, reports the plan's access path on items and the latency of the list's
own statement (sized.list_sql, what GET /v1/items runs) for the first page and for a page deep
in the walk (its keyset condition, as the cursor gives it): p50 and p99 with 8 clients at once,
each on its own connection. HTTP's own cost is `make bench`'s. Then pgbench measures what the
search trigger and the new indexes cost an INSERT: the API's own statement against the schema
before 0009 and after it, in two databases on the same server, interleaved.
Results: bench/results/<date>-filters.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from werkzeug.datastructures import MultiDict

from bench.run import HERE, ROOT, WORDS, database_url, pgbench, pgbench_statements, progress
from itemsapi.db import list_query, migrations, sized
from itemsapi.db.statements import text
from itemsapi.serve import embedded
from itemsapi.web.listing import parse_list_query

CLIENTS = 8
DATABASE = "itemsapi_bench_filters"
SORTS = ["id", "name", "price", "created_at", "updated_at"]
START = datetime(2026, 1, 1, tzinfo=UTC)
# One example of each documented filter (docs/api.md), values chosen for a million rows.
FILTERS: dict[str, dict[str, str]] = {
    "none": {},
    "ids (40)": {"ids": ",".join(str(n * 24_989) for n in range(1, 41))},
    "price range": {"min_price": "100", "max_price": "110"},
    "has_price=true": {"has_price": "true"},
    "has_price=false": {"has_price": "false"},
    "quantity range": {"min_quantity": "5", "max_quantity": "6"},
    "created range (1 week)": {
        "created_from": "2026-03-01T00:00:00Z", "created_before": "2026-03-08T00:00:00Z"
    },
    "updated_from (last week)": {"updated_from": "2026-12-24T00:00:00Z"},
    "attributes (color)": {"attributes": '{"color": "teal"}'},
    "attr.sku (one)": {"attr.sku": "SKU-00424242"},
    "search (word)": {"search": "zephyr17"},
    "search (phrase)": {"search": '"amber oak"'},
    "search (or, -word)": {"search": "cedar3 or fern9 -river5"},
}  # fmt: skip
COLORS = ["red", "green", "blue", "black", "white", "amber", "teal"]
# Descriptions draw from a vocabulary of this many words, so that one matches about 0.1 % of
# the rows, as a searched word does in a real catalogue; names from bench.run's WORDS, so
# that those match about 5 % (the common-word case).
VOCABULARY = [f"{word}{n}" for n in range(250) for word in WORDS[:40]]
_SCAN = re.compile(
    r"(Index Only Scan(?: Backward)? using \w+|Index Scan(?: Backward)? using \w+"
    r"|Bitmap Index Scan on \w+|Seq Scan on items)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="(1000000)")
    parser.add_argument("--repeats", type=int, default=12, help="statements per client (12)")
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="(10)")
    parser.add_argument("--inserts-only", action="store_true", help="only the pgbench part")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the rows a previous run loaded; no pgbench")  # fmt: skip
    args = parser.parse_args()
    if args.reuse:
        url = reused_url()
        results = {"rows": args.rows, "clients": CLIENTS, "date": str(datetime.now(UTC)),
                   "combinations": measure(url, args.repeats)}  # fmt: skip
        out = HERE / "results" / f"{datetime.now(UTC):%Y-%m-%d}-filters-measured.json"
        out.write_text(json.dumps(results, indent=1) + "\n")
        return
    if args.inserts_only:
        cost = insert_cost(database_url(DATABASE), args.pgbench_seconds)
        print(json.dumps(cost, indent=1))
        report({"rows": 0, "migration_0009_seconds": None, "combinations": [],
                "pgbench_insert": cost})  # fmt: skip
        return
    url = database_url(DATABASE)
    results: dict[str, Any] = {
        "rows": args.rows,
        "clients": CLIENTS,
        "date": str(datetime.now(UTC)),
    }
    results["migration_0009_seconds"] = load(url, args.rows)
    results["combinations"] = measure(url, args.repeats)
    results["pgbench_insert"] = insert_cost(url, args.pgbench_seconds)
    out = HERE / "results" / f"{datetime.now(UTC):%Y-%m-%d}-filters.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    report(results)
    print(f"\nwritten to {out}", file=sys.stderr)


def reused_url() -> str:
    """The database a previous run loaded (database_url's, without emptying it)."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        return embedded.start(ROOT / ".itemsapi" / "bench", database=DATABASE)
    return urlunsplit(urlsplit(base)._replace(path=f"/{DATABASE}"))


def before_0009() -> Path:
    """A migrations folder of every shipped migration before 0009."""
    folder = Path(tempfile.mkdtemp(prefix="itemsapi-bench-migrations-"))
    for path in migrations.migrations_folder().iterdir():
        if migrations.FILE_NAME.fullmatch(path.name) and int(path.name[:4]) < 9:
            shutil.copy(path, folder)
    return folder


def load(url: str, rows: int) -> float:
    """The rows by COPY into the schema before 0009; then 0009 applied; its seconds."""
    migrations.migrate(url, before_0009())
    rng = random.Random(31)
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        columns = "name, description, price, quantity, attributes, created_at, updated_at"
        with cur.copy(f"COPY items ({columns}) FROM STDIN") as copy:
            for n in range(1, rows + 1):
                created = START + timedelta(seconds=n * 30)  # a year over a million rows
                copy.write_row((
                    f"Item {n} {rng.choice(WORDS)} {rng.choice(WORDS)}",
                    " ".join(rng.choices(VOCABULARY, k=rng.randint(8, 24))),
                    None if rng.random() < 0.05 else rng.randint(0, 99999) / 100,
                    rng.randint(0, 500),
                    json.dumps({"color": rng.choice(COLORS), "sku": f"SKU-{n:08d}"}),
                    created,
                    created + timedelta(days=rng.randint(0, 7)),
                ))  # fmt: skip
                if n % 20_000 == 0 or n == rows:
                    progress("loading items", n, rows, started)
        conn.commit()
    print(file=sys.stderr)
    started = time.perf_counter()
    migrations.migrate(url)
    seconds = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE items")
    return round(seconds, 1)


def statement(args: dict[str, str], deep_key: Any = None) -> tuple[str, dict[str, Any], Any]:
    query = parse_list_query(MultiDict(args))
    if deep_key is not None:
        query = list_query.ListQuery(
            query.limit, query.sort, query.descending, deep_key, query.filters
        )
    params = {**list_query.list_params(query), "budget": 4 * 1024 * 1024}
    return text(sized.list_sql, *list_query.list_shape(query)), params, query


def deep_key(conn: psycopg.Connection, args: dict[str, str]) -> Any:
    """The keyset position halfway through the matches (at most 50,000 rows in): a page that
    deep in the walk starts there. None without a match."""
    _, params, query = statement({**args, "limit": "1"})
    shape = list_query.list_shape(query)  # as one statement for every page: LIMIT replaceable
    inner = list_query.list_sql(*shape, measured=True, one_page=False).as_string()
    counted = inner.replace("LIMIT %(limit)s", "LIMIT 100001")
    counting = sql.SQL("SELECT count(*) AS n FROM ({}) AS m").format(sql.SQL(counted))
    matches = conn.execute(counting, params).fetchone()["n"]
    at = inner.replace("LIMIT %(limit)s", "OFFSET %(offset)s LIMIT 1")
    row = conn.execute(at, {**params, "offset": min(matches // 2, 50_000)}).fetchone()
    return None if row is None else list_query.sort_key(row, query.sort)


def timed(url: str, text_: str, params: dict[str, Any], repeats: int) -> list[float]:
    """Milliseconds of each run of the statement, CLIENTS connections at once."""
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client() -> None:
        with psycopg.connect(url, row_factory=dict_row, prepare_threshold=1) as conn:
            conn.execute(text_, params).fetchall()  # prepared, as the pool's connections are
            start.wait()
            mine = []
            for _ in range(repeats):
                began = time.perf_counter()
                conn.execute(text_, params).fetchall()
                mine.append((time.perf_counter() - began) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def percentiles(times: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p99": round(cuts[98], 2)}


def measure(url: str, repeats: int) -> list[dict[str, Any]]:
    found = []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        for name, filters in FILTERS.items():
            sorts = SORTS + (["-relevance"] if "search" in filters else [])
            for sort in sorts:
                args = {**filters, "sort": sort, "limit": "20"}
                text_, params, _ = statement(args)
                plan = "\n".join(r["QUERY PLAN"] for r in conn.execute("EXPLAIN " + text_, params))
                key = deep_key(conn, args)
                first = percentiles(timed(url, text_, params, repeats))
                deep = None
                if key is not None:
                    deep_text, deep_params, _ = statement(args, key)
                    deep = percentiles(timed(url, deep_text, deep_params, repeats))
                entry = {"filter": name, "sort": sort, "access": sorted(set(_SCAN.findall(plan))),
                         "first_ms": first, "deep_ms": deep}  # fmt: skip
                found.append(entry)
                print(json.dumps(entry), file=sys.stderr)
    return found


# What each part of 0009 adds to an INSERT: the schema before it, then 0009 less some indexes.
INSERT_SCHEMAS = {
    "before_0009": None,
    "trigger_only": ("items_search_idx", "items_attributes_idx", "items_quantity_id_idx"),
    "trigger_and_search_index": ("items_attributes_idx", "items_quantity_id_idx"),
    "with_0009": (),
}


def insert_cost(url: str, seconds: int) -> dict[str, Any]:
    """pgbench INSERTs (the API's statement) into empty databases on this server, one per
    schema of INSERT_SCHEMAS, alternately, three rounds each, commits not waiting for the
    WAL flush."""
    base = urlsplit(url)
    urls = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for label in INSERT_SCHEMAS:
            name = f"itemsapi_bench_{label}"
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
            urls[label] = urlunsplit(base._replace(path=f"/{name}"))
    for label, dropped in INSERT_SCHEMAS.items():
        if dropped is None:
            migrations.migrate(urls[label], before_0009())
            continue
        migrations.migrate(urls[label])
        with psycopg.connect(urls[label], autocommit=True) as conn:
            for index in dropped:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
    _, insert = pgbench_statements(urls["with_0009"])
    options = argparse.Namespace(rows=1, duration=seconds)
    # Commits not waiting for the WAL flush: what is measured is the work of each INSERT (the
    # trigger, the indexes), not the disk's flush rate, which would hide it.
    os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    rounds: dict[str, list[float]] = {label: [] for label in urls}
    for _ in range(3):
        for label, target in urls.items():
            rounds[label].append(pgbench(target, insert, options)["rps"])
    median = {label: statistics.median(values) for label, values in rounds.items()}
    change = {
        label: round(100 * (value / median["before_0009"] - 1), 1)
        for label, value in median.items()
    }
    return {"rounds_rps": rounds, "median_rps": median, "change_percent": change}


def report(results: dict[str, Any]) -> None:
    print(f"rows: {results['rows']}, migration 0009 on them: {results['migration_0009_seconds']} s")
    print("\n| filter | sort | access path on items | first p50 / p99 ms | deep p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for e in results["combinations"]:
        deep = e["deep_ms"]
        deep_text = f"{deep['p50']} / {deep['p99']}" if deep else "(one page)"
        access = ", ".join(e["access"])
        first = e["first_ms"]
        print(f"| {e['filter']} | {e['sort']} | {access} | {first['p50']} / {first['p99']} |"
              f" {deep_text} |")  # fmt: skip
    cost = results["pgbench_insert"]
    print("\n| schema | pgbench INSERT tps (median of 3) | change |\n|---|---|---|")
    for label, tps in cost["median_rps"].items():
        print(f"| {label} | {tps} | {cost['change_percent'][label]:+} % |")


if __name__ == "__main__":
    main()
