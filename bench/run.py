"""The benchmark: `make bench` (or `python bench/run.py --help`).

Starts PostgreSQL (the embedded one, or DATABASE_URL), loads items, starts the API the way the
image does (`itemsapi serve`, 2 workers x 4 threads, JSON access log on), drives it with wrk from
a separate process, and measures in the same run the two ceilings: pgbench running the same SQL
with no HTTP in front, and a bare WSGI callable under the same Granian settings. Prints a table
and writes bench/results/<date>.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import ClientCursor, sql
from psycopg.types.json import Jsonb
from werkzeug.datastructures import MultiDict

from bench.product import new_token
from bench.product import pgbench as pgbench_program
from itemsapi.auth.scopes import SCOPES
from itemsapi.db import migrations, statements
from itemsapi.serve import embedded
from itemsapi.web import pagination
from itemsapi.web.listing import parse_list_query

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PRODUCTION_ENV = {"ITEMSAPI_WORKERS": "2", "ITEMSAPI_BLOCKING_THREADS": "16"}  # as the Dockerfile
# The row pgbench inserts, as the API would be sent it.
PGBENCH_ROW = {"name": "bench", "description": "created by pgbench", "price": 9.5, "quantity": 3,
               "attributes": {"k": "v"}}  # fmt: skip
WORDS = [
    *("alpha", "amber", "bold", "brisk", "cedar", "coral", "crisp", "dune", "ember", "fern"),
    *("frost", "glade", "harbor", "iris", "jade", "juniper", "lark", "linen", "maple"),
    *("meadow", "nova", "oak", "onyx", "pearl", "pine", "quartz", "raven", "river", "sage"),
    *("slate", "spruce", "storm", "tidal", "topaz", "umber", "velvet", "willow", "zephyr"),
]
COLORS = ["red", "green", "blue", "black", "white", "amber", "teal"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="items to load (100000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--port", type=int, default=0, help="API port (a free one)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    for tool in ("wrk",):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install {tool} (make tools does)")

    url = database_url()
    print(f"# database: {redact(url)}", file=sys.stderr)
    load(url, args.rows)
    results: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "make bench  (python bench/run.py " + " ".join(sys.argv[1:]) + ")",
        "settings": {"rows": args.rows, "duration_s": args.duration,
                     "connections": args.connections, **PRODUCTION_ENV},
        "postgresql": server_version(url),
        "ceilings": {},
        "scenarios": {},
    }  # fmt: skip
    select_by_id, insert = pgbench_statements(url)
    results["ceilings"]["pgbench_get"] = pgbench(url, select_by_id, args)
    results["ceilings"]["pgbench_post"] = pgbench(url, insert, args)
    results["ceilings"]["granian_hello"] = measure_hello(args)
    results["scenarios"] = measure_api(url, args)
    report(results)
    out = args.out or HERE / "results" / f"{results['date'][:10]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"# results written to {out}", file=sys.stderr)


def database_url(name: str = "itemsapi_bench") -> str:
    """A fresh database `name` on DATABASE_URL's server, or on the embedded one (each benchmark
    that may run beside another names its own)."""
    base = os.environ.get("DATABASE_URL") or embedded.start(
        ROOT / ".itemsapi" / "bench", database="postgres", cleanup="stop"
    )
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def load(url: str, rows: int) -> None:
    """The schema (every migration), `rows` items of realistic sizes through COPY with a
    progress bar, and a key with every scope that wrk sends (BENCH_TOKEN; access control is on,
    as by default)."""
    migrations.migrate(url)
    os.environ["BENCH_TOKEN"] = new_token(url, "bench", list(SCOPES))
    rng = random.Random(42)
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY items (name, description, price, quantity, attributes) FROM STDIN"
        ) as copy:
            for n in range(1, rows + 1):
                words = rng.choices(WORDS, k=rng.randint(12, 40))
                price = None if rng.random() < 0.05 else Decimal(rng.randint(0, 99999)) / 100
                attributes = {
                    "color": rng.choice(COLORS),
                    "size": {"w": rng.randint(1, 200), "h": rng.randint(1, 200)},
                    "tags": rng.sample(WORDS, k=3),
                    "sku": f"SKU-{n:08d}",
                }
                name = f"Item {n} {rng.choice(WORDS)} {rng.choice(WORDS)}"
                copy.write_row((name, " ".join(words), price, rng.randint(0, 500),
                                json.dumps(attributes)))  # fmt: skip
                if n % 5000 == 0 or n == rows:
                    progress("loading items", n, rows, started)
        conn.commit()
        conn.execute("ANALYZE items")
    print(file=sys.stderr)


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 40
    filled = int(width * done / total)
    rate = done / max(time.perf_counter() - started, 1e-9)
    bar = "#" * filled + "." * (width - filled)
    print(f"\r{label} [{bar}] {done:>8}/{total} {rate:8.0f}/s", end="", file=sys.stderr)


def pgbench_statements(url: str) -> tuple[str, str]:
    """The API's own SELECT by id and INSERT, from statements.py, so that pgbench
    runs exactly the SQL the API does: the id as a pgbench variable, the new row inlined."""
    select_by_id = statements.select_statement().as_string().replace("%(id)s", ":id")
    row = {**PGBENCH_ROW, "attributes": Jsonb(PGBENCH_ROW["attributes"]), "by": "pgbench"}
    with psycopg.connect(url) as conn:
        insert = ClientCursor(conn).mogrify(statements.insert_statement(), row)
    return select_by_id + ";", insert + ";"


def pgbench(url: str, statement: str, args: argparse.Namespace) -> dict:
    binary = pgbench_program()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(f"\\set id random(1, {args.rows})\n{statement}\n")
    clients = int(PRODUCTION_ENV["ITEMSAPI_WORKERS"]) * int(
        PRODUCTION_ENV["ITEMSAPI_BLOCKING_THREADS"]
    )
    out = subprocess.run(
        [binary, "-n", "-c", str(clients), "-j", "2", "-T", str(args.duration), "-M", "prepared",
         "-f", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    tps = float(re.search(r"tps = ([\d.]+)", out)[1])
    latency = float(re.search(r"latency average = ([\d.]+) ms", out)[1])
    return {"rps": round(tps), "latency_avg_ms": latency, "clients": clients}


def measure_hello(args: argparse.Namespace) -> dict:
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"itemsapi-bench-hello-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--port", str(port),
             "--workers", PRODUCTION_ENV["ITEMSAPI_WORKERS"],
             "--blocking-threads", PRODUCTION_ENV["ITEMSAPI_BLOCKING_THREADS"],
             "--log-level", "info", "bench.hello:app"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_workers(log_path, int(PRODUCTION_ENV["ITEMSAPI_WORKERS"]))
        wait_for(f"http://127.0.0.1:{port}/")
        return wrk(f"http://127.0.0.1:{port}/items/1", None, args, process.pid)
    finally:
        stop(process)
        log_path.unlink()


SCENARIOS = {
    # name: (path, lua script, description)
    "get": ("/", "get.lua", "GET /items/{id}, random ids"),
    "list_first": ("/items?limit=20", None, "GET /items?limit=20, first page"),
    "list_deep": (None, None, "GET /items, deep cursor page, price filter, sort=-price"),
    "post": ("/items", "post.lua", "POST /items"),
    "patch": ("/", "patch.lua", "PATCH /items/{id}, random ids"),
    "put": ("/", "put.lua", "PUT /items/{id}, random ids"),
    "mixed": ("/", "mixed.lua", "80% GET /items/{id}, 20% PATCH/POST"),
}


def measure_api(url: str, args: argparse.Namespace) -> dict:
    port = args.port or free_port()
    log_path = Path(tempfile.gettempdir()) / f"itemsapi-bench-{port}.log"
    env = {**os.environ, **PRODUCTION_ENV, "DATABASE_URL": url, "BENCH_ROWS": str(args.rows)}
    with log_path.open("wb") as log:  # the server's stdout: its JSON logs, as in production
        process = subprocess.Popen(
            [sys.executable, "-m", "itemsapi", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_workers(log_path, int(PRODUCTION_ENV["ITEMSAPI_WORKERS"]))
        wait_for(f"{base}/ready")
        results = {}
        access_lines = AccessLines(log_path)
        for name, (path, script, description) in SCENARIOS.items():
            target = base + (path or deep_page(url, args.rows))
            results[name] = {"description": description,
                             **wrk(target, script, args, process.pid),
                             "requests_per_worker": access_lines.requests_per_worker()}  # fmt: skip
            spread = "/".join(map(str, results[name]["requests_per_worker"]))
            print(f"# {name:11s} {results[name]['rps']:>7} rps ({spread})", file=sys.stderr)
        return results
    finally:
        stop(process)
        print(f"# server log: {log_path}", file=sys.stderr)


def deep_page(url: str, rows: int) -> str:
    """A page far into `sort=-price` with a price filter, via a cursor like one the API issues."""
    min_price = Decimal("100")
    with psycopg.connect(url) as conn:
        price, item_id = conn.execute(
            "SELECT COALESCE(price, -1), id FROM items WHERE price >= %s"
            " ORDER BY COALESCE(price, -1) DESC, id DESC OFFSET %s LIMIT 1",
            (min_price, rows // 2),
        ).fetchone()
    # The cursor names the filters it was made for, as the API parses them.
    page = MultiDict({"limit": "20", "sort": "-price", "min_price": str(min_price)})
    cursor = pagination.encode("-price", (price, item_id), parse_list_query(page).filters)
    return f"/items?limit=20&sort=-price&min_price={min_price}&cursor={cursor}"


def wrk(url: str, script: str | None, args: argparse.Namespace, server_pid: int) -> dict:
    command = wrk_command(url, script, args.connections, args.duration)
    env = {**os.environ, "BENCH_ROWS": str(args.rows)}
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    peak = 0
    while runner.poll() is None:
        peak = max(peak, tree_rss_kib(server_pid))
        time.sleep(0.2)
    return {**wrk_result(runner.stdout.read()), "peak_rss_mib": round(peak / 1024, 1)}


def wrk_command(url: str, script: str | None, connections: int, seconds: int) -> list[str]:
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if script:
        command += ["-s", str(HERE / "wrk" / script)]
    token = os.environ.get("BENCH_TOKEN")
    if token:  # wrk.format adds -H headers to every request a script makes
        command += ["-H", f"Authorization: Bearer {token}"]
    return [*command, url]


def wrk_result(out: str) -> dict:
    return {
        "requests": int(re.search(r"(\d+) requests in", out)[1]),
        "rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])),
        "p50_ms": to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1]),
        "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1]),
        "errors": errors(out),
    }


def errors(out: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return (int(non_2xx[1]) if non_2xx else 0) + (
        sum(map(int, socket_errors.groups())) if socket_errors else 0
    )


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return round(float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 3)


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its children (Granian's workers), from /proc."""
    sizes = (re.search(r"VmRSS:\s+(\d+)", status) for status in tree_proc_files(pid, "status"))
    return sum(int(size[1]) for size in sizes if size)  # a zombie has no VmRSS


