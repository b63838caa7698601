"""One build's app serving a scenario's requests in this process, for bench/instructions.py:
`python bench/instructions_driver.py SCENARIO REQUESTS`, with PYTHONPATH naming the build's
src/ and DATABASE_URL, BENCH_TOKEN and BENCH_ROWS set. The app is called as Granian calls it,
with a WSGI environ per request, so only the server's socket is left out; each environ is a copy
of one built up front, so that building them adds as little as possible to the count.

Run with the build's PYTHONPATH, it imports nothing of this checkout's but the build's itemsapi.
"""

from __future__ import annotations

import io
import os
import random
import sys

from werkzeug.test import EnvironBuilder

from itemsapi.app import create_app

WARM_UP = 50
MERGE_PATCH = {"quantity": 7, "attributes": {"size": {"h": 25}}}  # bench/wrk/patch.lua's
NEW_ITEM = {"name": "bench", "price": 9.5, "quantity": 3, "attributes": {"k": "v"}}


def template(scenario: str, token: str) -> tuple[dict, bytes]:
    """The scenario's request as a WSGI environ, and its body."""
    auth = {"Authorization": f"Bearer {token}"}
    if scenario == "get":
        builder = EnvironBuilder(path="/v1/items/1", headers=auth)
    elif scenario == "list_first":
        builder = EnvironBuilder(path="/v1/items", query_string="limit=20", headers=auth)
    elif scenario == "post":
        builder = EnvironBuilder(path="/v1/items", method="POST", json=NEW_ITEM, headers=auth)
    else:
        builder = EnvironBuilder(
            path="/v1/items/1", method="PATCH", json=MERGE_PATCH, headers=auth,
            content_type="application/merge-patch+json",
        )  # fmt: skip
    environ = builder.get_environ()
    return environ, environ["wsgi.input"].read()


def main() -> None:
    scenario, count = sys.argv[1], int(sys.argv[2])
    rows, token = int(os.environ["BENCH_ROWS"]), os.environ["BENCH_TOKEN"]
    app = create_app({"cache_prime": 0})
    environ, body = template(scenario, token)
    pick = random.Random(7)
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    for _ in range(WARM_UP + count):
        request = dict(environ, **{"wsgi.input": io.BytesIO(body)})
        if scenario in ("get", "patch"):
            request["PATH_INFO"] = f"/v1/items/{pick.randint(1, rows)}"
        answer = app(request, start_response)
        b"".join(answer)
        if hasattr(answer, "close"):
            answer.close()
    failed = [status for status in statuses if not status.startswith(("200", "201"))]
    if failed:
        sys.exit(f"{len(failed)} requests failed, the first with {failed[0]}")


if __name__ == "__main__":
    main()
