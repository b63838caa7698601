"""JSON logs, one object per line on stdout (python-json-logger), with the request id.

The orjson formatter writes the same fields as the default one in under half the time. The
access line, one per request, skips the logging module's record path altogether
(write_access_line) and keeps the same shape."""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from pythonjsonlogger.orjson import OrjsonFormatter

from itemsapi import tracing

FORMAT = "%(levelname)s %(name)s %(process)d %(message)s"
RENAMED = {"levelname": "level", "name": "logger", "process": "pid"}

# One line per request; its level (INFO) switches it, see write_access_line.
access_log = logging.getLogger("itemsapi.access")

# The handler configure() installed: access lines go straight to it (see write_access_line).
_json_handler: logging.StreamHandler | None = None

# The id of the request this thread is serving (set by web/telemetry.py), for every line logged
# meanwhile.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds request_id to every record logged while a request is being handled, and the trace
    and span ids while it is traced (tracing.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            current = request_id.get()
            if current is not None:
                record.request_id = current
        if tracing.enabled and not hasattr(record, "trace_id"):
            ids = tracing.current_ids()
            if ids is not None:
                record.__dict__.update(ids)
        return True


def configure(level: str, stream: TextIO | None = None) -> None:
    """Route every logger (ours, Flask's, psycopg's, Granian's) through one JSON handler, on
    stdout (a server's output is its log) unless another stream is given (a command's output
    is what it prints for its caller, so its log goes to stderr)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(OrjsonFormatter(FORMAT, rename_fields=RENAMED, timestamp=True))
    handler.addFilter(RequestIdFilter())
    global _json_handler
    _json_handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # psycopg_pool logs every connection it makes, pgserver every command it runs, at INFO;
    # their warnings and errors are what an operator needs.
    for chatty in ("psycopg.pool", "pgserver"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


def write_access_line(fields: dict[str, Any]) -> None:
    """One access line, in the same JSON shape as every other line (level, logger, pid, message,
    the fields, timestamp), written to the configured handler's stream under its lock.

    The logging module's path (a LogRecord, the filter, python-json-logger's field merging) is a
    large share of a short request's CPU (docs/performance.md). The caller checks
    `access_log.isEnabledFor(logging.INFO)` first, as it would before logging, so that a
    disabled line costs nothing to assemble."""
    handler = _json_handler
    if handler is None:
        return
    line = {
        RENAMED["levelname"]: "INFO",
        RENAMED["name"]: access_log.name,
        RENAMED["process"]: os.getpid(),
        "message": "request",
    }
    line.update(fields)
    line["timestamp"] = datetime.now(UTC)
    text = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE).decode()
    with handler.lock:  # the same lock the handler writes every other line under
        handler.stream.write(text)
        handler.stream.flush()


def dict_config(level: str) -> dict:
    """The same setup as logging.config.dictConfig, for Granian's own loggers."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.orjson.OrjsonFormatter",
                "fmt": FORMAT,
                "rename_fields": RENAMED,
                "timestamp": True,
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "_granian": {"handlers": ["stdout"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["stdout"], "level": level, "propagate": False},
        },
    }
