"""Batch create against single POSTs, in one run: `python -m bench.batch`.

One server started as the image runs it (bench/run.py's PRODUCTION_ENV: 2 workers), driven by
wrk at the same connections for the same seconds, first with post.lua (one item per POST), then
with a POST of a JSON array of `--size` copies of the same item (as `Prefer: return=minimal` and
without). Prints items created per second for each and their ratio, and the CPU the server
spent per item. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from bench.paired import cpu_seconds
from bench.run import (
    HERE,
    PRODUCTION_ENV,
    database_url,
    free_port,
    load,
    stop,
    wait_for,
    wait_for_workers,
    wrk_command,
    wrk_result,
)

ITEM = {
    "name": "Item bench cedar maple",
    "description": "created by wrk: alpha amber bold brisk cedar coral crisp dune ember fern",
    "price": 19.99,
    "quantity": 3,
    "attributes": {"color": "red", "size": {"w": 10, "h": 20}, "tags": ["bench", "wrk"]},
}


def batch_script(folder: Path, size: int, minimal: bool) -> Path:
    """A wrk script POSTing an array of `size` items (the same body as post.lua's)."""
    body = json.dumps([ITEM] * size, separators=(",", ":"))
    prefer = 'wrk.headers["Prefer"] = "return=minimal"\n' if minimal else ""
    script = folder / f"post_batch_{size}{'_minimal' if minimal else ''}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{prefer}wrk.body = [=[{body}]=]\n"
    )
    return script


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="items per batch (1000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    url = database_url("itemsapi_bench_batch")
    load(url, 1000)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.gettempdir()) / f"itemsapi-bench-batch-{port}.log"
    env = {**os.environ, **PRODUCTION_ENV, "DATABASE_URL": url}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "itemsapi", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    results = {"settings": vars(args) | {"out": None}, **PRODUCTION_ENV}
    try:
        wait_for_workers(log_path, int(PRODUCTION_ENV["ITEMSAPI_WORKERS"]))
        wait_for(f"{base}/ready")
        with tempfile.TemporaryDirectory() as folder:
            runs = {
                "single": (HERE / "wrk" / "post.lua", 1),
                "batch": (batch_script(Path(folder), args.size, False), args.size),
                "batch_minimal": (batch_script(Path(folder), args.size, True), args.size),
            }
            for name, (script, per_request) in runs.items():
                command = wrk_command(f"{base}/v1/items", str(script), args.connections,
                                      args.duration)  # fmt: skip
                # A batch takes longer than wrk's 2 s default on a loaded machine: not an error.
                command[1:1] = ["--timeout", "60s"]
                before, rows_before = cpu_seconds(process.pid), stored(url)
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                spent = cpu_seconds(process.pid) - before
                result = wrk_result(out)
                # Counted in the table, not from wrk: only what was stored counts.
                items = stored(url) - rows_before
                if items < result["requests"] * per_request:
                    raise SystemExit(f"{name}: {items} items stored for {result['requests']} POSTs")
                results[name] = {
                    **result,
                    "items_per_s": round(items / args.duration),
                    "cpu_us_per_item": round(spent * 1e6 / max(items, 1), 1),
                }
                print(f"# {name:14s} {results[name]}", file=sys.stderr)
    finally:
        stop(process)
    for name in ("batch", "batch_minimal"):
        ratio = results[name]["items_per_s"] / max(results["single"]["items_per_s"], 1)
        results[name]["x_single"] = round(ratio, 1)
        print(f"{name}: {results[name]['items_per_s']} items/s, {ratio:.1f}x single POSTs "
              f"({results['single']['items_per_s']} items/s)")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
