"""The embedded default database: a PostgreSQL started from the pgserver wheel's binaries in a
local data folder (kept between runs), for running and testing without any server to set up."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from types import ModuleType

from itemsapi.db.server import create_database

log = logging.getLogger(__name__)

DATABASE_NAME = "itemsapi"


class EmbeddedUnavailable(RuntimeError):
    """The embedded database was needed but pgserver is not installed."""


def start(data_dir: Path, *, database: str = DATABASE_NAME, cleanup: str | None = "stop") -> str:
    """Start (or reuse) the embedded server and return a URL for `database`, creating it.

    cleanup="stop" stops the server when this process exits; "delete" also removes the data.
    """
    pgserver = _pgserver()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pgdata", cleanup_mode=cleanup)
    create_database(server.get_uri("postgres"), database)
    url = server.get_uri(database)
    log.info("embedded PostgreSQL ready", extra={"data_dir": str(data_dir)})
    return url


def _pgserver() -> ModuleType:
    # Imported here: only the embedded path needs it.
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back
            # to /tmp, which is what we want anyway.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            import pgserver
    except ImportError:
        raise EmbeddedUnavailable(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set DATABASE_URL, or install it with `pip install 'itemsapi[embedded]'`"
        ) from None
    return pgserver
