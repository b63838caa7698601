"""Admission control and body reading, on a small Flask app of its own (no server, no database):
which requests run, wait, or are refused at once, how bodies are read, and that credentials are
checked before a body is."""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import contextmanager

import pytest
from flask import Blueprint, Flask, Response, request
from werkzeug.test import EnvironBuilder

from itemsapi.auth.enforce import Enforcer
from itemsapi.auth.scopes import Policy, Principal
from itemsapi.config import Settings
from itemsapi.errors import Unauthorized
from itemsapi.web import problems, telemetry
from itemsapi.web.admission import Admission, granian_threads
from itemsapi.web.context import of
from tests.helpers import wait_until

SETTINGS = Settings(
    database_url="postgresql://u@h/db",
    blocking_threads=2,
    max_queued=1,
    max_body_reads=1,
    pool_timeout=0.3,
    max_body_bytes=1024,
)
GOOD_TOKEN = "good"


def authenticate(token: str) -> Principal:
    if token != GOOD_TOKEN:
        raise Unauthorized("unknown")
    return Principal("tester", frozenset({"read", "write"}))


class App:
    """A Flask app admitting as the API does; its item views answer 200 with the body they
    read, or block while `gate` is closed, and note how long each had left for the pool."""

    def __init__(self, settings: Settings = SETTINGS, secured: bool = False) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.wait_left: list[float] = []
        self.flask = Flask(__name__)
        problems.init_app(self.flask)
        enforcer = Enforcer(Policy(settings), authenticate if secured else None)
        Admission(settings, enforcer).init_app(self.flask)
        telemetry.init_app(self.flask, settings)
        bp = Blueprint("items", __name__)
        bp.add_url_rule("/v1/items/1", "item", self.view, methods=["GET", "POST"])
        self.flask.register_blueprint(bp)
        probes = Blueprint("probes", __name__)
        for path in ("/live", "/ready", "/health"):
            probes.add_url_rule(path, path.strip("/"), lambda: Response("ok"))
        self.flask.register_blueprint(probes)
        metrics = Blueprint("metrics", __name__)
        metrics.add_url_rule("/metrics", "scrape", lambda: Response("ok"))
        self.flask.register_blueprint(metrics)

    def view(self) -> Response:
        self.wait_left.append(of(request.environ).deadline - time.monotonic())
        self.gate.wait(10)
        return Response(request.get_data(), mimetype="text/plain")

    def __call__(self, environ, start_response):
        return self.flask(environ, start_response)


def call(app, path="/v1/items/1", body=None, **environ):
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured.update(status=int(status[:3]), headers=dict(headers))

    env = EnvironBuilder(path=path, method="GET" if body is None else "POST").get_environ()
    if body is not None:
        env.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    env.update(environ)
    chunks = app(env, start_response)
    return captured["status"], captured["headers"], b"".join(chunks)


def problem_type(body: bytes) -> str:
    return json.loads(body)["type"].rsplit(":", 1)[1]


