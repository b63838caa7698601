"""Traces from a real 2-worker Granian server to an OTLP/HTTP receiver in this process
(bench/otlp_sink.py decodes the protobuf the SDK sends): each request's span is the child of
the caller's traceparent, the wait for the pool and each SQL statement are children of it, a
cache hit reaches no database, and the access lines carry the same trace and span ids."""

from __future__ import annotations

import json
import os
import time

import pytest

from bench.otlp_sink import OtlpSink, ReceivedSpan
from tests.helpers import http, item_payload

pytestmark = pytest.mark.e2e


def traceparent(number: int) -> tuple[str, str, str]:
    """(header, trace id, parent span id): a caller's own span, sampled."""
    trace_id, parent_id = f"{number:032x}", os.urandom(8).hex()
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


@pytest.fixture
def sink():
    sink = OtlpSink().start()
    yield sink
    sink.stop()


def spans_of(sink: OtlpSink, trace_id: str, server_spans: int = 1) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        spans = sink.trace(trace_id)
        if sum(span.kind == "server" for span in spans) >= server_spans:
            time.sleep(0.3)  # the children are exported with it, in the same batch or just after
            return sink.trace(trace_id)
        time.sleep(0.05)
    raise AssertionError(f"no span of trace {trace_id} arrived")


def tree(spans: list[ReceivedSpan], parent_id: str) -> ReceivedSpan:
    """The request's server span, checked to be the caller's child; its children checked to be
    the database's spans."""
    (server,) = [span for span in spans if span.kind == "server"]
    assert server.parent_span_id == parent_id  # the incoming traceparent is honoured
    for child in spans:
        if child is not server:
            assert child.parent_span_id == server.span_id, child
            assert child.attributes["db.system.name"] == "postgresql"
    return server


def test_spans_of_hits_misses_and_writes_from_every_worker(start_server, clean_db, sink):
    server = start_server(
        clean_db, "--workers", "2", OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=sink.endpoint, OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="itemsapi-test",
    )  # fmt: skip
    principal = server.bearer().split("_")[1]  # itemsapi_<key id>_<secret>
    created = http("POST", f"{server.url}/v1/items", item_payload())
    location = server.url + created.headers["location"]

    seen: dict[str, tuple[str, str]] = {}  # cache outcome -> (trace id, parent span id)
    deadline = time.monotonic() + 20
    # Until both a miss and a hit, and spans from both workers: which worker takes a connection
    # is the kernel's choice, and each worker's spans arrive in its own batches.
    for number in range(1, 1000):
        header, trace_id, parent_id = traceparent(number)
        got = http("GET", location, headers={"traceparent": header, "tracestate": "vendor=1"})
        assert got.status == 200
        seen.setdefault(got.headers["x-cache"], (trace_id, parent_id))
        workers = {span.resource["process.pid"] for span in sink.spans}
        if ({"hit", "miss"} <= seen.keys() and len(workers) == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert {"hit", "miss"} <= seen.keys()
    assert len({span.resource["process.pid"] for span in sink.spans}) == 2  # both workers trace

    trace_id, parent_id = seen["miss"]
    missed = spans_of(sink, trace_id)
    server_span = tree(missed, parent_id)
    assert server_span.name == "GET /v1/items/{item_id}"
    assert server_span.resource["service.name"] == "itemsapi-test"
    assert server_span.attributes["http.route"] == "/v1/items/{item_id}"
    assert server_span.attributes["http.response.status_code"] == 200
    assert server_span.attributes["enduser.id"] == principal
    assert server_span.attributes["itemsapi.cache"] == "miss"
    names = sorted(span.name for span in missed if span is not server_span)
    assert "pool wait" in names
    assert "SELECT" in names  # the item read, its text without any value
    # The item's read (a key may be looked up too while the worker's key table is loading).
    reads = [span.attributes["db.query.text"] for span in missed if span.name == "SELECT"]
    assert any("FROM items" in text for text in reads), reads

    trace_id, parent_id = seen["hit"]
    hit = spans_of(sink, trace_id)
    assert tree(hit, parent_id).attributes["itemsapi.cache"] == "hit"
    assert len(hit) == 1  # served from the cache: no pool, no statement

    header, trace_id, parent_id = traceparent(1000)
    tag = http("GET", location).headers["etag"]
    patched = http(
        "PATCH", location, {"price": 3},
        {"traceparent": header, "If-Match": tag, "Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert patched.status == 200
    written = spans_of(sink, trace_id)
    server_span = tree(written, parent_id)
    assert server_span.name == "PATCH /v1/items/{item_id}"
    statements = [span for span in written if span.kind == "client"]
    assert statements  # the update, as a child of the request
    assert all(span.attributes["db.query.text"] for span in statements)

    # Every access line of a traced request names its trace and its server span.
    lines = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    access = {
        line["trace_id"]: line for line in lines
        if line.get("logger") == "itemsapi.access" and "trace_id" in line
    }  # fmt: skip
    assert access[trace_id]["span_id"] == server_span.span_id
    assert access[trace_id]["method"] == "PATCH"
    assert access[seen["miss"][0]]["status"] == 200
