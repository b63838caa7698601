"""The write announcer without a database: batching, retrying, overflowing, stopping."""

from __future__ import annotations

import threading

from itemsapi.cache import announcer
from itemsapi.cache.announcer import Announcer
from tests.helpers import wait_until


class Recorder:
    """A send that records its announcements, can be held, and can fail."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[list[int] | None] = []
        self.failures = failures
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, ids: list[int] | None, origin: str) -> None:
        assert origin == "here"
        self.entered.set()
        self.gate.wait(5)
        if self.failures:
            self.failures -= 1
            raise OSError("database away")
        self.sent.append(ids)


def started(send: Recorder) -> Announcer:
    made = Announcer(send, "here")
    made.start()
    return made


def busy(send: Recorder) -> Announcer:
    """An announcer whose first announcement ([1]) is out and held until send.gate is set."""
    send.gate.clear()
    made = started(send)
    made.announce([1])
    assert send.entered.wait(5)
    return made


def test_writes_made_while_a_send_is_out_go_together_in_the_next_one_without_repeats():
    send = Recorder()
    made = busy(send)
    for ids in ([2], [3, 2], [4]):
        made.announce(ids)
    send.gate.set()
    wait_until(lambda: len(send.sent) == 2, 5, "two announcements")
    assert send.sent == [[1], [2, 3, 4]]
    made.stop()


def test_ids_of_a_failed_send_are_sent_again(caplog):
    send = Recorder(failures=2)
    made = started(send)
    made.announce([7, 8])
    wait_until(lambda: send.sent, 5, "the retry")
    assert send.sent == [[7, 8]]
    assert caplog.text.count("could not announce writes") == 1  # once per outage
    made.stop()


def test_too_many_pending_ids_become_one_announcement_of_everything(monkeypatch):
    monkeypatch.setattr(announcer, "MAX_PENDING", 3)
    send = Recorder()
    made = busy(send)
    made.announce([2, 3, 4, 5])
    send.gate.set()
    wait_until(lambda: len(send.sent) == 2, 5, "two announcements")
    assert send.sent == [[1], None]
    made.stop()


def test_large_batches_are_split(monkeypatch):
    monkeypatch.setattr(announcer, "BATCH", 2)
    send = Recorder()
    made = busy(send)
    made.announce([2, 3, 4])
    send.gate.set()
    wait_until(lambda: len(send.sent) == 3, 5, "three announcements")
    assert send.sent == [[1], [2, 3], [4]]
    made.stop()


def test_stopping_sends_what_is_pending_then_ends_the_thread():
    send = Recorder()
    made = busy(send)
    made.announce([2])
    threading.Timer(0.2, send.gate.set).start()
    made.stop(timeout=5)
    assert send.sent == [[1], [2]]
    assert not made._thread.is_alive()


def test_writes_close_together_share_one_announcement():
    send = Recorder()
    made = started(send)
    made.announce([1])
    made.announce([2])  # well within the linger
    wait_until(lambda: send.sent, 5, "the announcement")
    made.stop()
    assert send.sent == [[1, 2]]
