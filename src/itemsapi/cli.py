"""The `itemsapi` command: `serve` runs the API under Granian, `init-db` applies the schema."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import psycopg
from flask import Flask

from itemsapi import db, embedded, start_line
from itemsapi import logging as json_logging
from itemsapi.config import ConfigError, Settings, env_name
from itemsapi.exceptions import DatabaseUnavailable
from itemsapi.repository import inspect_server

APP_FACTORY = "itemsapi.cli:worker_app"

log = logging.getLogger(__name__)


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings.from_env()
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database_url(settings: Settings, *, apply_schema: bool = True) -> str:
    """The configured database, or the embedded one when unset: started, and its schema applied
    unless the caller (init-db) applies it itself."""
    if settings.database_url:
        return settings.database_url
    log.info(
        "DATABASE_URL is not set: using the embedded PostgreSQL",
        extra={"data_dir": str(settings.data_dir.resolve())},
    )
    try:
        url = embedded.start(settings.data_dir)
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if apply_schema:
        db.apply_schema(url)
    return url


@click.group()
@click.version_option(package_name="itemsapi")
def main() -> None:
    """itemsapi: a REST API for items on PostgreSQL."""


@main.command()
@click.option("--host", help=f"Address to bind [env {env_name('host')}; default 127.0.0.1].")
@click.option("--port", type=int, help=f"Port to bind [env {env_name('port')}; default 8000].")
@click.option("--workers", type=int, help=f"Worker processes [env {env_name('workers')}; 1].")
@click.option(
    "--blocking-threads",
    type=int,
    help=f"Threads per worker running requests [env {env_name('blocking_threads')}; 4].",
)
def serve(
    host: str | None, port: int | None, workers: int | None, blocking_threads: int | None
) -> None:
    """Serve the API with Granian (embedded PostgreSQL when DATABASE_URL is unset)."""
    settings = _settings(host=host, port=port, workers=workers, blocking_threads=blocking_threads)
    json_logging.configure(settings.log_level)
    _check_port_free(settings.host, settings.port)
    # Workers are forked from this process and read DATABASE_URL in the app factory.
    os.environ["DATABASE_URL"] = database_url = _database_url(settings)
    _check_database(settings, database_url)
    with _metrics_folder(), start_line.drawn(settings.workers):
        _granian(settings)


def worker_app() -> Flask:
    """The app factory Granian calls in each worker process, before the worker serves.

    Two signal races of Granian's, each of which left a worker to be killed after the shutdown
    timeout (README, Shutdown):
    - Ctrl-C sends SIGINT to every process at once, and a worker that gets it together with the
      main process's SIGTERM sometimes misses both. Workers block SIGINT, in every thread they
      will start, and take their stop from the main process alone, as under docker stop.
    - Granian installs a worker's own SIGTERM handler only after this factory returns; until
      then the handler inherited from the main process swallows a stop, and the worker goes on
      to serve until it is killed. A stop that comes while the app is being built ends the
      worker at once: it has not served anything, so there is nothing to finish.

    Its app built, the worker waits at the start line for the others (see start_line)."""
    signal.signal(signal.SIGTERM, _stop_before_serving)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    from itemsapi.app import create_app  # here: the metrics folder exists only once serving

    app = create_app()
    if not start_line.wait():
        log.warning(
            "serving before every worker has started",
            extra={"waited_seconds": start_line.TIMEOUT},
        )
    return app


def _stop_before_serving(signum: int, frame: object) -> None:
    os._exit(0)  # not SystemExit: unwinding half-built pools and threads could hang instead


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another server is listening on. Granian's workers bind with SO_REUSEPORT,
    so on a port a server of the same user already serves (a forgotten `make run`, an older
    build) Granian would start too and quietly take a share of that server's connections.
    A probe without SO_REUSEPORT cannot bind there; it is closed before Granian binds."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None


def _granian(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        APP_FACTORY,
        factory=True,
        interface=Interfaces.WSGI,
        address=settings.host,
        port=settings.port,
        workers=settings.workers,
        # Each thread runs one request and holds at most one connection; requests beyond the
        # threads wait in Granian (its default backpressure), already read and ready to run.
        blocking_threads=settings.blocking_threads,
        log_dictconfig=json_logging.dict_config(settings.log_level),
        log_access=False,  # the app writes its own JSON access line per request
        workers_kill_timeout=settings.shutdown_timeout,
        # A worker that dies (killed for memory, a crash in native code) is replaced while the
        # others serve, instead of the whole server stopping with it. Granian gives up and
        # stops when a replacement dies again within 5.5 s: a crash loop is not hidden.
        respawn_failed_workers=True,
    ).serve()


@contextmanager
def _metrics_folder() -> Iterator[None]:
    """Give the workers one folder for their metric samples (prometheus-client multiprocess
    mode): PROMETHEUS_MULTIPROC_DIR if set, emptied of an earlier run's files, else a temporary
    one removed at exit."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="itemsapi-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _check_database(settings: Settings, database_url: str) -> None:
    """Say at start what would make requests fail later: no schema, or workers whose pools
    could open more connections than the server allows. Serves either way: /ready tells."""
    try:
        facts = inspect_server(database_url)
    except DatabaseUnavailable as exc:
        log.warning(
            "database not reachable at start; serving anyway, /ready reports when it is",
            extra={"error": str(exc)},
        )
        return
    if not facts.schema_in_place:
        log.error(
            "the database has no itemsapi schema; item requests get 503 and /ready says "
            "SchemaMissing until `itemsapi init-db` applies sql/init.sql"
        )
    budget = settings.workers * settings.pool_max_size
    extra = {
        "workers": settings.workers,
        "pool_max_size": settings.pool_max_size,
        "connections_needed": budget,
        "connections_allowed": facts.connections_allowed,
    }
    if budget > facts.connections_allowed:
        log.warning("workers x pool max size exceeds the server's max_connections", extra=extra)
    else:
        log.info("connection budget fits the server", extra=extra)


@main.command("init-db")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to keep trying while the database cannot be reached (it may be starting).",
)
def init_db(wait: float) -> None:
    """Apply sql/init.sql (idempotent) to DATABASE_URL, or to the embedded database."""
    settings = _settings()
    json_logging.configure(settings.log_level)
    url = _database_url(settings, apply_schema=False)
    deadline = time.monotonic() + wait
    while True:
        try:
            db.apply_schema(url)
            break
        except psycopg.OperationalError as exc:  # could not connect, or lost the connection
            if time.monotonic() >= deadline:
                raise _not_applied(exc) from None
            log.info("database not reachable yet; trying again", extra={"error": str(exc)})
            time.sleep(1)
        except psycopg.Error as exc:  # the server refused the script: retrying will not help
            raise _not_applied(exc) from None
    click.echo(f"schema applied from {db.schema_path()}")


def _not_applied(exc: Exception) -> click.ClickException:
    return click.ClickException(f"schema not applied: {str(exc).strip()}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
