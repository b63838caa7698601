"""Admission control: which requests a worker takes on, so that the probes always find a free
thread and overload is refused at once instead of queued.

Granian's WSGI interface runs every request on one of a worker's blocking threads, in arrival
order; a request that finds them all busy waits in Granian's queue, however long that is. With
only as many threads as requests should run at once, a stuck database or slow bodies take every
thread and /live waits behind the queue. So each worker has more Granian threads than it ever
lets item requests hold (`granian_threads`), and `admit` decides per request, before the view:

- the probes and /metrics pass straight through (their credentials checked, where they need
  any): they run on the threads kept free for them;
- any other request without a bearer token, where one is needed, is refused (401) at once: it
  needs no lookup, and a retry would not help it, so it is never told 503;
- every other request needs one of `blocking_threads` run slots; when none is free it waits for
  one, at most the pool timeout, if fewer than `max_queued` are already waiting; else, or when
  the wait runs out, it gets 503 + Retry-After (Overloaded) at once;
- holding it, its credentials are checked from its headers (auth.Enforcer: a key lookup may
  need the database), so that a client without the right scope is refused before anything is
  read from it;
- a request with a body then gives its slot back while the body is read (bodies.BodyReader:
  whole, with a size limit, on a bounded number of readers), so that a slow client never holds
  a run slot, and takes one again for the view.

A long-poll of the change feed (web/changes.py) gives its run slot back while it waits, on one
of `changes_waiters` threads of its own, and takes one again to read.

Exports and imports (web/transfer.py) stream for minutes: they never take a run slot (they
would starve item requests) nor the body readers (an import is read as a stream, not whole).
Each takes one of its own bounded TransferSlots instead, at once or 503, then its credentials
are checked from its headers before anything is read; an export's stream gives its slot back
when it ends, an import's view when it answers.

Refusals are raised like any other error and answered by problems.respond. Blocked waiters do
not take the GIL, and Granian starts threads on demand and ends them when idle: the threads
beyond the run slots cost little.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, request

from itemsapi.auth.enforce import Enforcer
from itemsapi.config import Settings
from itemsapi.errors import Overloaded
from itemsapi.web.bodies import BodyReader, declares_body
from itemsapi.web.context import RequestContext, of

# Never refused: the orchestrator's probes and the scrape must answer whatever the items do.
EXEMPT_PATHS = frozenset({"/live", "/ready", "/health", "/metrics"})
# Granian threads kept for the exempt paths and for refusing requests, beyond those admission
# lets requests hold.
PROBE_THREADS = 8


# The transfer endpoints (web/transfer.py) and the slots each takes.
EXPORT, IMPORT = "transfer.export_items", "transfer.import_items"
FEED = "changes.feed"  # long-polls wait without their run slot (web/changes.py)


def granian_threads(settings: Settings) -> int:
    """Granian's blocking threads per worker: every thread admission may let requests hold
    (running, waiting for a run slot, waiting for a body, transferring), plus the ones kept for
    the probes."""
    transfers = settings.export_slots + settings.import_slots
    return (
        settings.blocking_threads + settings.max_queued + settings.max_body_reads + transfers
        + settings.changes_waiters + PROBE_THREADS
    )  # fmt: skip


class TransferSlots:
    """At most `count` transfers of one kind at once per worker; one more is refused at once."""

    def __init__(self, kind: str, count: int) -> None:
        self._kind = kind
        self._free = threading.BoundedSemaphore(count)

    def take(self) -> Callable[[], None]:
        """Take a slot (or raise Overloaded); the function returned gives it back, once."""
        if not self._free.acquire(blocking=False):
            raise Overloaded(f"every {self._kind} slot is taken; try again later")
        given_back = threading.Event()

        def release() -> None:
            if not given_back.is_set():
                given_back.set()
                self._free.release()

        return release


def _tokens(count: int) -> queue.SimpleQueue[bool]:
    """`count` slots as tokens in a queue: taken with get, given back with put. The queue is
    written in C, so an uncontended take and give-back cost a call each, where a Semaphore's
    run a dozen lines of Python under its Condition; every item request does both twice."""
    tokens: queue.SimpleQueue[bool] = queue.SimpleQueue()
    for _ in range(count):
        tokens.put(True)
    return tokens


class Admission:
    def __init__(self, settings: Settings, enforcer: Enforcer) -> None:
        self._enforcer = enforcer
        self._running = _tokens(settings.blocking_threads)
        self._queue_places = _tokens(settings.max_queued)
        self._wait = settings.pool_timeout
        self._bodies = BodyReader(
            settings.max_body_bytes, settings.max_body_reads, settings.max_body_reads_per_client
        )
        self._transfers = {
            EXPORT: TransferSlots("export", settings.export_slots),
            IMPORT: TransferSlots("import", settings.import_slots),
        }

    def init_app(self, app: Flask) -> None:
        app.before_request(self.admit)
        # Slots are given back as the app returns, around it rather than in a teardown hook:
        # Flask checks every hook for a coroutine on every request, a measurable share of it.
        inner = app.wsgi_app

        def releasing(environ: dict[str, Any], start_response: Any) -> Any:
            try:
                return inner(environ, start_response)
            finally:
                context = of(environ)
                if context.holds_slot:
                    self._give_back_slot(context)
                if context.release is not None and not context.streams:
                    context.release()  # a streamed export's stream gives its slot back itself

        app.wsgi_app = releasing  # type: ignore[method-assign]

    def admit(self) -> None:
        # The request itself, not its proxy: each attribute read through `flask.request` looks
        # the request up again, and this runs before every request.
        current = request._get_current_object()  # type: ignore[attr-defined]
        if current.routing_exception is not None:
            return  # answered 404/405 without reading or authenticating anything
        environ = current.environ
        endpoint = current.endpoint
        context = of(environ)
        credentials = (endpoint, environ["REQUEST_METHOD"], environ.get("HTTP_AUTHORIZATION"))
        if environ.get("PATH_INFO") in EXEMPT_PATHS:
            context.principal = self._enforcer.check(*credentials)
            return
        demand = self._enforcer.demand(*credentials)  # no token: 401 before any slot
        transfer = self._transfers.get(endpoint or "")
        if transfer is not None:
            context.release = transfer.take()
            context.principal = self._enforcer.prove(demand)
            return
        self._take_slot(context)
        context.principal = self._enforcer.prove(demand)
        if endpoint == FEED:
            context.idle = lambda: self._idle(context)
        if declares_body(environ):
            self._give_back_slot(context)
            self._bodies.buffer(environ)
            self._take_slot(context)

    def _take_slot(self, context: RequestContext) -> None:
        """Take a run slot, and set the request's deadline for a pooled connection."""
        started = time.monotonic()
        try:
            self._running.get_nowait()
        except queue.Empty:
            self._wait_for_slot()
        context.holds_slot = True
        context.deadline = started + self._wait

    def _wait_for_slot(self) -> None:
        try:
            self._queue_places.get_nowait()
        except queue.Empty:
            raise Overloaded("every run slot is taken and the queue is full") from None
        try:
            self._running.get(timeout=self._wait)
        except queue.Empty:
            raise Overloaded(f"no run slot free within {self._wait:g}s") from None
        finally:
            self._queue_places.put(True)

    @contextmanager
    def _idle(self, context: RequestContext) -> Iterator[None]:
        """A long-poll's wait (web/changes.py), on a thread of its own: without its run slot,
        which it takes again (or is refused, as any request) to read what came."""
        self._give_back_slot(context)
        try:
            yield
        finally:
            self._take_slot(context)

    def _give_back_slot(self, context: RequestContext) -> None:
        context.holds_slot = False
        self._running.put(True)
