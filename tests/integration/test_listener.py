"""The listener's published state against real PostgreSQL: `listening` changes only once every
subscriber has acted on the change, so whoever reads it (the health report, the cache tests)
never sees "not listening" while a cache still serves, nor "listening" while it still catches
up after a gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from itemsapi.cache.listener import Listener
from tests.helpers import wait_until


class GatedSubscriber:
    """A state callback that holds the listener's thread until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.told: list[bool] = []

    def __call__(self, listening: bool) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.told.append(listening)

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()


@pytest.fixture
def subscriber() -> GatedSubscriber:
    return GatedSubscriber()


@pytest.fixture
def listener(clean_db: str, subscriber: GatedSubscriber) -> Iterator[Listener]:
    listener = Listener(clean_db)
    listener.subscribe("itemsapi_test", lambda payload: None)
    listener.on_state_change(subscriber)
    yield listener
    subscriber.gate.set()
    listener.stop(timeout=5)


def test_listening_is_published_after_the_subscribers_acted(listener, subscriber, sql):
    listener.start()
    assert subscriber.entered.wait(10), "the listener never connected"
    assert not listener.listening  # connected, but the subscriber has not caught up yet
    subscriber.gate.set()
    wait_until(lambda: listener.listening, 5, "listening")
    assert subscriber.told == [True]

    subscriber.hold()
    sql.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
    assert subscriber.entered.wait(10), "the listener never noticed"
    assert listener.listening  # not yet "not listening": the subscriber still serves
    subscriber.gate.set()
    wait_until(lambda: not listener.listening, 5, "not listening")
    assert subscriber.told[:2] == [True, False]
