"""GET /v1/items/export and POST /v1/items/import: every item a list query matches, streamed out
as NDJSON or CSV, and items streamed in as NDJSON, all or nothing (db/transfer.py does both).

Neither holds a run slot or a body reader: admission gives each a transfer slot of its own
(admission.TransferSlots), so a long export or a large import never keeps item requests
waiting. An export streams: its response is handed to the server chunk by chunk (telemetry
passes it on as it comes) and its slot goes back when the stream ends. An import is read in
chunks as it arrives, never whole, after its credentials were checked; a body over the import
limit is refused while it streams, and one that declares no length is refused before it does
(without a length a cut connection could not be told from the body's end).

Every export ends with a marker, so that a client tells a complete export from a cut one (a
missing marker: the connection broke): NDJSON's last line is `{"export": {...}}`, CSV's last
record a single field starting `#export`; both say `complete` or why not, and how many rows came.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from flask import Blueprint, Response, request
from werkzeug.exceptions import LengthRequired, NotAcceptable, UnsupportedMediaType

from itemsapi.db import list_query
from itemsapi.db.export_rows import CSV, CSV_COLUMNS, NDJSON
from itemsapi.db.filters import Filters
from itemsapi.db.transfer import ExportEnd
from itemsapi.errors import BadParameter, BodyIncomplete, BodyTooLarge, ItemsError
from itemsapi.web import import_rows, pagination
from itemsapi.web.context import of
from itemsapi.web.deps import deps
from itemsapi.web.listing import parse_list_query
from itemsapi.web.models import ImportResult
from itemsapi.web.responses import model_response

log = logging.getLogger(__name__)
bp = Blueprint("transfer", __name__)

MEDIA_TYPES = {import_rows.NDJSON: NDJSON, "text/csv": CSV}  # the first is the default
READ_BYTES = 64 * 1024  # what an import reads from its body at once


@bp.get("/items/export")
def export_items() -> Response:
    if "limit" in request.args:
        raise BadParameter("limit", "an export has no limit: it sends every matching item")
    media = import_rows.NDJSON  # no Accept header: any type will do
    if request.accept_mimetypes:
        media = request.accept_mimetypes.best_match(list(MEDIA_TYPES))
    if media is None:
        raise NotAcceptable(f"an export is sent as {' or '.join(MEDIA_TYPES)}")
    query = parse_list_query(request.args)
    if query.sort == list_query.RELEVANCE:
        raise BadParameter("sort", "an export is sorted by a column, not by relevance")
    end = ExportEnd()
    chunks = deps().transfers.export(query, MEDIA_TYPES[media], end)
    # The connection and the COPY start here, so that a database that cannot answer gets a
    # problem response (503), not a 200 that ends at once.
    first = next(chunks, b"")
    context = of(request.environ)
    release, context.release = context.release, None  # the stream gives the slot back
    context.streams = True
    sort = ("-" if query.descending else "") + query.sort
    body = _Stream(first, chunks, end, MEDIA_TYPES[media], (sort, query.filters), release)
    mimetype = "text/csv" if media == "text/csv" else media
    # Its type is chosen by Accept: caches must keep one answer per Accept.
    headers = {"Cache-Control": "no-store", "Vary": "Accept"}
    return Response(body, mimetype=mimetype, headers=headers)


class _Stream:
    """An export's body: its chunks, then the end marker. Closing it, whether it was read to
    the end, in part (a client gone mid-export: the COPY is cancelled) or not at all (HEAD),
    ends the export and gives its slot back."""

    def __init__(
        self, first: bytes, chunks: Iterator[bytes], end: ExportEnd, fmt: str,
        sort: tuple[str, Filters], release: Callable[[], None] | None,
    ) -> None:  # fmt: skip
        self._first, self._chunks, self._end = first, chunks, end
        self._fmt, self._sort, self._release = fmt, sort, release

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        yield from self._chunks
        yield end_marker(self._end, self._fmt, *self._sort)

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            if self._release is not None:
                self._release()


def end_marker(end: ExportEnd, fmt: str, sort: str, filters: Filters | None = None) -> bytes:
    """The export's last line: complete, or cut off (why, how many rows, and a cursor that
    resumes after the last row sent, for GET /v1/items/export?cursor=...)."""
    marker: dict[str, Any] = {"complete": end.complete, "rows": end.rows}
    if not end.complete:
        marker["reason"] = end.reason or "unknown"
        if end.last_row is not None:
            row = _row(end.last_row, fmt)
            key = list_query.sort_key(row, sort.lstrip("-"))
            marker["next_cursor"] = pagination.encode(sort, key, filters or Filters())
    if fmt == NDJSON:
        return orjson.dumps({"export": marker}) + b"\n"
    words = ["complete" if end.complete else "incomplete", f"rows={end.rows}"]
    words += [f"{k}={v}" for k, v in marker.items() if k in ("reason", "next_cursor")]
    return ("#export " + " ".join(words) + "\n").encode()


def _row(line: bytes, fmt: str) -> dict[str, Any]:
    if fmt == NDJSON:
        return orjson.loads(line)
    values = next(csv.reader([line.decode()]))
    row: dict[str, Any] = dict(zip(CSV_COLUMNS, values, strict=True))
    row["id"] = int(row["id"])
    row["price"] = float(row["price"]) if row["price"] else None
    return row


@bp.post("/items/import")
def import_items() -> Response:
    if request.mimetype != import_rows.NDJSON:
        raise UnsupportedMediaType(f"an import is sent as {import_rows.NDJSON}")
    settings = deps().settings
    chunks = _body(request.environ, settings.max_import_bytes)
    count = deps().transfers.import_items(
        import_rows.rows(chunks), of(request.environ).principal or ""
    )
    try:
        deps().items.clear_everywhere()  # committed: every read cache drops what it holds
    except ItemsError as exc:  # this worker's and this server's caches are flushed already
        log.warning("import committed; telling other replicas failed: %s", exc)
    return model_response(ImportResult(imported=count))


def _body(environ: dict[str, Any], limit: int) -> Iterator[bytes]:
    """The body in chunks as it arrives, never more than `limit` bytes in all."""
    raw = environ.get("CONTENT_LENGTH", "")
    if "HTTP_TRANSFER_ENCODING" in environ or not raw:
        raise LengthRequired("an import must declare its length (Content-Length)")
    try:
        declared = int(raw)
    except ValueError:
        raise BodyIncomplete(None, 0) from None
    if declared > limit:
        raise BodyTooLarge(limit)
    stream, received = environ["wsgi.input"], 0
    while received < declared:
        chunk = bytes(stream.read(min(READ_BYTES, declared - received)))
        if not chunk:
            raise BodyIncomplete(declared, received)  # the client went away: nothing is stored
        received += len(chunk)
        yield chunk
