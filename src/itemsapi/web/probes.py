"""Probes for Docker and Kubernetes: /live (process), /ready (database), /health (report)."""

from __future__ import annotations

from flask import Blueprint, Response

from itemsapi import __version__
from itemsapi.web.deps import deps
from itemsapi.web.models import (
    CacheHealth,
    DatabaseHealth,
    Health,
    HealthChecks,
    PoolFigures,
    ProbeStatus,
)
from itemsapi.web.problems import RETRY_AFTER_SECONDS
from itemsapi.web.responses import model_response

bp = Blueprint("probes", __name__)


@bp.get("/live")
def live() -> Response:
    # Never touches the database: an outage must not get a healthy process restarted.
    return model_response(ProbeStatus(status="ok"))


@bp.get("/ready")
def ready() -> Response:
    result = deps().check.run()
    if result.ok:
        return model_response(ProbeStatus(status="ready"))
    return model_response(
        ProbeStatus(status="unavailable", reason=result.error),
        503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


@bp.get("/health")
def health() -> Response:
    result = deps().check.run()
    stats = deps().database.stats()
    status = "ok" if result.ok else "unavailable"
    pool = PoolFigures(
        size=stats.get("pool_size", 0),
        available=stats.get("pool_available", 0),
        waiting=stats.get("requests_waiting", 0),
    )
    database = DatabaseHealth(
        status=status, latency_ms=result.latency_ms, error=result.error, pool=pool
    )
    body = Health(
        status=status,
        version=__version__,
        environment=deps().settings.environment,
        checks=HealthChecks(database=database, cache=_cache_health()),
    )
    headers = {} if result.ok else {"Retry-After": RETRY_AFTER_SECONDS}
    return model_response(body, 200 if result.ok else 503, headers=headers)


def _cache_health() -> CacheHealth:
    # Reported, not judged: a cache that is not listening is bypassed, and the API stays correct.
    cache = deps().items.cache
    listener = deps().listener
    if cache is None or listener is None:
        return CacheHealth(status="off", entries=0)
    return CacheHealth(
        status="listening" if listener.listening else "not listening", entries=len(cache)
    )
