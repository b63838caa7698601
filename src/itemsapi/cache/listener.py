"""LISTEN on a dedicated connection, in a thread of each worker, reconnecting until stopped.

Generic: callers subscribe callbacks to channels (the read cache to itemsapi_items, the API key
records to itemsapi_keys; anything else that must hear of changes made elsewhere can add its own
channel), and to the listening state. "Listening" means the connection is up and every LISTEN
has succeeded: from then on every notification committed is delivered. Subscribers are told it
turned false the moment the connection fails, before any reconnection attempt, so whoever relies
on notifications stops relying on them at once.

The connection is direct (ITEMSAPI_LISTEN_DATABASE_URL, else DATABASE_URL): LISTEN does not work
through a pooler in transaction mode. A silent network failure is caught by a heartbeat query
when nothing has arrived for a while; notifications that come during it are kept by psycopg
for the next notifies() call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between looks at the stop flag
HEARTBEAT = 5.0  # seconds of silence before the connection is checked with a query
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
CONNECT_TIMEOUT = 5


class Listener:
    def __init__(self, url: str, name: str = "itemsapi-listener") -> None:
        self._url = url
        self._name = name
        self._channels: dict[str, list[Callable[[str], None]]] = defaultdict(list)
        self._state_callbacks: list[Callable[[bool], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False
        self.backend_pid: int | None = None  # the server process of the current connection

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback(payload)` for each notification on `channel` (before start)."""
        self._channels[channel].append(callback)

    def on_state_change(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(listening)` each time listening starts or stops (before start)."""
        self._state_callbacks.append(callback)

    @property
    def listening(self) -> bool:
        return self._listening

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        """Ask the thread to end (within TICK, closing its connection); wait up to `timeout`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name=self._name,
                ) as conn:
                    self.backend_pid = conn.info.backend_pid
                    for channel in self._channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._set_listening(True)
                    delay = BACKOFF_FIRST
                    self._serve(conn)
            except Exception as exc:  # whatever broke, the thread must live on to reconnect
                # Said once per outage, not at every attempt.
                level = logging.WARNING if delay == BACKOFF_FIRST else logging.DEBUG
                if not self._stop.is_set():
                    extra = {"error": str(exc).strip(), "retry_in_seconds": delay}
                    log.log(level, "listener connection failed; reconnecting", extra=extra)
            finally:
                self._set_listening(False)
            self._stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _serve(self, conn: psycopg.Connection) -> None:
        quiet_since = time.monotonic()
        while not self._stop.is_set():
            for notification in conn.notifies(timeout=TICK):
                quiet_since = time.monotonic()
                self._dispatch(notification.channel, notification.payload)
            if time.monotonic() - quiet_since >= HEARTBEAT:
                conn.execute("SELECT 1")
                quiet_since = time.monotonic()

    def _dispatch(self, channel: str, payload: str) -> None:
        for callback in self._channels.get(channel, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("a notification callback failed", extra={"channel": channel})

    def _set_listening(self, listening: bool) -> None:
        if listening == self._listening:
            return
        if listening:
            log.info("listening for changes", extra={"channels": sorted(self._channels)})
        elif not self._stop.is_set():
            log.warning("not listening for changes until the connection is back")
        for callback in self._state_callbacks:
            try:
                callback(listening)
            except Exception:
                log.exception("a listener state callback failed")
        # Published once every subscriber has acted on it: whoever reads `listening` (a health
        # report, a test) then sees the cache already bypassed, or already caught up.
        self._listening = listening
