"""Admission control and body reading, on a stand-in WSGI app (no server, no database): which
requests run, wait, or are refused at once, and how bodies are read."""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import contextmanager

import pytest

from itemsapi.admission import Admission, granian_threads
from itemsapi.config import Settings
from itemsapi.repository import pool_wait_left
from tests.helpers import wait_until

SETTINGS = Settings(
    database_url="postgresql://u@h/db",
    blocking_threads=2,
    max_queued=1,
    max_body_reads=1,
    pool_timeout=0.3,
    max_body_bytes=1024,
)


class App:
    """Answers 200 with the body it read, or blocks while `gate` is closed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.wait_left: list[float | None] = []

    def __call__(self, environ, start_response):
        self.wait_left.append(pool_wait_left.get())
        self.gate.wait(10)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]


def call(admission, path="/v1/items/1", body=None, **environ):
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured.update(status=int(status[:3]), headers=dict(headers))

    env = {"REQUEST_METHOD": "GET" if body is None else "POST", "PATH_INFO": path, **environ}
    if body is not None:
        env.setdefault("wsgi.input", io.BytesIO(body))
        env.setdefault("CONTENT_LENGTH", str(len(body)))
    chunks = admission(env, start_response)
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
    assert granian_threads(SETTINGS) == 2 + 1 + 1 + 8


def test_requests_beyond_the_run_slots_and_the_queue_get_503_at_once():
    app = App()
    admission = Admission(app, SETTINGS)
    with occupied(admission, app, 3):  # two running, one waiting for a slot
        started = time.monotonic()
        status, headers, body = call(admission)
        assert time.monotonic() - started < 0.1
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert headers["Content-Type"] == "application/problem+json"
        assert problem_type(body) == "overloaded"


def test_a_waiting_request_gets_503_after_the_pool_timeout():
    app = App()
    admission = Admission(app, SETTINGS)
    with occupied(admission, app, 2):
        started = time.monotonic()
        status, _, body = call(admission)
        assert 0.3 <= time.monotonic() - started < 0.5
        assert (status, problem_type(body)) == (503, "overloaded")


def test_a_request_that_waited_for_a_slot_waits_only_the_rest_of_the_pool_timeout():
    app = App()
    admission = Admission(app, SETTINGS)
    with occupied(admission, app, 2):
        threading.Timer(0.1, app.gate.set).start()
        status, _, _ = call(admission)
    assert status == 200
    assert app.wait_left[:2] == [None, None]  # took a free slot: the pool's own timeout
    assert 0.05 < app.wait_left[2] < 0.25


@pytest.mark.parametrize("path", ["/live", "/ready", "/health", "/metrics"])
def test_probes_and_metrics_are_never_refused(path):
    app = App()
    admission = Admission(app, SETTINGS)
    with occupied(admission, app, 3):
        app.gate.set()  # the probe itself does not block; the slots stay taken
        assert call(admission, path)[0] == 200


def test_a_chunked_body_is_read_whole_and_handed_on_with_its_length():
    admission = Admission(App(), SETTINGS)
    status, _, body = call(admission, body=b'{"a": 1}', HTTP_TRANSFER_ENCODING="chunked")
    assert (status, body) == (200, b'{"a": 1}')


def test_a_chunked_body_over_the_limit_gets_413_like_a_declared_one():
    admission = Admission(App(), SETTINGS)
    chunked = call(admission, body=b"x" * 1025, HTTP_TRANSFER_ENCODING="chunked")
    declared = call(admission, body=b"", CONTENT_LENGTH="1025")
    for status, _, body in (chunked, declared):
        assert (status, problem_type(body)) == (413, "body-too-large")


def test_a_body_shorter_than_declared_gets_400():
    status, _, body = call(Admission(App(), SETTINGS), body=b"abc", CONTENT_LENGTH="10")
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
    admission = Admission(App(), SETTINGS)
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
    admission = Admission(App(), SETTINGS.replace(max_body_reads=4, max_body_reads_per_client=1))
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
