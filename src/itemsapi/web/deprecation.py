"""The unversioned paths (the item paths as they were before /v1): still answering, marked
deprecated (RFC 9745's Deprecation, RFC 8594's successor Link and, once ITEMSAPI_UNVERSIONED_SUNSET
names the date they end, Sunset), and counted by route and principal so that operators see who
still calls them before they switch them off (ITEMSAPI_UNVERSIONED=off: not served at all).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email.utils import format_datetime

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
        self._lock = threading.Lock()

    def init_app(self, app: Flask, items: Blueprint) -> None:
        """Serve `items` without /v1 too (unless ITEMSAPI_UNVERSIONED=off), marked; the hook is
        the unversioned blueprint's alone, so the /v1 paths never run it."""
        app.register_blueprint(items, name=UNVERSIONED)
        app.after_request_funcs.setdefault(UNVERSIONED, []).append(self.mark)

    def mark(self, response: Response) -> Response:
        """Each answers as before, saying it is deprecated (and until when) and naming the /v1
        path that succeeds it (RFC 8594's Link relation)."""
        successor = VERSION_PREFIX + request.full_path.rstrip("?")
        response.headers["Deprecation"] = "true"
        if self._sunset is not None:
            response.headers["Sunset"] = self._sunset
        response.headers.add("Link", f'<{successor}>; rel="successor-version"')
        rule = request.url_rule.rule if request.url_rule is not None else None
        principal = self._label(of(request.environ).principal)
        UNVERSIONED_REQUESTS.labels(route_template(rule), principal).inc()
        return response

    def _label(self, principal: str | None) -> str:
        if principal is None:
            return ANONYMOUS
        if principal in self._principals:
            return principal
        with self._lock:
            if len(self._principals) >= MAX_PRINCIPALS:
                return OTHER
            self._principals.add(principal)
        return principal
