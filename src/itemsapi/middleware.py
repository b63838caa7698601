"""Per-request plumbing: the X-Request-ID header, request metrics, and one access-log line."""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Flask, Response, g, request

from itemsapi import metrics

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("itemsapi.access")


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.started = time.perf_counter()
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = supplied if _SANE_REQUEST_ID.fullmatch(supplied) else _new_request_id()


def _new_request_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as uuid4 carries, at a fifth of its cost


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or _new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("started")
    seconds = time.perf_counter() - started if started else 0.0
    rule = request.url_rule.rule if request.url_rule else None
    metrics.observe_request(request.method, rule, response.status_code, seconds)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": request_id,
                "remote_addr": request.remote_addr,
                "response_size": response.calculate_content_length(),
            },
        )
    return response
