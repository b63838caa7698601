"""What a change log read from the WAL would cost the database, beside the log's triggers.

The change log's triggers (sql/migrations/0011) write a log row inside every write's
transaction. The alternative measured here leaves the writer alone: with `wal_level=logical`, a
publication of `items` and a logical replication slot (the built-in pgoutput plugin, read through
the SQL interface), one reader decodes committed writes in commit order and copies them into a
log table of the same shape as item_changes (a heap row and the same two indexes), in batches,
outside the writers' transactions. Who wrote travels as a transactional logical message, sent by
a per-row trigger that writes nothing else.

pgbench runs the API's INSERT and PATCH (bench.changes.write_scripts) in rounds, each measuring
three states in rotating order: no log, the triggers' log, the decoded log. The decoded log's
rate counts the time the reader needs after pgbench ends to catch up, so a reader that falls
behind is charged for it. Runs its own embedded PostgreSQL with `wal_level=logical`, in a
temporary directory.

    python -m bench.logical_log --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import pgserver
import psycopg

from bench.changes import switch
from bench.run import load
from bench.write_rounds import Rate, add_pgbench_options, in_rounds, pgbench, ratios, tps

SLOT, PUBLICATION = "itemsapi_bench_log", "itemsapi_bench_items"
SETUP = """
CREATE TABLE decoded_changes (LIKE item_changes INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE decoded_changes ADD PRIMARY KEY (tx, seq);
CREATE INDEX ON decoded_changes (item_id, seq);
CREATE PUBLICATION {publication} FOR TABLE items;
CREATE FUNCTION bench_emit_who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_logical_emit_message(true, 'itemsapi.who', COALESCE(
        NULLIF(current_setting('itemsapi.principal', true), ''), session_user));
    RETURN NULL;
END $$;
CREATE TRIGGER bench_emit_who AFTER INSERT OR UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION bench_emit_who();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_pgbench_options(parser, duration=10)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="itemsapi-logical-"))
    server = start_server(directory)
    try:
        url = server.get_uri()
        load(url, args.rows)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SETUP.format(publication=PUBLICATION))
        results = {"settings": {k: str(v) for k, v in vars(args).items()},
                   **measure(url, args)}  # fmt: skip
        print(json.dumps(results, indent=2))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def start_server(directory: Path) -> pgserver.PostgresServer:
    """The embedded build's PostgreSQL in `directory`, started again with `wal_level=logical`
    (pgserver starts a new server with its defaults, and can only stop it to change them)."""
    server = pgserver.get_server(directory / "pgdata", cleanup_mode="stop")
    server.psql("ALTER SYSTEM SET wal_level = logical")
    server.psql("ALTER SYSTEM SET shared_buffers = '256MB'")
    server.cleanup()
    return pgserver.get_server(directory / "pgdata", cleanup_mode="stop")


def measure(url: str, args: argparse.Namespace) -> dict:
    states = {name: (lambda name=name: enter(url, name, args))
              for name in ("no_log", "triggers", "decoded")}  # fmt: skip
    rounds, scripts = in_rounds(url, args, states)
    summary = {f"{name}_{state}": ratios(rounds, name, state, "no_log")
               for name in scripts for state in ("triggers", "decoded")}  # fmt: skip
    return {"rounds": rounds, "summary": summary}


def enter(url: str, state: str, args: argparse.Namespace) -> Rate:
    """Sets up `state` (which log, if any, records the writes) and returns its rate."""
    switch(url, state == "triggers")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE items {'ENABLE' if state == 'decoded' else 'DISABLE'} "
                     "TRIGGER bench_emit_who")  # fmt: skip
    if state != "decoded":
        return tps(url, args)
    return lambda statement: decoded_rate(url, statement, args)


