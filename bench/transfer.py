"""Export and import at scale: `python -m bench.transfer --rows 1000000`.

In one run, on a fresh itemsapi_bench database (DATABASE_URL's server, or the embedded one) and a
2-worker `itemsapi serve` as the image runs it:
1. writes N items as NDJSON (the import body) and the same items as CSV (for psql);
2. imports the NDJSON with POST /v1/items/import (curl --data-binary), timed;
3. empties the table and loads the CSV with psql's \\copy into the same columns, timed;
4. empties it, imports the NDJSON with `itemsapi import`, timed;
5. exports every row with GET /v1/items/export (curl, to /dev/null), as NDJSON and as CSV,
   best of --repeat, against psql running the same COPY to /dev/null, and reads each worker's
   peak resident set (VmHWM) afterwards;
6. checks at that size what tests/e2e/test_transfer.py checks at a fifth of it (too slow for the
   suite): an NDJSON export read whole has every row once, in order, and its complete marker;
   an import whose line N-1 is bad stores nothing and its 422 names that line; an import whose
   connection is cut halfway stores nothing.
Prints the figures as one JSON object, the checks' outcomes among them; exits 1 if one failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psycopg
from psycopg import sql

from bench.product import new_token
from bench.run import database_url, free_port, stop, wait_for
from itemsapi.auth.scopes import SCOPES
from itemsapi.db import list_query, migrations
from itemsapi.db.export_rows import CSV, NDJSON, NDJSON_LINE, export_sql
from itemsapi.db.list_query import ListQuery

ROOT = Path(__file__).resolve().parent.parent
FORMATS = {"ndjson": NDJSON, "csv": CSV}


def psql() -> str:
    import pgserver

    return shutil.which("psql") or str(Path(pgserver.__file__).parent / "pginstall/bin/psql")


def write_files(rows: int, folder: Path) -> tuple[Path, Path]:
    ndjson, table = folder / "items.ndjson", folder / "items.csv"
    with ndjson.open("wb") as lines, table.open("w", newline="") as records:
        writer = csv.writer(records)
        for n in range(rows):
            item = {
                "name": f"item {n}", "description": "imported by the benchmark " * 2,
                "price": (n % 10_000) / 4, "quantity": n % 500,
                "attributes": {"color": ("red", "green", "blue")[n % 3], "n": n},
            }  # fmt: skip
            lines.write(orjson.dumps(item) + b"\n")
            writer.writerow(
                [item["name"], item["description"], item["price"], item["quantity"],
                 orjson.dumps(item["attributes"]).decode()]
            )  # fmt: skip
    return ndjson, table


def psql_copy(fmt: str) -> str:
    """psql's \\copy of what an export of every item sends (NDJSON: the same lines, as COPY sends
    text unchanged), to /dev/null."""
    shape = list_query.list_shape(ListQuery())
    if fmt == CSV:
        copy = export_sql(CSV, *shape).as_string().removeprefix("COPY ")
        copy = copy.replace(" TO STDOUT", " TO '/dev/null'")
    else:
        lines = sql.SQL("SELECT {} FROM ({}) AS r").format(NDJSON_LINE, list_query.list_sql(*shape))
        copy = (
            f"({lines.as_string()}) TO '/dev/null' (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        )
    return "\\copy " + copy.replace("%(limit)s", "NULL")


def with_bad_line(ndjson: Path, line: int) -> Path:
    """A copy of the import file whose line `line` (from 1) breaks a POST's rules."""
    bad = ndjson.with_name("bad.ndjson")
    with ndjson.open("rb") as source, bad.open("wb") as target:
        for number, text in enumerate(source, 1):
            target.write(b'{"name": "bad", "quantity": -1}\n' if number == line else text)
    return bad


