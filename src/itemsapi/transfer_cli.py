"""`itemsapi export` and `itemsapi import`: items out to a file (or stdout) and in from one (or
stdin), for operators, over the same code as GET /v1/items/export and POST /v1/items/import
(db/transfer.py, web/import_rows.py, the same end marker), on a connection of their own
straight to the database rather than through a server. No time or size limit applies: those
protect a server from its clients. A progress bar is drawn on stderr when it is a terminal;
logs go to stderr too, so stdout holds only the items.

cli.py registers these on the `itemsapi` group (`register`), handing over how it finds the
database, so that this module does not import cli.py back."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

import click
from werkzeug.datastructures import MultiDict

from itemsapi.config import Settings
from itemsapi.db.database import Database
from itemsapi.db.export_rows import CHUNK_BYTES, FORMATS, NDJSON
from itemsapi.db.transfer import ExportEnd, Transfers, transfer_pool
from itemsapi.errors import ImportInvalid, ItemsError
from itemsapi.web import import_rows
from itemsapi.web.listing import parse_list_query

ANNOUNCED_AS = "itemsapi-import"  # the origin of the announcement: no server's, so all flush


def register(main: click.Group, configured: Callable[[], tuple[Settings, str]]) -> None:
    """Add the commands to `main`; `configured()` reads the settings, sets up logging and finds
    the database."""

    @main.command("export")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default=NDJSON, show_default=True)
    @click.option("--sort", default="id", show_default=True, help="As GET /v1/items takes it.")
    @click.option("--q", help="Only items whose name contains this (case-insensitive).")
    @click.option("--min-price", help="Only items priced at least this.")
    @click.option("--max-price", help="Only items priced at most this.")
    @click.option("--cursor", help="Resume after a cut export: its end marker's next_cursor.")
    @click.option("--output", "-o", type=click.File("wb"), default="-", help="Default: stdout.")
    def export_command(fmt: str, output: BinaryIO, **filters: str | None) -> None:
        """Write every item the filters match, as NDJSON or CSV, then the end marker."""
        # Here, not at the top: web.transfer brings prometheus_client in, which `itemsapi serve`
        # must import only once it has named the workers' metrics folder (metrics.check_mode).
        from itemsapi.web.transfer import end_marker

        args = MultiDict({k: v for k, v in filters.items() if v is not None})
        try:
            query = parse_list_query(args)
        except ItemsError as exc:
            raise click.UsageError(str(exc)) from None
        end = ExportEnd()
        with _transfers(*configured()) as transfers:
            chunks = _progress(transfers.export(query, fmt, end), lambda _: f"{end.rows} rows")
            for chunk in chunks:
                output.write(chunk)
        sort = ("-" if query.descending else "") + query.sort
        output.write(end_marker(end, fmt, sort))
        output.flush()
        if not end.complete:
            raise click.ClickException(f"export cut off ({end.reason}) after {end.rows} rows")

    @main.command("import")
    @click.argument("source", type=click.File("rb"), default="-")
    def import_command(source: BinaryIO) -> None:
        """Add the items of an NDJSON file (or stdin), one per line as POST /v1/items takes
        it: all of them, or, if any line is bad, none (each bad line is listed, at most 100)."""
        size = _size(source)
        with _transfers(*configured()) as transfers:
            chunks = iter(lambda: source.read(CHUNK_BYTES), b"")
            if size is not None and sys.stderr.isatty():
                chunks = _bytes_progress(chunks, size)
            try:
                count = transfers.import_items(import_rows.rows(chunks))
            except ImportInvalid as exc:
                for error in exc.errors:
                    where = f"line {getattr(error, 'line', '?')}"
                    click.echo(f"{where}: {error.field or 'line'}: {error.message}", err=True)
                raise click.ClickException(f"{exc.detail}") from None
            transfers.announce_all(ANNOUNCED_AS)  # every server's read cache drops its items
        click.echo(f"imported {count} items")


class _transfers:
    """Transfers on one connection of their own, without a time limit."""

    def __init__(self, settings: Settings, url: str) -> None:
        self._pool = transfer_pool(settings, url, 1)

    def __enter__(self) -> Transfers:
        self._pool.open()
        return Transfers(Database(self._pool), None, None)

    def __exit__(self, *exc_info: object) -> None:
        self._pool.close()


def _progress(chunks: Iterator[bytes], show: Callable[[object], str]) -> Iterator[bytes]:
    if not sys.stderr.isatty():
        return chunks
    return _drawn(chunks, show)


def _drawn(chunks: Iterator[bytes], show: Callable[[object], str]) -> Iterator[bytes]:
    with click.progressbar(chunks, label="exporting", file=sys.stderr, item_show_func=show) as bar:
        yield from bar


def _bytes_progress(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
        for chunk in chunks:
            bar.update(len(chunk))
            yield chunk


def _size(source: BinaryIO) -> int | None:
    try:
        return os.fstat(source.fileno()).st_size or None
    except (OSError, ValueError):
        return None
