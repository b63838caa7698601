"""The per-request telemetry around the app: access line, request id, metrics by route."""

import logging

import pytest
from prometheus_client import REGISTRY

from tests.helpers import create_item


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "itemsapi.access"]


def requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("itemsapi_http_requests_total", labels) or 0.0


def test_one_access_line_per_request_with_what_was_answered(client, caplog):
    caplog.set_level(logging.INFO, logger="itemsapi.access")
    item = create_item(client)
    caplog.clear()
    response = client.get(f"/items/{item['id']}", headers={"X-Request-ID": "acc-1"})
    (line,) = access_lines(caplog)
    assert (line.method, line.path, line.status) == ("GET", f"/items/{item['id']}", 200)
    assert line.request_id == "acc-1"
    assert line.response_size == len(response.get_data())
    assert line.remote_addr == "127.0.0.1"
    assert line.duration_ms >= 0


def test_a_non_ascii_path_is_logged_as_the_client_wrote_it(client, caplog):
    caplog.set_level(logging.INFO, logger="itemsapi.access")
    client.get("/caf%C3%A9")
    (line,) = access_lines(caplog)
    assert (line.path, line.status) == ("/café", 404)


def test_requests_are_counted_by_route_template_not_raw_path(client):
    before = requests_counted("GET", "/items/{item_id}", "404")
    unmatched = requests_counted("GET", "unmatched", "404")
    client.get("/items/123456")
    client.get("/items/654321")
    client.get("/no/such/route")
    assert requests_counted("GET", "/items/{item_id}", "404") == before + 2
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
