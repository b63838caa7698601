"""Which OTEL_* settings switch traces on, and which are refused at start rather than dropping
every span (tracing.exporters); the spans themselves: tests/e2e/test_traces.py."""

from __future__ import annotations

import pytest

from itemsapi import tracing
from itemsapi.tracing import TracingConfigError, exporters

ENDPOINT = "http://collector:4318"


@pytest.mark.parametrize(
    ("environ", "chosen"),
    [
        ({}, []),  # off by default
        ({"OTEL_SERVICE_NAME": "itemsapi"}, []),  # naming the service is not asking for traces
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT + "/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ["otlp"],
        ),
    ],
)
def test_traces_are_on_only_when_an_exporter_is_asked_for(environ, chosen):
    assert exporters(environ) == chosen


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "zipkin is not one of otlp, console"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "only http/protobuf",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "only http/protobuf",
        ),
    ],
)
def test_what_cannot_be_exported_is_refused_at_start(environ, message):
    with pytest.raises(TracingConfigError, match=message):
        tracing.start(environ)
    assert not tracing.enabled


def test_off_it_starts_nothing():
    tracing.start({})
    assert not tracing.enabled
    assert tracing.current_ids() is None


@pytest.fixture(autouse=True)
def _stopped():
    yield
    tracing.stop()


def test_serve_refuses_to_start_with_an_exporter_it_lacks():
    from click.testing import CliRunner

    from itemsapi.cli import main

    environ = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    result = CliRunner().invoke(main, ["serve"], env=environ)
    assert result.exit_code == 1
    assert "OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported" in result.output