def decoded_rate(url: str, statement: str, args: argparse.Namespace) -> float:
    """The writes per second once the reader has copied them all: on a slot of its own, with
    the reader's catch-up after pgbench ends counted in."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (SLOT,))
    reader = Reader(url)
    reader.start()
    try:
        count = pgbench(url, statement, args)[1]
        caught_up = time.monotonic()
        reader.catch_up()
        lag = time.monotonic() - caught_up
        print(f"{count} written, {reader.decoded} decoded, {lag:.2f} s behind", file=sys.stderr)
        assert reader.decoded >= count, (reader.decoded, count)
        return count / (args.duration + lag)
    finally:
        reader.stop()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (SLOT,))
            conn.execute("TRUNCATE decoded_changes")


class Reader(threading.Thread):
    """Peeks the slot's decoded changes in batches, copies them into decoded_changes, then
    advances the slot past them (after the copy commits: nothing is lost if it fails); sleeps
    20 ms when there is nothing to read."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self._url = url
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self.decoded = 0

    def run(self) -> None:
        with psycopg.connect(self._url) as conn:
            while not self._stopping.is_set():
                if not self._batch(conn):
                    self._idle.set()
                    time.sleep(0.02)

    def _batch(self, conn: psycopg.Connection) -> bool:
        messages = conn.execute(
            "SELECT lsn, data FROM pg_logical_slot_peek_binary_changes(%s, NULL, 20000, "
            "'proto_version', '1', 'publication_names', %s, 'messages', 'true')",
            (SLOT, PUBLICATION),
        ).fetchall()
        if not messages:
            conn.commit()
            return False
        self._idle.clear()
        copied, pending, xid, who = 0, [], "0", "?"
        with conn.cursor().copy(
            "COPY decoded_changes (tx, item_id, version, operation, changed_by, name, "
            "description, price, quantity, attributes, created_at, updated_at) FROM STDIN"
        ) as copy:
            for _, data in messages:
                kind = data[:1]
                if kind == b"B":
                    xid, pending, who = str(struct.unpack_from(">I", data, 17)[0]), [], "?"
                elif kind == b"M":
                    prefix_end = data.index(b"\0", 10)
                    who = data[prefix_end + 5 :].decode()
                elif kind in OPERATIONS:
                    pending.append((OPERATIONS[kind], tuple_after(data)))
                elif kind == b"C":
                    # items' columns: id, name, description, price, quantity, attributes,
                    # version, created_at, updated_at, ...
                    for operation, row in pending:
                        copy.write_row((xid, row[0], row[6] or "0", operation, who, *row[1:6],
                                        row[7], row[8]))  # fmt: skip
                    copied += len(pending)
        last = messages[-1][0]
        conn.commit()
        conn.execute("SELECT pg_replication_slot_advance(%s, %s)", (SLOT, last))
        # Each read through the SQL interface decodes again from the slot's restart point,
        # which moves only past a logged snapshot of running transactions (every 15 s, or at
        # a checkpoint): without one logged here, each read decodes up to 15 s of WAL again.
        conn.execute("SELECT pg_log_standby_snapshot()")
        conn.commit()
        self.decoded += copied
        return True

    def catch_up(self) -> None:
        self._idle.clear()
        self._idle.wait(600)

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)


OPERATIONS = {b"I": "insert", b"U": "update", b"D": "delete"}


def tuple_after(data: bytes) -> list[str | None]:
    """The column values (text) of an Insert, Update or Delete message's last tuple: after the
    kind and the relation's id, an Update may carry the old tuple ('K' or 'O') before 'N'."""
    offset = 5
    values, offset = read_tuple(data, offset + 1)
    if data[:1] == b"U" and data[5:6] in (b"K", b"O"):
        values, offset = read_tuple(data, offset + 1)
    return values


def read_tuple(data: bytes, offset: int) -> tuple[list[str | None], int]:
    """A TupleData at `offset`: its values, and the offset just after it."""
    (count,) = struct.unpack_from(">h", data, offset)
    offset += 2
    values: list[str | None] = []
    for _ in range(count):
        kind = data[offset : offset + 1]
        offset += 1
        if kind == b"t":
            (length,) = struct.unpack_from(">i", data, offset)
            values.append(data[offset + 4 : offset + 4 + length].decode())
            offset += 4 + length
        else:
            values.append(None)  # 'n' null, 'u' an unchanged TOASTed value
    return values, offset


if __name__ == "__main__":
    main()
