"""Admission control: which requests a worker takes on, so that the probes always find a free
thread and overload is refused at once instead of queued.

Granian's WSGI interface runs every request on one of a worker's blocking threads, in arrival
order; a request that finds them all busy waits in Granian's queue, however long that is. With
only as many threads as requests should run at once, a stuck database or slow bodies take every
thread and /live waits behind the queue. So each worker has more Granian threads than it ever
lets item requests hold (`granian_threads`), and this wrapper decides per request:

- the probes and /metrics pass straight through: they run on the threads kept free for them;
- a request with a body has it read first (bodies.BodyReader: whole, with a size limit, at
  most `max_body_reads` at once, and `max_body_reads_per_client` for one client address once
  half are busy), so that a slow client never holds a run slot;
- then it needs one of `blocking_threads` run slots; when none is free it waits for one, at
  most the pool timeout, if fewer than `max_queued` are already waiting; else, or when the wait
  runs out, it gets 503 + Retry-After (Overloaded) at once.

Blocked waiters do not take the GIL, and Granian starts threads on demand and ends them when
idle: the threads beyond the run slots cost little, and no more than `blocking_threads` item
requests run in Python at once. Waiting for a slot does cost a hand-over between threads that
Granian's own queue avoids, hence as many run slots as pooled connections (docs/operations.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask

from itemsapi.bodies import BodyReader, declares_body
from itemsapi.config import Settings
from itemsapi.errors import ItemsError, Overloaded
from itemsapi.http_errors import problem_for
from itemsapi.repository import pool_wait_left

# Never refused: the orchestrator's probes and the scrape must answer whatever the items do.
EXEMPT_PATHS = frozenset({"/live", "/ready", "/health", "/metrics"})
# Granian threads kept for the exempt paths and for refusing requests, beyond those admission
# lets requests hold.
PROBE_THREADS = 8

WSGIApp = Any


def init_app(app: Flask) -> None:
    app.wsgi_app = Admission(app.wsgi_app, app.config["SETTINGS"])  # type: ignore[method-assign]


def granian_threads(settings: Settings) -> int:
    """Granian's blocking threads per worker: every thread admission may let requests hold
    (running, waiting for a run slot, waiting for a body), plus the ones kept for the probes."""
    return settings.blocking_threads + settings.max_queued + settings.max_body_reads + PROBE_THREADS


class Admission:
    def __init__(self, wsgi_app: WSGIApp, settings: Settings) -> None:
        self.wsgi_app = wsgi_app
        self._running = threading.Semaphore(settings.blocking_threads)
        self._queue_places = threading.Semaphore(settings.max_queued)
        self._wait = settings.pool_timeout
        self._bodies = BodyReader(
            settings.max_body_bytes, settings.max_body_reads, settings.max_body_reads_per_client
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in EXEMPT_PATHS:
            return self.wsgi_app(environ, start_response)
        try:
            if declares_body(environ):
                self._bodies.buffer(environ)
            wait_left = self._enter()
        except ItemsError as exc:
            return _respond(problem_for(exc), start_response)
        token = pool_wait_left.set(wait_left) if wait_left is not None else None
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            if token is not None:
                pool_wait_left.reset(token)
            self._running.release()

    def _enter(self) -> float | None:
        """Take a run slot; return what is left of the pool timeout if it took a wait."""
        if self._running.acquire(blocking=False):
            return None
        if not self._queue_places.acquire(blocking=False):
            raise Overloaded("every run slot is taken and the queue is full")
        started = time.monotonic()
        try:
            if not self._running.acquire(timeout=self._wait):
                raise Overloaded(f"no run slot free within {self._wait:g}s")
        finally:
            self._queue_places.release()
        return max(0.001, self._wait - (time.monotonic() - started))


def _respond(response: Any, start_response: Any) -> list[bytes]:
    # A list, not werkzeug's iterator: Granian sends it in one piece (response_bytes).
    start_response(response.status, list(response.headers.items()))
    return [response.get_data()]
