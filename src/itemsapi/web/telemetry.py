"""Per-request plumbing: the request id (X-Request-ID) and the request's context, request
metrics, one access-log line, and no Content-Type on a response without a body.

A WSGI wrapper around the Flask app rather than before/after_request hooks: it reads what it
needs straight from the WSGI environ and the status line instead of through Flask's request
proxies, which cost a measurable share of a short request (docs/performance.md). It sees every
response, Flask's error pages included.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask

from itemsapi import metrics, tracing
from itemsapi.config import Settings
from itemsapi.jsonlog import access_log, request_id, write_access_line
from itemsapi.web.context import ENVIRON_KEY, RequestContext
from itemsapi.web.cors import PREFLIGHT_ROUTE
from itemsapi.web.docs import DOCS_POLICY
from itemsapi.web.headers import safe_headers
from itemsapi.web.items import CACHE_HEADER

REQUEST_ID_HEADER = "X-Request-ID"
# Statuses that never have a body (RFC 9110 15.3.5, 15.4.5): no Content-Type either.
_BODILESS = ("204", "304")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

WSGIApp = Any  # (environ, start_response) -> iterable of bytes


def init_app(app: Flask, settings: Settings) -> None:
    add_headers = safe_headers(settings.auth != "off", DOCS_POLICY)
    app.wsgi_app = RequestTelemetry(app.wsgi_app, add_headers)  # type: ignore[method-assign]


class RequestTelemetry:
    def __init__(self, wsgi_app: WSGIApp, add_headers: Any) -> None:
        self.wsgi_app = wsgi_app
        self._add_headers = add_headers

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()
        supplied = environ.get("HTTP_X_REQUEST_ID", "")
        current = supplied if _SANE_REQUEST_ID.fullmatch(supplied) else _new_request_id()
        context = environ[ENVIRON_KEY] = RequestContext(current)
        token = request_id.set(current)
        traced = tracing.RequestSpan(environ) if tracing.enabled else None
        status_line: str | None = None
        response_headers: list[tuple[str, str]] = []
        rule: str | None = None
        add_headers = self._add_headers

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status_line, response_headers, rule
            if status.startswith(_BODILESS) or ("Content-Length", "0") in headers:
                headers = [h for h in headers if h[0] != "Content-Type"]
            headers.append((REQUEST_ID_HEADER, current))
            add_headers(environ, status, headers)
            status_line, response_headers = status, headers
            rule = _matched_rule(environ)
            return start_response(status, headers, exc_info)

        def record() -> None:
            if status_line is not None:
                seconds = time.perf_counter() - started
                _record(environ, rule, status_line, response_headers, seconds, context, traced)

        try:
            body = self.wsgi_app(environ, start)
            if context.streams:
                return _Streamed(body, record)
            return _whole(body)
        finally:
            request_id.reset(token)
            if traced is not None:
                traced.detach()
            if not context.streams:
                record()


def _whole(body: Iterable[bytes]) -> list[bytes]:
    """The response body as a list of one piece: Granian sends a list at once, while an iterator
    (what werkzeug returns) goes to the client chunk by chunk, each handed between threads. Only
    an export streams (_Streamed)."""
    try:
        return [b"".join(body)]
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


class _Streamed:
    """A streamed body (an export) passed on as it comes, so that it is never held whole; the
    request is recorded when the server closes it, its duration the whole stream's."""

    def __init__(self, body: Iterable[bytes], record: Any) -> None:
        self._body = body
        self._record = record

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._record()


def _new_request_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as uuid4 carries, at a fifth of its cost


def _matched_rule(environ: dict[str, Any]) -> str | None:
    # werkzeug's Request registers itself in the environ and knows the route that matched;
    # Flask unregisters it when the request ends, after the response has started.
    request = environ.get("werkzeug.request")
    url_rule = getattr(request, "url_rule", None)
    if url_rule is None:
        return environ.get(PREFLIGHT_ROUTE)  # answered before Flask (web/cors.py), or None
    return url_rule.rule


def _record(
    environ: dict[str, Any], rule: str | None, status_line: str,
    headers: list[tuple[str, str]], seconds: float, context: RequestContext,
    traced: tracing.RequestSpan | None,
) -> None:  # fmt: skip
    method = environ.get("REQUEST_METHOD", "")
    status = int(status_line[:3])
    metrics.observe_request(method, rule, status, seconds)
    if traced is not None:
        served = next((value for name, value in headers if name == CACHE_HEADER), None)
        traced.finish(metrics.route_template(rule), status, context.principal, served)
    if not access_log.isEnabledFor(logging.INFO):
        return
    size = next((value for name, value in headers if name == "Content-Length"), None)
    fields = {
        "method": method,
        "path": _path(environ),
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "request_id": context.request_id,
        "remote_addr": environ.get("REMOTE_ADDR"),
        "principal": context.principal,
        "response_size": int(size) if size is not None else None,
    }
    if traced is not None:
        fields.update(traced.ids())
    write_access_line(fields)


def _path(environ: dict[str, Any]) -> str:
    # WSGI hands the path over as latin-1 decoded bytes (PEP 3333); URLs carry UTF-8.
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")
