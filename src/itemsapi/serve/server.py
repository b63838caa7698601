"""Running the API under Granian: what `itemsapi serve` does around it (the port, the database
facts, the shared metrics folder, the start line) and what each worker process needs first."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from flask import Flask

from itemsapi import jsonlog
from itemsapi.cache import ring
from itemsapi.config import Settings
from itemsapi.serve import start_line
from itemsapi.serve.checks import check_database
from itemsapi.serve.worker_folders import handed_down

APP_FACTORY = "itemsapi.serve.server:worker_app"

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
    # What is built by now (modules, the app, its services) lives as long as the worker: the
    # cycle collector need not walk it again in every full collection.
    gc.freeze()
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

    from itemsapi.web.admission import granian_threads

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
    """One file for the workers' WriteRing (cache/ring.py): how each tells the others of its writes
    before answering. Without one each worker keeps its own, and a read on another worker may
    be stale until the NOTIFY arrives."""
    return handed_down(
        "itemsapi-ring-", ring.ENV, lambda folder: str(Path(folder) / "writes"),
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
