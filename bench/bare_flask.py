"""The fixed design with nothing of itemsapi's: one Flask view reading an item through a
psycopg pool (the usual cursor path), served by Granian with the API's settings. No request
ids, metrics, access log, validation, ETags or problem responses: what the design itself
allows on this machine, for comparing the API and the peers against it (README, Performance).
Only GET /items/{id}; run it in the peers' script in place of the project:

    ../shared/peers/run.sh -t 8 -c 32 --project ".venv/bin/granian --interface wsgi \
        --workers 2 --blocking-threads 4 --port 18094 --no-log bench.bare_flask:app" 18094

Each worker prints about how many items it served when it stops, to tell a run that reached only
one worker (these workers have no start line) from one that reached both.
"""

import os
import sys
from multiprocessing.util import Finalize

from flask import Flask, abort, jsonify
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

SELECT = (
    "SELECT id, name, description, price::float8 AS price, quantity, attributes, version,"
    " created_at, updated_at FROM items WHERE id = %s"
)

app = Flask(__name__)
pool = ConnectionPool(
    os.environ["DATABASE_URL"], min_size=4, max_size=8, open=False,
    kwargs={"autocommit": True, "row_factory": dict_row},
)  # fmt: skip
pool.open()  # in each worker: Granian imports this module after it forks
served = 0


@app.get("/items/<int:item_id>")
def get_item(item_id: int):
    global served
    with pool.connection() as conn:
        row = conn.execute(SELECT, (item_id,), prepare=True).fetchone()
    if row is None:
        abort(404)
    served += 1
    return jsonify(row)


def _report() -> None:
    print(f"bare_flask worker {os.getpid()} served {served} items", file=sys.stderr, flush=True)


Finalize(None, _report, exitpriority=10)  # a Granian worker skips atexit; this still runs
