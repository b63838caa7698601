"""What the benchmarks borrow from the product: a bearer token made as `itemsapi keys create`
makes one, and the pgbench that ships with the embedded PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

from itemsapi.auth.keys import create_key
from itemsapi.config import Settings
from itemsapi.db.database import direct
from itemsapi.db.keys import KeyRepository
from itemsapi.db.pool import connection_options


def new_token(database_url: str, name: str, scopes: list[str]) -> str:
    options = connection_options(Settings(database_url=database_url))
    with direct(database_url, options) as database:
        return create_key(KeyRepository(database), name, scopes)[1]


def pgbench() -> str:
    """Debian's pgbench if installed, else the embedded PostgreSQL's."""
    import pgserver

    shipped = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    return shutil.which("pgbench") or str(shipped)
