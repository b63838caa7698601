"""The identity provider's JWKS for JWT mode, fetched with the standard library, parsed with
PyJWT's public PyJWKSet, and kept through the provider's outages.

Not PyJWKClient: it holds one lock across a fetch, so while the provider hangs every request
queues behind it for the whole timeout; it keeps no memory of failures, so every forged key id
during an outage fetches again; an HTML answer escapes it as a JSON decode error (a 500); and
its cache forgets the set once its lifespan is over, outage or not.

Here:
- one fetch at a time, on a thread of its own; a request that needs its result waits for it at
  most `wait` seconds, then answers without it;
- after a failure no fetch starts before a backoff, doubling from the refresh interval up to
  MAX_BACKOFF_SECONDS; after a success, a token naming an unknown key id may trigger one fetch
  per refresh interval. Forged key ids cost at most one fetch per interval either way;
- the last good set keeps serving, however old, until a newer one arrives (its age is the
  metric itemsapi_jwks_last_success_timestamp_seconds); past its lifespan it is refreshed in the
  background while it serves;
- a token that cannot be checked because the provider fails (no set yet, or a key id the set
  lacks while the last fetch failed or is still running) raises IdentityProviderUnavailable,
  a 503 with Retry-After; an unknown key id with a current set is Unauthorized;
- `status()` says how the set stands for /health, and `refresh()` lets the probe start a fetch
  that is due (no set, or one past its lifespan) under the same rules, so that an idle server
  recovers its set without waiting for a token.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt

from itemsapi.errors import IdentityProviderUnavailable, Unauthorized
from itemsapi.metrics import count_jwks_fetch

log = logging.getLogger(__name__)

LIFESPAN_SECONDS = 300.0  # a set older than this is refreshed (and still used meanwhile)
FETCH_TIMEOUT_SECONDS = 3.0  # the whole fetch, connection to last byte
WAIT_SECONDS = 1.0  # the longest a request waits for a fetch it needs
MAX_BACKOFF_SECONDS = 60.0
MAX_JWKS_BYTES = 512 * 1024  # a JWK set holds a few keys; anything bigger is not one


class FetchFailed(Exception):
    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome  # the metric's label


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The configured URL is the key set's only source: a redirect is a failure to report.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


@dataclass(frozen=True)
class JwksStatus:
    """How the key set stands. ok: a set within its lifespan, the last fetch good; stale: a set
    is held, but it is past its lifespan or the last fetch failed; unavailable: no set at all,
    so no token can be checked."""

    status: Literal["ok", "stale", "unavailable"]
    key_set_age_seconds: float | None  # since the held set was fetched; None without one
    last_outcome: str | None  # the last fetch's, as the metric labels it; None before any
    consecutive_failures: int


class Jwks:
    def __init__(
        self,
        url: str,
        refresh_seconds: float,
        *,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        wait: float = WAIT_SECONDS,
        lifespan: float = LIFESPAN_SECONDS,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"the JWKS URL must be http or https: {url!r}")
        self._url = url
        self._refresh = refresh_seconds
        self._timeout = timeout
        self._wait = wait
        self._lifespan = lifespan
        self._lock = threading.Lock()  # guards the fields below; never held across a fetch
        self._keys: jwt.PyJWKSet | None = None
        self._fetched_at = -math.inf  # monotonic time of the last good set
        self._failures = 0  # consecutive failed fetches
        self._last_outcome: str | None = None
        self._next_fetch = 0.0  # monotonic time before which no fetch starts
        self._inflight: threading.Event | None = None  # set when the running fetch ends

    def key(self, kid: str) -> jwt.PyJWK:
        """The current key named `kid`; Unauthorized or IdentityProviderUnavailable if none."""
        with self._lock:
            found = _find(self._keys, kid)
            fresh = time.monotonic() - self._fetched_at < self._lifespan
            if found is not None and fresh:
                return found
            fetch = self._start_fetch()
        if found is not None:
            return found  # old but good: it serves while the fetch runs
        if fetch is not None:
            fetch.wait(self._wait)
        with self._lock:
            found = _find(self._keys, kid)
            if found is not None:
                return found
            if self._keys is not None and self._failures == 0 and self._inflight is None:
                raise Unauthorized("unknown_key")
            reason = "no key set yet" if self._keys is None else f"no key {kid!r} while failing"
            retry_after = max(1, math.ceil(self._next_fetch - time.monotonic()))
        raise IdentityProviderUnavailable(reason, retry_after)

    def status(self) -> JwksStatus:
        with self._lock:
            age = None if self._keys is None else time.monotonic() - self._fetched_at
            failures, outcome = self._failures, self._last_outcome
        if age is None:
            status = "unavailable"
        elif failures or age >= self._lifespan:
            status = "stale"
        else:
            status = "ok"
        return JwksStatus(status, age, outcome, failures)

    def refresh(self) -> None:
        """Start a fetch if one is due (no set, or one past its lifespan) and allowed (none
        running, no backoff); never waits for it."""
        with self._lock:
            if time.monotonic() - self._fetched_at >= self._lifespan:
                self._start_fetch()

    def _start_fetch(self) -> threading.Event | None:
        """The running fetch, or a new one if none is due to wait; None while backing off.
        Called with the lock held."""
        if self._inflight is not None:
            return self._inflight
        if time.monotonic() < self._next_fetch:
            return None
        done = self._inflight = threading.Event()
        threading.Thread(target=self._fetch, args=(done,), name="jwks-fetch", daemon=True).start()
        return done

    def _fetch(self, done: threading.Event) -> None:
        try:
            keys, outcome = self._download(), "ok"
        except FetchFailed as exc:
            keys, outcome = None, exc.outcome
            log.warning("cannot fetch the JWKS", extra={"outcome": outcome, "error": str(exc)})
        count_jwks_fetch(outcome)
        now = time.monotonic()
        with self._lock:
            self._last_outcome = outcome
            if keys is not None:
                self._keys, self._fetched_at, self._failures = keys, now, 0
                self._next_fetch = now + self._refresh
            else:
                self._failures += 1
                backoff = self._refresh * 2 ** min(self._failures - 1, 16)
                self._next_fetch = now + min(backoff, MAX_BACKOFF_SECONDS)
            self._inflight = None
        done.set()

    def _download(self) -> jwt.PyJWKSet:
        deadline = time.monotonic() + self._timeout
        accept = {"Accept": "application/json"}
        request = urllib.request.Request(self._url, headers=accept)  # noqa: S310 - http(s) only
        body = bytearray()
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                # The socket timeout bounds each read; the deadline bounds a slow trickle.
                while chunk := response.read(16384):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise FetchFailed("malformed", f"more than {MAX_JWKS_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise FetchFailed("timeout", f"not complete within {self._timeout:g}s")
        except urllib.error.HTTPError as exc:
            exc.close()
            raise FetchFailed("http_error", f"HTTP {exc.code}") from None
        except TimeoutError as exc:
            raise FetchFailed("timeout", str(exc) or "timed out") from None
        except urllib.error.URLError as exc:
            outcome = "timeout" if isinstance(exc.reason, TimeoutError) else "connection"
            raise FetchFailed(outcome, str(exc.reason)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed("connection", str(exc) or type(exc).__name__) from None
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return jwt.PyJWKSet.from_dict(data)
        except (ValueError, jwt.PyJWTError) as exc:  # JSONDecodeError is a ValueError
            raise FetchFailed("malformed", str(exc)[:200]) from None


def _find(keys: jwt.PyJWKSet | None, kid: str) -> jwt.PyJWK | None:
    if keys is None:
        return None
    # Keys for signing only: `use` absent or "sig" (RFC 7517 4.2), as PyJWKClient selects them.
    return next(
        (k for k in keys.keys if k.key_id == kid and k.public_key_use in ("sig", None)), None
    )
