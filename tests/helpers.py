"""Helpers shared by the test modules: test data, real HTTP, waiting, and a PostgreSQL cluster a
test can stop, start and freeze (built from the pgserver wheel's binaries, on a fixed TCP port
on 127.0.0.1, so that its URL survives a restart)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from flask.testing import FlaskClient

from itemsapi.auth.keys import digest, new_token
from itemsapi.db import migrations


def item_payload(**overrides: Any) -> dict[str, Any]:
    """A valid POST/PUT body; keyword arguments replace or add fields."""
    payload: dict[str, Any] = {
        "name": "Widget",
        "description": "A useful widget",
        "price": 19.99,
        "quantity": 5,
        "attributes": {"color": "red", "size": {"w": 10, "h": 20}},
    }
    payload.update(overrides)
    return payload


def create_item(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/items", json=item_payload(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def etag_of(item: dict[str, Any]) -> str:
    return f'"{item["id"]}-{item["version"]}"'


class HttpResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


# The bearer tokens of the servers tests start, by origin (tests/e2e/conftest.py), each got when
# first needed (the database may not hold keys yet when the server starts): http() sends the
# origin's token unless the request names its own Authorization header (None: send none).
TOKENS: dict[str, Callable[[], str | None]] = {}
OPEN_PATHS = frozenset({"/live", "/ready", "/health"})  # probes: no token to find first
# Sent while a server's database cannot hold a key yet (down, not migrated): well-formed, so the
# server has to look it up, and answers what its database state says (503), not 401.
NO_KEY_YET = "itemsapi_000000000000_" + "0" * 43


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str | None] | None = None,
    timeout: float = 10,
    declared: int | None = None,
) -> HttpResponse:
    """One real HTTP request (no client library between the test and the server). `declared`:
    send only the headers, declaring a body of that many bytes, and wait for the answer (a
    server refusing a body from its declared length closes the connection unread, and a client
    still sending a large body may see it reset before it can read the answer)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = dict(headers or {})
    if "Authorization" not in headers:
        bearer = TOKENS.get(f"{parts.scheme}://{parts.netloc}")
        if bearer and parts.path not in OPEN_PATHS:
            headers["Authorization"] = f"Bearer {bearer() or NO_KEY_YET}"
    elif headers["Authorization"] is None:
        del headers["Authorization"]
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        path = parts.path + ("?" + parts.query if parts.query else "")
        if declared is None:
            conn.request(method, path, body=data, headers=headers)
        else:
            conn.putrequest(method, path)
            for name, value in {**headers, "Content-Length": str(declared)}.items():
                conn.putheader(name, value)
            conn.endheaders()
        response = conn.getresponse()
        return HttpResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def run_at_once(action: Callable[[], object], times: int, timeout: float = 60) -> list[Exception]:
    """Run `action` in `times` threads released together; return what they raised (an
    exception in a thread would not fail the test on its own)."""
    start = threading.Barrier(times)
    failures: list[Exception] = []

    def run() -> None:
        start.wait()
        try:
            action()
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return failures


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1,
    log: Path | None = None,
) -> None:  # fmt: skip
    """Until `predicate` holds, asking every `interval` seconds; a refused or reset request
    (OSError) counts as "not yet". On timeout the error quotes `log` (a process's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    output = f":\n{log.read_text()}" if log is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{output}")


def make_the_schema_fail(database_url: str) -> None:
    """Give the database a jsonb_merge_patch(jsonb, jsonb) returning something else: the
    script's CREATE OR REPLACE FUNCTION, after the table and its indexes, cannot replace it,
    so sql/init.sql fails part way, and no retry helps."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION jsonb_merge_patch(jsonb, jsonb) RETURNS text"
            " LANGUAGE sql AS 'SELECT 1::text'"
        )


class TableLock:
    """While held, a transaction has ACCESS EXCLUSIVE on items: every statement on it waits."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)

    def hold(self) -> None:
        self.conn.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.rollback()


def api_backends(database_url: str, *, waiting_on_lock: bool = False) -> list[int]:
    """Server pids of the API's pooled sessions (optionally only those waiting on a lock)."""
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = 'itemsapi'"
    if waiting_on_lock:
        query += " AND wait_event_type = 'Lock'"
    with psycopg.connect(database_url) as conn:
        return [pid for (pid,) in conn.execute(query)]


