"""Running the API under Granian: what `itemsapi serve` does around it (the port, the database
facts, the shared metrics folder, the start line) and what each worker process needs first."""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
from flask import Flask

from itemsapi import cache_sync, db, jsonlog, listener, migrations, start_line
from itemsapi.config import Settings
from itemsapi.db import inspect_server
from itemsapi.errors import DatabaseUnavailable
from itemsapi.worker_folders import handed_down

APP_FACTORY = "itemsapi.server:worker_app"

log = logging.getLogger(__name__)


class CannotListen(RuntimeError):
    """Another server holds the port (or the address is not this machine's)."""


def serve(settings: Settings, database_url: str) -> None:
    """Serve until stopped: Granian's workers each build the app with worker_app. The caller
    checks the port first (check_port_free), before it starts anything else."""
    # Workers are forked from this process and read DATABASE_URL in the app factory.
    os.environ["DATABASE_URL"] = database_url
    check_database(settings, database_url)
    with _metrics_folder(), start_line.drawn(settings.workers), _write_ring():
        _granian(settings)


def worker_app() -> Flask:
    """The app factory Granian calls in each worker process, before the worker serves.

    Two signal races of Granian's, each of which left a worker to be killed after the shutdown
    timeout (docs/operations.md, Shutdown):
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


def check_port_free(host: str, port: int) -> None:
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
        raise CannotListen(f"cannot listen on {host}:{port}: {reason}") from None


def _granian(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    from itemsapi.admission import granian_threads

    granian = Granian(
        APP_FACTORY,
        factory=True,
        interface=Interfaces.WSGI,
        address=settings.host,
        port=settings.port,
        workers=settings.workers,
        # More threads than admission lets item requests hold, so that the probes always find
        # one (admission.py); Granian starts them on demand and ends them after 30 s idle.
        blocking_threads=granian_threads(settings),
        log_dictconfig=jsonlog.dict_config(settings.log_level),
        log_access=False,  # the app writes its own JSON access line per request
        workers_kill_timeout=settings.shutdown_timeout,
        # A worker that dies (killed for memory, a crash in native code) is replaced while the
        # others serve, instead of the whole server stopping with it. Granian gives up and
        # stops when a replacement dies again within 5.5 s: a crash loop is not hidden.
        respawn_failed_workers=True,
    )
    # Granian warns when threads outnumber the cores; here most of them only ever wait.
    logging.getLogger("_granian").addFilter(_not_the_thread_count_warning)
    granian.serve()


def _not_the_thread_count_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Configuration allows spawning up to")


def _write_ring() -> AbstractContextManager[None]:
    """One file for the workers' WriteRing (cache_sync): how each tells the others of its writes
    before answering. Without one each worker keeps its own, and a read on another worker may
    be stale until the NOTIFY arrives."""
    return handed_down(
        "itemsapi-ring-", cache_sync.ENV, lambda folder: str(Path(folder) / "writes"),
        "workers share no write ring",
    )  # fmt: skip


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


def check_database(settings: Settings, database_url: str) -> None:
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
    _check_schema(database_url, facts.schema_in_place)
    _check_budget(settings, facts.connections_allowed)
    if settings.session_settings == "server":
        _check_session_settings(settings, database_url)


def _check_budget(settings: Settings, connections_allowed: int) -> None:
    """workers x pool max size must fit what is behind DATABASE_URL: the server's
    connections, or, behind a pooler, the pooler's server pool, which must fit the server's.
    Each worker's listener (read cache, key records) holds one more connection, always direct.
    Through the pooler the facts query still reaches PostgreSQL, so connections_allowed is the
    server's own. Replicas multiply the need; only the operator knows their number
    (docs/operations.md, Running at scale)."""
    needed = settings.workers * settings.pool_max_size
    listeners = settings.workers if listener.wanted(settings) else 0
    extra = {
        "workers": settings.workers,
        "pool_max_size": settings.pool_max_size,
        "connections_needed": needed + listeners,
        "connections_allowed": connections_allowed,
        "pooler_pool_size": settings.pooler_pool_size,
    }
    pooler = settings.pooler_pool_size
    if pooler is None and needed + listeners > connections_allowed:
        log.warning(
            "workers x (pool max size + a listener) exceeds the server's max_connections",
            extra=extra,
        )
    elif pooler is not None and needed > pooler:
        log.warning(
            "workers x pool max size exceeds the pooler's server pool: requests would queue in "
            "the pooler, past ITEMSAPI_POOL_TIMEOUT's reach",
            extra=extra,
        )
    elif pooler is not None and pooler + listeners > connections_allowed:
        log.warning(
            "the pooler's server pool and the workers' listeners exceed the server's"
            " max_connections",
            extra=extra,
        )
    else:
        log.info("connection budget fits the server", extra=extra)


def _check_session_settings(settings: Settings, database_url: str) -> None:
    """With session_settings "server" the role must carry statement_timeout and TimeZone."""
    try:
        found = db.session_settings(database_url, settings)
    except psycopg.Error as exc:
        log.error("cannot read the session's settings", extra={"error": str(exc).strip()})
        return
    expected = db.SessionSettings(settings.statement_timeout_ms, "UTC")
    if found != expected:
        log.error(
            "the database role's session settings differ from this configuration: set them "
            "with ALTER ROLE ... SET (docs/operations.md, Running at scale)",
            extra={"found": vars(found), "expected": vars(expected)},
        )


def _check_schema(database_url: str, in_place: bool) -> None:
    try:
        pending = [m.path.name for m in migrations.pending(database_url)]
    except (migrations.MigrationError, psycopg.Error) as exc:
        log.error("cannot tell which migrations are pending", extra={"error": str(exc)})
        return
    if not in_place or pending:
        log.error(
            "the database schema is behind this code: /ready answers 503 (and item requests "
            "may fail) until `itemsapi migrate` applies the pending migrations",
            extra={"pending": pending},
        )
