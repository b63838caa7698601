"""The per-request telemetry around the app: access line, request id, metrics by route."""

import io
import json
import logging

import pytest
from prometheus_client import REGISTRY
from pythonjsonlogger.orjson import OrjsonFormatter

from tests.helpers import create_item


@pytest.fixture
def access_lines(app):
    """The access lines written meanwhile, parsed, read from the JSON handler's stream."""
    (handler,) = [
        h for h in logging.getLogger().handlers if isinstance(h.formatter, OrjsonFormatter)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)

    def read() -> list[dict]:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        return [line for line in lines if line["logger"] == "itemsapi.access"]

    yield read
    handler.setStream(previous)


def requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("itemsapi_http_requests_total", labels) or 0.0


def test_one_access_line_per_request_with_what_was_answered(client, access_lines):
    item = create_item(client)
    response = client.get(f"/v1/items/{item['id']}", headers={"X-Request-ID": "acc-1"})
    created, line = access_lines()
    assert (created["method"], created["status"]) == ("POST", 201)
    assert (line["method"], line["path"], line["status"]) == ("GET", f"/v1/items/{item['id']}", 200)
    assert line["request_id"] == "acc-1"
    assert line["response_size"] == len(response.get_data())
    assert line["remote_addr"] == "127.0.0.1"
    assert line["duration_ms"] >= 0
    assert (line["level"], line["message"]) == ("INFO", "request")
    assert {"timestamp", "pid"} <= set(line)


def test_a_non_ascii_path_is_logged_as_the_client_wrote_it(client, access_lines):
    client.get("/caf%C3%A9")
    (line,) = access_lines()
    assert (line["path"], line["status"]) == ("/café", 404)


def test_the_access_line_follows_its_logger_level(client, access_lines):
    logging.getLogger("itemsapi.access").setLevel(logging.WARNING)
    try:
        client.get("/live")
    finally:
        logging.getLogger("itemsapi.access").setLevel(logging.NOTSET)
    client.get("/ready")
    assert [line["path"] for line in access_lines()] == ["/ready"]


def test_requests_are_counted_by_route_template_not_raw_path(client):
    before = requests_counted("GET", "/v1/items/{item_id}", "404")
    unmatched = requests_counted("GET", "unmatched", "404")
    client.get("/v1/items/123456")
    client.get("/v1/items/654321")
    client.get("/no/such/route")
    assert requests_counted("GET", "/v1/items/{item_id}", "404") == before + 2
    assert requests_counted("GET", "unmatched", "404") == unmatched + 1


def test_made_up_methods_share_one_series(client):
    before = requests_counted("other", "unmatched", "404")
    for method in ("BREW", "WHEN", "FETCH"):
        assert client.open("/no/such/route", method=method).status_code == 404
    assert requests_counted("other", "unmatched", "404") == before + 3
    assert requests_counted("BREW", "unmatched", "404") == 0


def test_log_lines_written_while_serving_carry_the_request_id(app, client, caplog):
    @app.get("/shout")
    def shout():
        logging.getLogger("itemsapi.test").warning("inside the request")
        return "ok"

    client.get("/shout", headers={"X-Request-ID": "inside-1"})
    (record,) = [r for r in caplog.records if r.getMessage() == "inside the request"]
    assert record.request_id == "inside-1"
    logging.getLogger("itemsapi.test").warning("outside any request")
    (outside,) = [r for r in caplog.records if r.getMessage() == "outside any request"]
    assert not hasattr(outside, "request_id")
