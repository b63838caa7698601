"""Workers start listening together.

Granian's workers each bind a socket of their own (SO_REUSEPORT) once the app factory returns,
and the kernel spreads new connections over the sockets listening at that moment. Building the
app takes a worker a few hundred milliseconds, and the first worker to finish would listen
alone meanwhile: a client that opens its keep-alive connections at the first answer (a
proxy's connection pool, a load generator, an HTTP/2 client) would keep every one of them on that
worker, leaving the others idle. So each worker, its app built, marks its arrival in a folder
`itemsapi serve` gives them all and waits until every worker has arrived. The wait is bounded:
a worker that fails to start must not keep the others from serving. A worker started later (a
replacement for one that died) finds them all arrived and goes on at once.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path

from itemsapi.serve.worker_folders import handed_down

log = logging.getLogger(__name__)

ENV = "ITEMSAPI_START_LINE"  # "<workers>:<folder>", set by `itemsapi serve` for its workers
TIMEOUT = 10.0  # seconds a worker waits for the others before serving anyway
_POLL = 0.002


def drawn(workers: int) -> AbstractContextManager[None]:
    """A start line for `workers` workers, in the environment they inherit, for the server's
    lifetime. Where no temporary folder can be made (a read-only file system) the workers
    start without one, as before there was a start line."""
    return handed_down(
        "itemsapi-start-", ENV, lambda folder: f"{workers}:{folder}",
        "workers start without a start line",
    )  # fmt: skip


def wait(timeout: float | None = None) -> bool:
    """Mark this worker arrived and wait until all have; False if they did not within
    `timeout` (TIMEOUT). Without a start line (the app run some other way) there is nothing to
    wait for."""
    line = os.environ.get(ENV)
    if not line:
        return True
    workers, folder = line.split(":", 1)
    deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
    try:
        (Path(folder) / str(os.getpid())).touch()
        while len(os.listdir(folder)) < int(workers):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
    except FileNotFoundError:  # the folder was cleaned away (a weeks-old /tmp): serve
        pass
    return True
