"""Probes for Docker and Kubernetes: /live (process), /ready (database), /health (report: the
database, the read cache's listener and, in JWT mode, the identity provider's key set)."""

from __future__ import annotations

from flask import Blueprint, Response

from itemsapi import __version__
from itemsapi.web.deps import deps
from itemsapi.web.models import (
    CacheHealth,
    DatabaseHealth,
    Health,
    HealthChecks,
    IdentityProviderHealth,
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
    identity_provider = _identity_provider_health()
    # Without a key set JWT mode can check no token, which is as good as no database; a stale
    # set still verifies tokens, so it is reported like the cache, not judged.
    ok = result.ok and identity_provider.status != "unavailable"
    status = "ok" if ok else "unavailable"
    pool = PoolFigures(
        size=stats.get("pool_size", 0),
        available=stats.get("pool_available", 0),
        waiting=stats.get("requests_waiting", 0),
    )
    database = DatabaseHealth(
        status="ok" if result.ok else "unavailable",
        latency_ms=result.latency_ms,
        error=result.error,
        pool=pool,
    )
    body = Health(
        status=status,
        version=__version__,
        environment=deps().settings.environment,
        checks=HealthChecks(
            database=database, cache=_cache_health(), identity_provider=identity_provider
        ),
    )
    headers = {} if ok else {"Retry-After": RETRY_AFTER_SECONDS}
    return model_response(body, 200 if ok else 503, headers=headers)


def _cache_health() -> CacheHealth:
    # Reported, not judged: a cache that is not listening is bypassed, and the API stays correct.
    cache = deps().items.cache
    listener = deps().listener
    if cache is None or listener is None:
        return CacheHealth(status="off", entries=0)
    return CacheHealth(
        status="listening" if listener.listening else "not listening", entries=len(cache)
    )


def _identity_provider_health() -> IdentityProviderHealth:
    jwks = deps().identity_provider
    if jwks is None:
        return IdentityProviderHealth(
            status="off", key_set_age_seconds=None, last_outcome=None, consecutive_failures=0
        )
    # A fetch that is due starts here too (never awaited), so that an idle server gets its set
    # back once the provider answers, without waiting for a token to ask.
    jwks.refresh()
    state = jwks.status()
    age = state.key_set_age_seconds
    return IdentityProviderHealth(
        status=state.status,
        key_set_age_seconds=None if age is None else round(age, 3),
        last_outcome=state.last_outcome,
        consecutive_failures=state.consecutive_failures,
    )