@contextmanager
def occupied(admission, app, count):
    """`count` requests held inside the app while the block runs (or until the gate opens)."""
    app.gate.clear()
    threads = [threading.Thread(target=call, args=(admission,)) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    try:
        yield
    finally:
        app.gate.set()
        for thread in threads:
            thread.join()


def test_granian_gets_a_thread_for_every_place_admission_gives_and_some_for_the_probes():
    # run slots, queue places, body readers, export slots (default 2), import slots (1),
    # long-poll waiters (default 64), probes
    assert granian_threads(SETTINGS) == 2 + 1 + 1 + 2 + 1 + 64 + 8


def test_requests_beyond_the_run_slots_and_the_queue_get_503_at_once():
    app = admission = App()
    with occupied(admission, app, 3):  # two running, one waiting for a slot
        started = time.monotonic()
        status, headers, body = call(admission)
        assert time.monotonic() - started < 0.1
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert headers["Content-Type"] == "application/problem+json"
        assert problem_type(body) == "overloaded"


def test_a_waiting_request_gets_503_after_the_pool_timeout():
    app = admission = App()
    with occupied(admission, app, 2):
        started = time.monotonic()
        status, _, body = call(admission)
        assert 0.3 <= time.monotonic() - started < 0.5
        assert (status, problem_type(body)) == (503, "overloaded")


def test_a_request_that_waited_for_a_slot_waits_only_the_rest_of_the_pool_timeout():
    app = admission = App()
    with occupied(admission, app, 2):
        threading.Timer(0.1, app.gate.set).start()
        status, _, _ = call(admission)
    assert status == 200
    assert all(left > 0.25 for left in app.wait_left[:2])  # took a free slot: all of it
    assert 0.05 < app.wait_left[2] < 0.25


@pytest.mark.parametrize("path", ["/live", "/ready", "/health", "/metrics"])
def test_probes_and_metrics_are_never_refused(path):
    app = admission = App()
    with occupied(admission, app, 3):
        app.gate.set()  # the probe itself does not block; the slots stay taken
        assert call(admission, path)[0] == 200


def test_a_chunked_body_is_read_whole_and_handed_on_with_its_length():
    admission = App()
    status, _, body = call(admission, body=b'{"a": 1}', HTTP_TRANSFER_ENCODING="chunked")
    assert (status, body) == (200, b'{"a": 1}')


def test_a_chunked_body_over_the_limit_gets_413_like_a_declared_one():
    admission = App()
    chunked = call(admission, body=b"x" * 1025, HTTP_TRANSFER_ENCODING="chunked")
    declared = call(admission, body=b"", CONTENT_LENGTH="1025")
    for status, _, body in (chunked, declared):
        assert (status, problem_type(body)) == (413, "body-too-large")


def test_a_body_shorter_than_declared_gets_400():
    status, _, body = call(App(), body=b"abc", CONTENT_LENGTH="10")
    assert (status, problem_type(body)) == (400, "body-incomplete")


class SlowStream:
    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        self.arrived.wait(10)
        return b"{}"


def test_a_body_beyond_the_busy_readers_gets_503_unread():
    admission = App()
    slow = SlowStream()
    env = {"wsgi.input": slow, "CONTENT_LENGTH": "2"}
    reader = threading.Thread(target=call, args=(admission,), kwargs={"body": b"", **env})
    reader.start()
    try:
        wait_until(lambda: slow.reads == 1, 10, "the slow body to hold the reader")
        status, headers, body = call(admission, body=b"{}")
        assert (status, problem_type(body)) == (503, "overloaded")
        assert headers["Retry-After"] == "1"
    finally:
        slow.arrived.set()
        reader.join()
    assert call(admission, body=b"{}")[0] == 200  # the reader is free again


def test_one_client_address_cannot_take_every_body_reader():
    # 4 readers, 1 per client once half are busy: one address may take 2 (while half are
    # free), then only others are read.
    admission = App(SETTINGS.replace(max_body_reads=4, max_body_reads_per_client=1))
    slow = SlowStream()
    env = {"wsgi.input": slow, "CONTENT_LENGTH": "2", "REMOTE_ADDR": "10.0.0.1"}
    readers = [
        threading.Thread(target=call, args=(admission,), kwargs={"body": b"", **env})
        for _ in range(2)
    ]
    for reader in readers:
        reader.start()
    try:
        # Both taken: beyond its share while half the readers were free.
        wait_until(lambda: slow.reads == 2, 10, "both slow bodies to hold a reader")
        status, _, body = call(admission, body=b"{}", REMOTE_ADDR="10.0.0.1")
        assert (status, problem_type(body)) == (503, "overloaded")
        assert call(admission, body=b"{}", REMOTE_ADDR="10.0.0.2")[0] == 200  # another client
    finally:
        slow.arrived.set()
        for reader in readers:
            reader.join()
    assert call(admission, body=b"{}", REMOTE_ADDR="10.0.0.1")[0] == 200  # its readers are free


def test_credentials_are_checked_before_a_body_is_read():
    app = App(secured=True)
    slow = SlowStream()
    env = {"wsgi.input": slow, "CONTENT_LENGTH": "2"}
    status, _, body = call(app, body=b"", **env)  # no token
    assert (status, problem_type(body)) == (401, "unauthorized")
    status, _, body = call(app, body=b"", HTTP_AUTHORIZATION="Bearer bad", **env)
    assert (status, problem_type(body)) == (401, "unauthorized")
    assert slow.reads == 0  # refused from its headers: never held a reader
    slow.arrived.set()
    assert call(app, body=b"{}", HTTP_AUTHORIZATION=f"Bearer {GOOD_TOKEN}")[0] == 200


def test_a_request_refused_for_its_credentials_gives_its_run_slot_back():
    app = App(secured=True)
    for _ in range(SETTINGS.blocking_threads + SETTINGS.max_queued + 1):
        assert call(app, body=b"{}")[0] == 401
    assert call(app, body=b"{}", HTTP_AUTHORIZATION=f"Bearer {GOOD_TOKEN}")[0] == 200


def test_a_request_without_a_token_is_told_401_even_when_every_slot_is_taken():
    app = admission = App(secured=True)
    authorized = {"HTTP_AUTHORIZATION": f"Bearer {GOOD_TOKEN}"}
    app.gate.clear()
    holders = [
        threading.Thread(target=call, args=(admission,), kwargs=authorized) for _ in range(3)
    ]
    for holder in holders:
        holder.start()
    try:
        wait_until(lambda: len(app.wait_left) == 2, 10, "two requests to hold both run slots")
        time.sleep(0.05)  # the third waits for a slot in the only queue place
        for env in ({}, {"HTTP_AUTHORIZATION": "Basic abc"}):
            status, _, body = call(admission, **env)
            assert (status, problem_type(body)) == (401, "unauthorized")
        # A token needs a lookup, which needs a slot: refused as overload.
        status, _, body = call(admission, HTTP_AUTHORIZATION="Bearer bad")
        assert (status, problem_type(body)) == (503, "overloaded")
    finally:
        app.gate.set()
        for holder in holders:
            holder.join()
