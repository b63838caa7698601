"""What announcing writes to the read caches (sql/migrations/0002_items_notify.sql) costs
PostgreSQL: pgbench runs one-row INSERTs and UPDATEs three ways, alternating so that the
machine's drift falls on all: `plain`, the baseline schema without the triggers; `outside`, a
writer such as psql, whose write NOTIFYs from the trigger inside its transaction; `api`, as the
API writes: the trigger skips its session and it announces after commit, asynchronously.

    python -m bench.notify_cost [--seconds 8] [--rounds 3] [--clients 8]

DATABASE_URL's server if set, else the embedded one; each database is recreated.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.product import pgbench
from itemsapi.db import migrations
from itemsapi.serve import embedded

ROOT = Path(__file__).resolve().parents[1]
INSERT = (
    "INSERT INTO items (name, description, price, quantity, attributes)"
    " VALUES ('bench', 'created by pgbench', 9.5, 3, '{\"k\":\"v\"}') RETURNING id \\gset\n"
)
UPDATE = (
    "\\set id random(1, 10000)\n"
    "UPDATE items SET quantity = quantity + 1, version = version + 1 WHERE id = :id RETURNING *;\n"
)
ANNOUNCE = "SELECT itemsapi_announce_items(ARRAY[:id]::bigint[]);\n"
SCRIPTS = {"insert": INSERT, "update": UPDATE}
WAYS = ("plain", "outside", "api")
API_SESSION = "-c itemsapi.announce=after_commit"


def fresh(server: str, name: str, with_triggers: bool) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migrations.baseline_path().read_text())
    if with_triggers:
        migrations.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) SELECT 'n' || i FROM generate_series(1, 10000) i")
    return url


def tps(url: str, script: Path, args: argparse.Namespace, options: str = "") -> float:
    out = subprocess.run(
        [pgbench(), "-n", "-c", str(args.clients), "-j", "2",
         "-T", str(args.seconds), "-M", "prepared", "-f", str(script), url],
        capture_output=True, text=True, check=True, env={**os.environ, "PGOPTIONS": options},
    ).stdout  # fmt: skip
    return float(re.search(r"^tps = ([0-9.]+)", out, re.M)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or embedded.start(
        ROOT / ".itemsapi" / "bench", database="postgres", cleanup="stop"
    )
    plain = fresh(server, "notify_cost_plain", False)
    migrated = fresh(server, "notify_cost_triggers", True)
    with tempfile.TemporaryDirectory() as folder:
        for kind, text in SCRIPTS.items():
            scripts = {way: Path(folder) / f"{kind}-{way}.sql" for way in WAYS}
            for way, script in scripts.items():
                script.write_text(text + (ANNOUNCE if way == "api" else ""))
            runs = {
                "plain": lambda s=scripts["plain"]: tps(plain, s, args),
                "outside": lambda s=scripts["outside"]: tps(migrated, s, args),
                "api": lambda s=scripts["api"]: tps(migrated, s, args, API_SESSION),
            }
            ratios: dict[str, list[float]] = {"outside": [], "api": []}
            for n in range(args.rounds):
                order = WAYS[n % 3 :] + WAYS[: n % 3]
                result = {way: runs[way]() for way in order}
                for way in ratios:
                    ratios[way].append(result[way] / result["plain"])
                print(f"{kind} round {n + 1}: " + ", ".join(
                    f"{way} {result[way]:.0f} tps" for way in WAYS), flush=True)  # fmt: skip
            for way, values in ratios.items():
                ratio = statistics.median(values)
                print(f"{kind} {way} / plain, median of {args.rounds}: {ratio:.3f}")


if __name__ == "__main__":
    main()
