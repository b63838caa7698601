"""Prometheus metrics (prometheus-client), summed over every Granian worker.

With several worker processes each one writes its samples to files in PROMETHEUS_MULTIPROC_DIR
and a scrape, whichever worker serves it, reads them all (prometheus-client's multiprocess
mode). `itemsapi serve` sets that folder up before the workers start. prometheus-client decides
the mode when it is first imported: a process that imported it before the folder was named
would count alone, so each worker checks the mode as it starts (check_mode) and refuses to
serve wrong figures. Without the variable (tests, a single process) the default registry is
used.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from psycopg_pool import ConnectionPool

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL_SAMPLE_SECONDS = 1.0

REQUESTS = Counter(
    "itemsapi_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "itemsapi_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_SIZE = Gauge(
    "itemsapi_db_pool_connections",
    "Connections the pools hold, busy or idle.",
    multiprocess_mode="livesum",
)
POOL_AVAILABLE = Gauge(
    "itemsapi_db_pool_available",
    "Idle connections ready in the pools.",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "itemsapi_db_pool_waiting",
    "Requests waiting for a connection.",
    multiprocess_mode="livesum",
)
POOL_TIMEOUTS = Counter(
    "itemsapi_db_pool_timeouts_total",
    "Requests that found no connection within the pool timeout (answered 503).",
)
DB_ERRORS = Counter(
    "itemsapi_db_errors_total",
    "Database errors met while answering requests, by kind.",
    ["kind"],
)
AUTH_FAILURES = Counter(
    "itemsapi_auth_failures_total",
    "Requests refused for their credentials (401) or scopes (403), by reason.",
    ["reason"],
)
CACHE_LOOKUPS = Counter(
    "itemsapi_cache_lookups_total",
    "Read-cache lookups by region (item, list) and outcome: hit, miss (read from the database), "
    "bypass (cache off, or its listener not listening).",
    ["region", "outcome"],
)
CACHE_INVALIDATIONS = Counter(
    "itemsapi_cache_invalidations_total",
    "Invalidations applied, by source: write (this worker's), server (another worker of this "
    "server), notification (any writer, from PostgreSQL), log (the change log, read by the "
    "worker's follower), flush (a statement of many rows, TRUNCATE, POST /cache/clear).",
    ["source"],
)
CACHE_EVICTIONS = Counter(
    "itemsapi_cache_evictions_total",
    "Entries evicted to keep the cache within ITEMSAPI_CACHE_MAX_ENTRIES.",
)
CACHE_ENTRIES = Gauge(
    "itemsapi_cache_entries",
    "Entries held by the read caches of all workers.",
    multiprocess_mode="livesum",
)
CACHE_LISTENER_CONNECTED = Gauge(
    "itemsapi_cache_listener_connected",
    "Workers whose change listener is connected and listening (the others bypass their cache).",
    multiprocess_mode="livesum",
)
CACHE_NOTIFICATION_LAG = Histogram(
    "itemsapi_cache_notification_lag_seconds",
    "From the statement that changed items (database clock) to its notification being applied.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# Any other method a client makes up is counted as "other", so that it cannot mint series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The labelled series each (method, rule, status) feeds, looked up once: labels() costs more
# than the increment itself.
_series: dict[tuple[str, str | None, int], tuple[Counter, Histogram]] = {}


def route_template(rule: str | None) -> str:
    """'/items/<item_id:item_id>' -> '/items/{item_id}'; None (no route matched) -> 'unmatched'."""
    if rule is None:
        return "unmatched"
    return _PLACEHOLDER.sub(r"{\1}", rule)


def observe_request(method: str, rule: str | None, status: int, seconds: float) -> None:
    if method not in _METHODS:
        method = "other"
    key = (method, rule, status)
    series = _series.get(key)
    if series is None:
        route = route_template(rule)
        series = _series[key] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    series[0].inc()
    series[1].observe(seconds)


def count_database_error(kind: str) -> None:
    DB_ERRORS.labels(kind).inc()
    if kind == "pool_timeout":
        POOL_TIMEOUTS.inc()


def count_auth_failure(reason: str) -> None:
    AUTH_FAILURES.labels(reason).inc()


def sample_pool(pool: ConnectionPool) -> None:
    stats = pool.get_stats()
    POOL_SIZE.set(stats.get("pool_size", 0))
    POOL_AVAILABLE.set(stats.get("pool_available", 0))
    POOL_WAITING.set(stats.get("requests_waiting", 0))


def render() -> tuple[bytes, str]:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def check_mode() -> None:
    """Raise unless this process writes its samples where a scrape reads them: with
    PROMETHEUS_MULTIPROC_DIR set, a counter touched now has a file of this process there."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return
    POOL_TIMEOUTS.inc(0)
    if not any(Path(folder).glob(f"*_{os.getpid()}.db")):
        raise RuntimeError(
            f"prometheus_client was imported before {MULTIPROC_ENV} was set, so this process's"
            " metrics would be missing from every scrape: set it before starting Python"
        )


def retire_process() -> None:
    """Drop this process's live gauges from the sums (at its exit)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())


class PoolSampler:
    """Keeps this process's pool gauges fresh, on a thread of its own."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._stop = threading.Event()

    def start(self) -> None:
        sample_pool(self._pool)
        threading.Thread(target=self._run, name="pool-metrics", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(POOL_SAMPLE_SECONDS):
            sample_pool(self._pool)

    def stop(self) -> None:
        self._stop.set()


# JWT mode's key set (auth/jwks.py). The age of a worker's key set is time() minus its last
# success: a timestamp rather than an age gauge, because a multiprocess gauge holds only what a
# worker last wrote, and an age has to move while nothing is fetched. livemin: the stalest worker.
JWKS_FETCHES = Counter(
    "itemsapi_jwks_fetches_total",
    "Fetches of the identity provider's JWKS, by outcome: ok, http_error (an answer other than "
    "200), malformed (not a JWK set with a usable key), timeout, connection.",
    ["outcome"],
)
JWKS_LAST_SUCCESS = Gauge(
    "itemsapi_jwks_last_success_timestamp_seconds",
    "Unix time of the key set the stalest worker verifies JWTs with (0: none yet, or key mode).",
    multiprocess_mode="livemin",
)


def count_jwks_fetch(outcome: str) -> None:
    JWKS_FETCHES.labels(outcome).inc()
    if outcome == "ok":
        JWKS_LAST_SUCCESS.set_to_current_time()
