"""Schemathesis hooks for this API (loaded through SCHEMATHESIS_HOOKS by tests/e2e).

Two request parts carry tokens only the server can issue: the list `cursor` (opaque, made for one
sort order) and `If-Match` (the item's current ETag). Any string fits their schema, so generated
values are refused, rightly (400 and 412), and positive_data_acceptance would report "valid data
rejected". Instead of counting 400/412 as acceptance everywhere, which would hide real
rejections, the generated tokens are dropped before each call (`If-Match: *` is kept: it is
meaningful without a token). Both behaviours have tests of their own in the suite
(tests/integration/test_list.py, tests/integration/test_write.py, tests/e2e/test_server.py).

A precondition header whose value is not ASCII never reaches the app: Granian hands such a
value over as an empty string, which is a valid (empty) list of tags, so the request is
answered as if it named none. Such values are dropped too; what the app does see is read
strictly (tests/integration/test_http_details.py).

`Prefer: return=minimal` makes a single item's POST answer 201 without a body, which OpenAPI
cannot document beside the 201 that has one (a response has one set of media types), so the
content-type check would call it undocumented: it is dropped from single-item POSTs (batches
keep it: their minimal answer has a body). tests/integration/test_filters.py covers it.

`sort=relevance` ranks the matches of `search`: without one it is 400, a dependency between two
parameters that OpenAPI cannot state; such a sort is dropped (tests/integration/test_filters.py
covers the 400).

An `Idempotency-Key` is the client's promise that one key means one request. Generated keys are
few and short ("0", "A"), so the same key would come back on other bodies, rightly refused (422),
and a valid request would look rejected. A generated key that fits the published pattern is made
unique per call instead; any other is kept, for the server to refuse
(tests/integration/test_idempotency.py covers reuse, replay and in-flight keys).

GET /v1/changes with `wait` long-polls: with nothing changing it answers after `wait` seconds
(up to 30), past the run's request timeout. Generated waits are dropped (tests/integration/
test_changes.py covers long-polls).
"""

from __future__ import annotations

import json
import re
import uuid

import schemathesis

from itemsapi.web.idempotency import KEY_PATTERN


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    if case.query:
        case.query.pop("cursor", None)
        case.query.pop("wait", None)
        if str(case.query.get("sort", "")).endswith("relevance") and "search" not in case.query:
            del case.query["sort"]
    if case.headers and case.method.upper() == "POST" and not isinstance(case.body, list):
        for name in [h for h in case.headers if h.lower() == "prefer"]:
            del case.headers[name]
    if case.headers:
        for name in [h for h in case.headers if h.lower() == "if-match"]:
            if case.headers[name] != "*":
                del case.headers[name]
        for name in [h for h in case.headers if h.lower() == "if-none-match"]:
            if not str(case.headers[name]).isascii():
                del case.headers[name]
        for name in [h for h in case.headers if h.lower() == "idempotency-key"]:
            if re.fullmatch(KEY_PATTERN, case.headers[name]):
                case.headers[name] = str(uuid.uuid4())


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value) -> bytes:
    """POST /v1/items/import's body is one JSON text per line; the document describes the lines
    as an array of items (OpenAPI 3.1 has no schema for a sequence), so an array is sent as its
    elements, one per line, and anything else (negative cases) as a single line."""
    if isinstance(value, bytes):
        return value
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()