def export_has_every_row_once(base: str, auth: list[str], rows: int) -> bool:
    """An NDJSON export read whole: ids 1..rows, each once, in order, then a complete marker."""
    export = subprocess.Popen(
        ["curl", "-sf", *auth, "-H", "Accept: application/x-ndjson", f"{base}/v1/items/export"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    expected, marker = 1, None
    for line in export.stdout:
        if line.startswith(b'{"id":'):  # the id is the first member: no need to parse the rest
            if int(line[6 : line.index(b",")]) != expected:
                export.kill()
                return False
            expected += 1
        else:
            marker = orjson.loads(line)
    export.wait()
    return expected == rows + 1 and marker == {"export": {"complete": True, "rows": rows}}


def import_cut_halfway(base: str, token: str, ndjson: Path) -> None:
    """POST the import's head and half its body, then close the connection."""
    size = ndjson.stat().st_size
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock, ndjson.open("rb") as body:
        sock.sendall(
            f"POST /v1/items/import HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}"
            f"\r\nContent-Type: application/x-ndjson\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        sent = 0
        while sent < size // 2:
            chunk = body.read(1 << 20)
            sock.sendall(chunk)
            sent += len(chunk)
        time.sleep(1)


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


def timed(command: list[str], **kwargs: object) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - started


def empty(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE items RESTART IDENTITY")
        conn.execute("VACUUM ANALYZE items")


def peak_rss_mib(pid: int) -> float:
    peaks = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            status = Path(f"/proc/{child}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]) / 1024)
    return round(max(peaks), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="exports timed (the best kept)")
    args = parser.parse_args()
    url = database_url("itemsapi_bench_transfer")
    migrations.migrate(url)
    token = new_token(url, "bench", list(SCOPES))
    folder = Path(tempfile.mkdtemp(prefix="itemsapi-transfer-"))
    ndjson, table = write_files(args.rows, folder)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "ITEMSAPI_WORKERS": "2",
           "ITEMSAPI_LOG_LEVEL": "WARNING"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "itemsapi", "serve", "--port", str(port)], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    auth = ["-H", f"Authorization: Bearer {token}"]
    figures: dict[str, object] = {"rows": args.rows, "ndjson_mib": ndjson.stat().st_size >> 20}
    try:
        wait_for(f"{base}/ready")
        seconds = timed(
            ["curl", "-sf", "-o", "/dev/null", *auth, "-H", "Content-Type: application/x-ndjson",
             "--data-binary", f"@{ndjson}", f"{base}/v1/items/import"]
        )  # fmt: skip
        figures["import_http_rows_s"] = round(args.rows / seconds)
        empty(url)
        copy = f"\\copy items (name, description, price, quantity, attributes) from '{table}' csv"
        seconds = timed([psql(), url, "-qc", copy])
        figures["psql_copy_rows_s"] = round(args.rows / seconds)
        empty(url)
        seconds = timed(
            [sys.executable, "-m", "itemsapi", "import", str(ndjson)], env=env,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        figures["import_cli_rows_s"] = round(args.rows / seconds)
        for fmt, accept in (("ndjson", "application/x-ndjson"), ("csv", "text/csv")):
            command = ["curl", "-sf", "-o", "/dev/null", *auth, "-H", f"Accept: {accept}",
                       f"{base}/v1/items/export"]  # fmt: skip
            seconds = min(timed(command) for _ in range(args.repeat))
            figures[f"export_{fmt}_rows_s"] = round(args.rows / seconds)
            # The same rows by psql to /dev/null: what PostgreSQL alone takes to send them.
            copy = psql_copy(FORMATS[fmt])
            seconds = min(timed([psql(), url, "-qc", copy]) for _ in range(args.repeat))
            figures[f"psql_copy_out_{fmt}_rows_s"] = round(args.rows / seconds)
        figures["worker_peak_rss_mib"] = peak_rss_mib(server.pid)
        checks = figures["checks"] = {}
        checks["export_every_row_once"] = export_has_every_row_once(base, auth, args.rows)
        bad = with_bad_line(ndjson, args.rows - 1)
        started = time.perf_counter()
        answer = subprocess.run(
            ["curl", "-s", *auth, "-H", "Content-Type: application/x-ndjson",
             "--data-binary", f"@{bad}", f"{base}/v1/items/import"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        figures["import_bad_line_seconds"] = round(time.perf_counter() - started, 1)
        errors = orjson.loads(answer).get("errors")
        checks["bad_line_named"] = [(e["line"], e["field"]) for e in errors or []] == [
            (args.rows - 1, "quantity")
        ]
        checks["bad_line_stores_nothing"] = count(url) == args.rows
        import_cut_halfway(base, token, ndjson)
        time.sleep(2)  # the server notices the connection gone and rolls back
        checks["cut_import_stores_nothing"] = count(url) == args.rows
        figures["import_vs_psql"] = round(
            figures["import_http_rows_s"] / figures["psql_copy_rows_s"],
            2,  # type: ignore[operator]
        )
    finally:
        stop(server)
        shutil.rmtree(folder)
    print(json.dumps(figures))
    if not all(figures.get("checks", {}).values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
