"""What a notification on channel itemsapi_items says, defined once: parsed here into a typed
Notification, whoever sent it. The SQL that writes it names this module
(sql/migrations/0006_notification_comments.sql). Payloads:

    <epoch>:<id>,<id>,...          a trigger (0002): the rows one statement changed
    <epoch>:*                      a trigger: more than 64 rows, or TRUNCATE
    <epoch>:<ids or *>:<origin>    a server's announcement of its own writes (0004)
    clear                          POST /cache/clear (Notification.CLEAR)

<epoch> is the database's clock when the statement ran (seconds since 1970, fractional), so a
listener can tell how late it heard.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNEL = "itemsapi_items"
EVERYTHING = "*"
CLEAR = "clear"


@dataclass(frozen=True)
class Notification:
    ids: tuple[int, ...] | None  # None: every item may have changed
    sent_at: float | None = None  # epoch seconds; None for `clear` and unreadable payloads
    origin: str | None = None  # the announcing server; None from a trigger
    readable: bool = True

    @classmethod
    def parse(cls, payload: str) -> Notification:
        """Never raises: a payload that cannot be read means everything, as a change must
        never go unapplied."""
        if payload == CLEAR:
            return cls(None)
        stamp, _, rest = payload.partition(":")
        listed, _, origin = rest.partition(":")
        try:
            sent_at = float(stamp)
            ids = None if listed == EVERYTHING else tuple(int(i) for i in listed.split(","))
        except ValueError:
            return cls(None, readable=False)
        return cls(ids, sent_at, origin or None)
