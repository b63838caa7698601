"""The writes of one server, told to all its workers before the writer answers.

PostgreSQL's NOTIFY reaches every worker, but after the commit and with no bound tied to the
writer's response: the client may already be reading from another worker that has not yet heard
of its write. So the writing worker also records the ids it changed here, in a small ring in a
file that `itemsapi serve` maps into every worker, and a worker looks at the ring's counter
before each cache lookup: one 8-byte read when nothing new was written, which is the usual case.

Layout: a counter (int64, the number of records ever written), then SLOTS int64 ids; record n
is in slot n % SLOTS. Id 0 means "drop everything". Writers take a lock; readers take none and
re-read the counter after the slots: a reader left more than SLOTS behind (records overwritten
under it) drops everything instead.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = "ITEMSAPI_CACHE_SYNC_FILE"  # set by `itemsapi serve` for its workers; not a setting
SLOTS = 4096
FLUSH = 0
_WORD = struct.Struct("<q")
SIZE = _WORD.size * (1 + SLOTS)


class WriteRing:
    """Without a file (one process: tests, a plain WSGI server) the ring lives in this
    process's memory and serves its threads the same way.

    `origin` names the workers sharing this ring, in announcements to other servers
    (announcer.py): the host and the folder `itemsapi serve` made for this ring, or for a ring in
    memory the host, process and a random part."""

    def __init__(self, path: Path | None = None) -> None:
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        if path is None:
            self._map = mmap.mmap(-1, SIZE)
            self.origin = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        else:
            self.origin = f"{socket.gethostname()}-{path.parent.name}"
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < SIZE:
                os.ftruncate(self._fd, SIZE)
            self._map = mmap.mmap(self._fd, SIZE)
        self._seen = self._count()  # what happened before this worker started is not its news

    @classmethod
    def from_env(cls) -> WriteRing:
        path = os.environ.get(ENV)
        return cls(Path(path) if path else None)

    def _count(self) -> int:
        return _WORD.unpack_from(self._map, 0)[0]

    def publish(self, ids: Iterable[int]) -> None:
        """Record ids (FLUSH for everything) for every worker of this server."""
        with self._locked():
            count = self._count()
            for item_id in ids:
                _WORD.pack_into(self._map, _WORD.size * (1 + count % SLOTS), item_id)
                count += 1
            _WORD.pack_into(self._map, 0, count)  # after the slots: readers trust what it covers

    def catch_up(self, apply: Callable[[list[int]], object]) -> None:
        """Hand the ids recorded since the last call to `apply` ([FLUSH] when this reader fell
        too far behind to know them). Nothing new, the usual case, costs one 8-byte read.

        `apply` runs under the lock: a thread of this worker that finds the records taken by
        another one waits until they have been applied, not merely read."""
        if self._count() == self._seen:
            return
        with self._thread_lock:
            seen, count = self._seen, self._count()
            if count == seen:
                return
            ids = [
                _WORD.unpack_from(self._map, _WORD.size * (1 + n % SLOTS))[0]
                for n in range(max(seen, count - SLOTS), count)
            ]
            if self._count() - seen > SLOTS:
                ids = [FLUSH]
            apply(ids)
            self._seen = count

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
