"""Instructions per request of two builds, counted by callgrind: `python -m bench.instructions
BASE [CHANGED] --scenario patch`.

The paired method (bench/paired.py) measures CPU time, which a loaded machine moves by several
percent from round to round; a change worth 1-3% needs a count that load cannot move. Here each
build serves the scenario's requests in one process (bench/instructions_driver.py: its app
called as Granian calls it, without a server or a socket) under `valgrind --tool=callgrind`,
once with `--small` requests and once with `--large`; the difference over the extra requests is
what one request costs, without the start-up. The request thread's count is the view's path;
the total adds the threads that work for it (the write announcer, the listener), whose batching
depends on timing and so moves a little between runs.

Both builds run on one database migrated by this checkout (as bench.paired does). Needs
valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.paired import WORKING_TREE, Build, export
from bench.run import database_url, load

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "instructions_driver.py"
SCENARIOS = ("get", "list_first", "post", "patch")
ROWS = 10_000
_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision to compare against")
    parser.add_argument("changed", nargs="?", default=WORKING_TREE, help="(the working tree)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="patch", help="(patch)")
    parser.add_argument("--small", type=int, default=100, help="requests of the short run (100)")
    parser.add_argument("--large", type=int, default=600, help="requests of the long run (600)")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is missing: apt-get install valgrind")

    with tempfile.TemporaryDirectory(prefix="itemsapi-instructions-") as folder:
        builds = [export(args.base, Path(folder) / "base"),
                  export(args.changed, Path(folder) / "changed")]  # fmt: skip
        url = database_url("itemsapi_instructions")
        load(url, ROWS)  # the schema, the rows and a key (BENCH_TOKEN), as bench.paired's
        counts = {b.label: count(b, url, args, Path(folder)) for b in builds}
    (base_thread, base_all), (thread, total) = counts.values()
    print(f"\n{args.scenario}: instructions per request ({args.large - args.small} requests)")
    for label, (one, every) in counts.items():
        print(f"  {label:>14}: request thread {one:>10,}   all threads {every:>10,}")
    print(f"  changed / base: request thread {thread / base_thread:.3f}, "
          f"all threads {total / base_all:.3f}")  # fmt: skip


def count(build: Build, url: str, args: argparse.Namespace,
          folder: Path) -> tuple[int, int]:  # fmt: skip
    """Instructions per request of one build: the request thread's, and every thread's."""
    runs = {}
    for requests in (args.small, args.large):
        out = folder / f"callgrind.{build.label}.{requests}"
        env = {**os.environ, "PYTHONPATH": str(build.src), "DATABASE_URL": url,
               "BENCH_ROWS": str(ROWS), "ITEMSAPI_LOG_LEVEL": "INFO"}  # fmt: skip
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}", sys.executable, str(DRIVER),
             args.scenario, str(requests)],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        per_thread = {
            part.name: int(_TOTALS.search(part.read_text(errors="replace"))[1])
            for part in folder.glob(f"{out.name}-*")
        }
        runs[requests] = per_thread
    extra = args.large - args.small
    small, large = runs[args.small], runs[args.large]
    return (_first(large) - _first(small)) // extra, (
        sum(large.values()) - sum(small.values())
    ) // extra


def _first(per_thread: dict[str, int]) -> int:
    """The main thread's count: callgrind numbers threads from 1 in order of creation."""
    return per_thread[min(per_thread, key=lambda name: int(name.rsplit("-", 1)[1]))]


if __name__ == "__main__":
    main()
