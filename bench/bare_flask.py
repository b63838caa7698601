"""The fixed design with nothing of itemsapi's: Flask views running one statement each through
a psycopg pool (the usual cursor path), served by Granian with the API's settings. No request
ids, metrics, access log, validation, ETags or problem responses: what the design itself
allows on this machine, for comparing the API and the peers against it (docs/performance.md).
GET /items/{id}, GET /items?limit=N (by id), POST /items and PATCH /items/{id} (quantity and
description only: what the peers' load sends), each one statement on the same table and
indexes as the API's; run it in the peers' script in place of the project:

    ../shared/peers/run.sh -t 8 -c 32 --project ".venv/bin/granian --interface wsgi \
        --workers 2 --blocking-threads 4 --port 18094 --no-log bench.bare_flask:app" 18094

Each worker prints about how many items it served by id when it stops, to tell a run that
reached only one worker (these workers have no start line) from one that reached both.
"""

import os
import sys
from multiprocessing.util import Finalize

from flask import Flask, abort, jsonify, request
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

# Written out in full: the returned columns are the API's, price as a JSON number.
SELECT = (
    "SELECT id, name, description, price::float8 AS price, quantity, attributes, version,"
    " created_at, updated_at FROM items WHERE id = %s"
)
LIST = (
    "SELECT id, name, description, price::float8 AS price, quantity, attributes, version,"
    " created_at, updated_at FROM items ORDER BY id LIMIT %s"
)
INSERT = (
    "INSERT INTO items (name, description, price, quantity, attributes)"
    " VALUES (%(name)s, %(description)s, %(price)s, %(quantity)s, %(attributes)s)"
    " RETURNING id, name, description, price::float8 AS price, quantity, attributes, version,"
    " created_at, updated_at"
)
UPDATE = (
    "UPDATE items SET quantity = coalesce(%(quantity)s, quantity),"
    " description = coalesce(%(description)s, description),"
    " version = version + 1, updated_at = now() WHERE id = %(id)s"
    " RETURNING id, name, description, price::float8 AS price, quantity, attributes, version,"
    " created_at, updated_at"
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


@app.get("/items")
def list_items():
    with pool.connection() as conn:
        rows = conn.execute(LIST, (request.args.get("limit", 20, type=int),), prepare=True)
        return jsonify({"items": rows.fetchall()})


@app.post("/items")
def create_item():
    body = request.get_json()
    values = {
        "name": body["name"], "description": body.get("description", ""),
        "price": body.get("price"), "quantity": body.get("quantity", 0),
        "attributes": Jsonb(body.get("attributes", {})),
    }  # fmt: skip
    with pool.connection() as conn:
        row = conn.execute(INSERT, values, prepare=True).fetchone()
    return jsonify(row), 201


@app.patch("/items/<int:item_id>")
def patch_item(item_id: int):
    body = request.get_json()
    values = {
        "id": item_id, "quantity": body.get("quantity"), "description": body.get("description"),
    }  # fmt: skip
    with pool.connection() as conn:
        row = conn.execute(UPDATE, values, prepare=True).fetchone()
    if row is None:
        abort(404)
    return jsonify(row)


def _report() -> None:
    print(f"bare_flask worker {os.getpid()} served {served} items", file=sys.stderr, flush=True)


Finalize(None, _report, exitpriority=10)  # a Granian worker skips atexit; this still runs