def require_program(name: str) -> str:
    """The path of a program `make tools` installs (Debian puts some in /usr/sbin)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: run `make tools`")
    return path


def make_certificate(folder: Path) -> None:
    """A throwaway self-signed certificate and key, `tls_certificate` and `tls_key` in `folder`:
    what compose.prod.yaml's secrets hold."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(folder / "tls_key"),
         "-out", str(folder / "tls_certificate")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVICE_USER = "pgserver"  # PostgreSQL refuses to run as root


def create_key(conn: psycopg.Connection, name: str, scopes: list[str]) -> tuple[str, str]:
    """A key made behind the API's back, as an operator's SQL would: (key id, token)."""
    key_id, token = new_token()
    conn.execute(
        "INSERT INTO api_keys (id, name, scopes, token_sha256) VALUES (%s, %s, %s, %s)",
        (key_id, name, scopes, digest(token)),
    )
    return key_id, token


def revoke_key(conn: psycopg.Connection, key_id: str) -> None:
    conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (key_id,))


def apply_baseline(database_url: str) -> None:
    """Run sql/init.sql alone, as the postgres image does on an empty volume."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(migrations.baseline_path().read_text())


@functools.cache
def pg_bin() -> Path:
    """The folder of the PostgreSQL programs the pgserver wheel ships (initdb, pg_ctl, psql,
    pgbench...). As root, clusters run as SERVICE_USER, who may not reach into the checkout
    (under /root, or a folder made by mktemp -d): they get a copy in the temporary folder, laid
    out as in site-packages (the programs find their libraries at ../../../pgserver.libs)."""
    import pgserver

    site = Path(pgserver.__file__).parent.parent
    if os.geteuid() != 0:
        return site / "pgserver" / "pginstall" / "bin"
    postgres = site / "pgserver" / "pginstall" / "bin" / "postgres"
    stamp = f"{postgres.stat().st_size}-{int(postgres.stat().st_mtime)}"
    copy = Path(tempfile.gettempdir()) / f"itemsapi-pginstall-{stamp}"
    if not copy.is_dir():
        partial = Path(tempfile.mkdtemp(prefix="itemsapi-pginstall-"))
        partial.chmod(0o755)
        shutil.copytree(site / "pgserver" / "pginstall", partial / "pgserver" / "pginstall")
        shutil.copytree(site / "pgserver.libs", partial / "pgserver.libs")
        with contextlib.suppress(OSError):  # another test process made it first
            partial.rename(copy)
        shutil.rmtree(partial, ignore_errors=True)
    return copy / "pgserver" / "pginstall" / "bin"


def pg_program(name: str) -> str:
    return str(pg_bin() / name)


def _as_service_user() -> dict:
    if os.geteuid() != 0:
        return {}
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(SERVICE_USER)
    return {"user": SERVICE_USER}


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        # The superuser over the Unix socket, which stays trusted whatever TCP requires.
        self.socket_url = f"postgresql://postgres@/postgres?host={self.data}&port={port}"
        self._run_as = _as_service_user()

    def _bin(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [pg_program(name), *args],
            capture_output=True, text=True, timeout=60, check=check, **self._run_as,
        )  # fmt: skip

    def init(self, host_auth: str = "trust") -> Cluster:
        """initdb; host_auth is the method TCP connections must pass (e.g. scram-sha-256)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            from pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.root)
            uid = pwd.getpwnam(SERVICE_USER).pw_uid
            os.chown(self.root, uid, -1)
        self._bin("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  f"--auth-host={host_auth}", "-E", "utf8")  # fmt: skip
        return self

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.data} -c max_connections=50"
        self._bin("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-o", options,
                  "-l", str(self.data / "server.log"), "start")  # fmt: skip

    def stop(self) -> None:
        self._bin("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def running(self) -> bool:
        return self._bin("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """SIGSTOP the server and its backends: connections stay open but nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def prepare_items(self) -> None:
        migrations.migrate(self.url)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("TRUNCATE items RESTART IDENTITY")

    def item_ids(self) -> set[int]:
        with psycopg.connect(self.url) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM items")}
