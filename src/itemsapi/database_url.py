"""DATABASE_URL as libpq reads it: checked before anything starts, and given a password kept
in a file (a Docker or Kubernetes secret) so that the URL itself carries none."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict


def check(url: str) -> None:
    """ValueError unless libpq can use `url` as it stands. libpq reads a bad port (or a stray
    character) only when it connects, and a server would then answer 503 for ever."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    for host in hosts.split(","):  # libpq takes several hosts, each with its own port
        port = host.rpartition("]")[2].partition(":")[2]
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"has a port that is not a number from 1 to 65535: {port[:20]!r}")
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"cannot be parsed: {str(exc).strip()}") from None


def with_password(url: str, password: str) -> str:
    """`url` with its password replaced by `password` (percent-encoded)."""
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}").geturl()


def with_password_from(url: str, file: Path, variable: str) -> str:
    """`url` with the password kept in `file` (its last line break dropped); ValueError, naming
    the `variable` that named the file, when it cannot be read."""
    try:
        password = file.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {exc.filename}: {exc.strerror}") from None
    return with_password(url, password)
