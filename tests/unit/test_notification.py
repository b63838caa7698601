"""The itemsapi_items payload, read once into a Notification, whoever wrote it."""

from __future__ import annotations

import pytest

from itemsapi.cache.notification import CLEAR, Notification


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # the items triggers (sql/migrations/0002)
        ("1765000000.25:7", Notification((7,), 1765000000.25)),
        ("1765000000.25:7,8,9", Notification((7, 8, 9), 1765000000.25)),
        ("1765000000.25:*", Notification(None, 1765000000.25)),
        # a server's announcement of its own writes (0004)
        (
            "1765000000.5:3,4:host-itemsapi-ring-x",
            Notification((3, 4), 1765000000.5, "host-itemsapi-ring-x"),
        ),
        ("1765000000.5:*:host-a", Notification(None, 1765000000.5, "host-a")),
        # POST /cache/clear
        (CLEAR, Notification(None)),
    ],
)
def test_every_payload_the_sql_writes_is_read(payload, expected):
    assert Notification.parse(payload) == expected


@pytest.mark.parametrize("payload", ["", "garbage", "12:x,1", "12:", "nan-ish:1", ":1"])
def test_an_unreadable_payload_means_everything_and_says_so(payload):
    note = Notification.parse(payload)
    assert note.ids is None  # a change must never go unapplied
    assert note.readable is False