def tree_proc_files(pid: int, name: str) -> Iterator[str]:
    """/proc/<pid>/<name> of a process and each of its descendants that is still there."""
    for process in process_tree(pid):
        try:
            yield Path(f"/proc/{process}/{name}").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants, from /proc (those that exited meanwhile left out)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(current)
        pending.extend(map(int, children))
    return found


def report(results: dict) -> None:
    get_ceiling = results["ceilings"]["pgbench_get"]["rps"]
    post_ceiling = results["ceilings"]["pgbench_post"]["rps"]
    http_ceiling = results["ceilings"]["granian_hello"]["rps"]
    print(f"\n{results['machine']}, PostgreSQL {results['postgresql']}, {results['date']}")
    print(f"wrk -c{results['settings']['connections']} -d{results['settings']['duration_s']}s, "
          f"{results['settings']['rows']} items\n")  # fmt: skip
    columns = ["scenario", "req/s", "p50 ms", "p99 ms", "errors", "peak RSS MiB",
               "of DB ceiling", "of HTTP ceiling"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name, r in results["scenarios"].items():
        db_ceiling = post_ceiling if name in ("post", "patch", "put") else get_ceiling
        cells = [name, r["rps"], r["p50_ms"], r["p99_ms"], r["errors"], r["peak_rss_mib"],
                 f"{r['rps'] / db_ceiling:.2f}", f"{r['rps'] / http_ceiling:.2f}"]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    print(f"| ceiling: pgbench GET SQL | {get_ceiling} | | | | | | |")
    print(f"| ceiling: pgbench POST SQL | {post_ceiling} | | | | | | |")
    print(f"| ceiling: Granian bare WSGI | {http_ceiling} | "
          f"{results['ceilings']['granian_hello']['p50_ms']} | "
          f"{results['ceilings']['granian_hello']['p99_ms']} | | | | |")  # fmt: skip


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_workers(log_path: Path, count: int, timeout: float = 60) -> None:
    """Until every worker has logged that it started. One answer says only that one worker
    serves, and each Granian worker listens on a socket of its own (SO_REUSEPORT): wrk opens
    its connections once, at the start, and those that arrive before a worker listens all go
    to the others and stay there (seen in 2 runs of 5 that began at the first answer).
    `itemsapi serve` now holds its workers at a start line until all are built, but the
    bare-WSGI server has none, and the wait costs the API's runs nothing."""
    deadline = time.monotonic() + timeout
    while log_path.read_text(errors="replace").count("Started worker-") < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} workers did not start within {timeout}s: see {log_path}")
        time.sleep(0.05)


class AccessLines:
    """The server's access lines (its JSON log), read scenario by scenario."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.offset = log_path.stat().st_size

    def requests_per_worker(self) -> list[int]:
        """Requests each worker answered since the last call, largest first."""
        with self.log_path.open("rb") as log:
            log.seek(self.offset)
            new = log.read()
        complete = new[: new.rfind(b"\n") + 1]  # a line may still be half written
        self.offset += len(complete)
        counts: dict[int, int] = {}
        for line in complete.splitlines():
            if b'"itemsapi.access"' in line:
                pid = json.loads(line)["pid"]
                counts[pid] = counts.get(pid, 0) + 1
        return sorted(counts.values(), reverse=True)


def wait_for(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def redact(url: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]+@", r"://\1:***@", url)


if __name__ == "__main__":
    main()
