"""Traces (OpenTelemetry): a span per request, with children for the wait on the pool and for
each SQL statement, exported over OTLP. Off unless the standard OTEL_* variables name an
exporter; then the SDK reads the rest of them itself (endpoint, headers, sampler, batching,
resource, propagators).

Each worker starts its own provider when its services open (Services.open, after Granian has
made the process), so no exporter thread or queue is ever inherited across a fork. The spans
are made here by hand rather than by the contrib instrumentations: the psycopg one patches
psycopg.connect, which psycopg_pool's connections never go through, and its SQL commenter
has broken pooled connections (docs/design.md). While tracing is off every hook is one test of
`enabled`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from itemsapi.config import ConfigError

log = logging.getLogger(__name__)

# Whether this process traces: set by start(), read by every hook before it does anything.
enabled = False
_provider: Any = None
_tracer: trace.Tracer = trace.NoOpTracer()
EXPORTERS = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"  # the one OTLP transport installed (no gRPC stack)
SERVICE_NAME = "itemsapi"
DB_ATTRIBUTES = {"db.system.name": "postgresql"}


class TracingConfigError(ConfigError):
    """The OTEL_* variables ask for something this build cannot do (refused at start)."""


def exporters(environ: Mapping[str, str]) -> list[str]:
    """The exporters the OTEL_* variables ask for; none (tracing off) unless they name one, or
    give an OTLP endpoint, and the SDK is not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        named = "otlp" if any(environ.get(name, "").strip() for name in endpoints) else ""
    chosen = [name.strip() for name in named.split(",") if name.strip() not in ("", "none")]
    unknown = [name for name in chosen if name not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not one of {', '.join(EXPORTERS)}"
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", OTLP_PROTOCOL
    )
    if "otlp" in chosen and protocol.strip() != OTLP_PROTOCOL:
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL: only {OTLP_PROTOCOL} is supported")
    return chosen


def start(environ: Mapping[str, str] | None = None) -> None:
    """Start this process's provider if the OTEL_* variables ask for traces."""
    global enabled, _provider, _tracer
    chosen = exporters(os.environ if environ is None else environ)
    if not chosen or enabled:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES; the worker's pid tells the workers apart.
    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER and its argument
    for name in chosen:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter: Any = OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_* endpoint, headers, ...
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_*
    _provider, _tracer = provider, provider.get_tracer("itemsapi")
    enabled = True
    log.info("tracing on", extra={"exporters": chosen})


def stop() -> None:
    """Send what is pending and stop the provider (at the worker's exit); again is harmless."""
    global enabled, _provider, _tracer
    provider, _provider = _provider, None
    enabled, _tracer = False, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


class _EnvironGetter(Getter[dict]):
    """Request headers (traceparent, tracestate, baggage) from a WSGI environ."""

    def get(self, carrier: dict, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, carrier: dict) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_ENVIRON = _EnvironGetter()


class RequestSpan:
    """A request's server span, current on its thread from begin to detach; ended by finish,
    which may come later (a streamed export ends when its stream does)."""

    __slots__ = ("_method", "_token", "span")

    def __init__(self, environ: dict[str, Any]) -> None:
        parent = propagate.extract(environ, getter=_ENVIRON)  # traceparent, tracestate
        method = self._method = environ.get("REQUEST_METHOD", "")
        self.span = _tracer.start_span(
            method, parent, SpanKind.SERVER, {"http.request.method": method}
        )
        self._token = context.attach(trace.set_span_in_context(self.span, parent))

    def detach(self) -> None:
        context.detach(self._token)

    def ids(self) -> dict[str, str]:
        return _ids(self.span.get_span_context())

    def finish(self, route: str, status: int, principal: str | None, cache: str | None) -> None:
        span = self.span
        span.update_name(f"{self._method} {route}")
        attributes: dict[str, Any] = {"http.route": route, "http.response.status_code": status}
        if principal is not None:
            attributes["enduser.id"] = principal
        if cache is not None:
            attributes["itemsapi.cache"] = cache
        span.set_attributes(attributes)  # one call: each takes the span's lock
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()


def _ids(span_context: trace.SpanContext) -> dict[str, str]:
    return {
        "trace_id": trace.format_trace_id(span_context.trace_id),
        "span_id": trace.format_span_id(span_context.span_id),
    }


def current_ids() -> dict[str, str] | None:
    """The trace and span ids of the span current on this thread, if any (for log lines)."""
    span_context = trace.get_current_span().get_span_context()
    return _ids(span_context) if span_context.is_valid else None


def in_request() -> bool:
    """Whether a recorded span is current: database spans are children of requests only, never
    roots of their own (the purger's and the announcer's statements)."""
    return enabled and trace.get_current_span().is_recording()


@contextmanager
def pool_wait(pool_name: str) -> Iterator[None]:
    with _tracer.start_as_current_span(
        "pool wait", kind=SpanKind.INTERNAL,
        attributes={**DB_ATTRIBUTES, "db.client.connection.pool.name": pool_name},
    ):  # fmt: skip
        yield


@contextmanager
def statement(text: str) -> Iterator[None]:
    """A span for one SQL statement: named for its first word, with its text (parameters are
    sent apart from it, so it never holds a value)."""
    operation = text.lstrip().split(None, 1)[0].upper() if text.strip() else "SQL"
    attributes = {**DB_ATTRIBUTES, "db.operation.name": operation, "db.query.text": text}
    with _tracer.start_as_current_span(operation, kind=SpanKind.CLIENT, attributes=attributes):
        yield
