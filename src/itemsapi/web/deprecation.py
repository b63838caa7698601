"""The unversioned paths (the item paths as they were before /v1): still answering, marked
deprecated (RFC 9745's Deprecation, RFC 8594's successor Link and, once ITEMSAPI_UNVERSIONED_SUNSET
names the date they end, Sunset), and counted by route and principal so that operators see who
still calls them before they switch them off (ITEMSAPI_UNVERSIONED=off: not served at all).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flask import Blueprint, Flask, Response, request
from prometheus_client import Counter

from itemsapi.config import Settings
from itemsapi.metrics import route_template
from itemsapi.web.context import of
from itemsapi.web.items import VERSION_PREFIX

UNVERSIONED = "unversioned"  # the items blueprint's name when registered without /v1
ANONYMOUS = "anonymous"
OTHER = "other"
# Principals a worker counts by name; any more are counted as "other", so that a crowd of JWT
# subjects cannot mint series without bound.
MAX_PRINCIPALS = 200
MAX_SERIES = 4 * MAX_PRINCIPALS  # (route, principal) pairs whose series a worker keeps at hand

UNVERSIONED_REQUESTS = Counter(
    "itemsapi_unversioned_requests_total",
    "Requests to the deprecated paths without /v1, by route template and principal (a key id, "
    "a JWT subject, anonymous; other past the first few hundred a worker meets).",
    ["route", "principal"],
)


def sunset_date(moment: datetime | None) -> str | None:
    """The Sunset header's value: an HTTP-date (IMF-fixdate)."""
    return None if moment is None else format_datetime(moment.astimezone(UTC), usegmt=True)


class Deprecation:
    def __init__(self, settings: Settings) -> None:
        self._sunset = sunset_date(settings.unversioned_sunset)
        self._principals: set[str] = set()
        # The labelled series each (rule, principal) feeds, looked up once (see metrics.py).
        self._counters: dict[tuple[str | None, str | None], Any] = {}
        self._lock = threading.Lock()

    def init_app(self, app: Flask, items: Blueprint) -> None:
        """Serve `items` without /v1 too (unless ITEMSAPI_UNVERSIONED=off), marked; the hook is
        the unversioned blueprint's alone, so the /v1 paths never run it."""
        app.register_blueprint(items, name=UNVERSIONED)
        app.after_request_funcs.setdefault(UNVERSIONED, []).append(self.mark)

    def mark(self, response: Response) -> Response:
        """Each answers as before, saying it is deprecated (and until when) and naming the /v1
        path that succeeds it (RFC 8594's Link relation)."""
        current = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        headers = response.headers
        headers.add("Deprecation", "true")
        if self._sunset is not None:
            headers.add("Sunset", self._sunset)
        headers.add(
            "Link", f'<{VERSION_PREFIX}{current.full_path.rstrip("?")}>; rel="successor-version"'
        )
        rule = current.url_rule.rule if current.url_rule is not None else None
        key = (rule, of(current.environ).principal)
        counter = self._counters.get(key)
        if counter is None:
            counter = UNVERSIONED_REQUESTS.labels(route_template(rule), self._label(key[1]))
            if len(self._counters) < MAX_SERIES:  # past the named principals: looked up anew
                self._counters[key] = counter
        counter.inc()
        return response

    def _label(self, principal: str | None) -> str:
        if principal is None:
            return ANONYMOUS
        with self._lock:
            if principal in self._principals:
                return principal
            if len(self._principals) >= MAX_PRINCIPALS:
                return OTHER
            self._principals.add(principal)
        return principal
