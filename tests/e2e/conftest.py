"""Fixtures that run the real server: `itemsapi serve` (Granian) as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from itemsapi.auth.dev_key import TOKEN_FILE
from itemsapi.auth.scopes import SCOPES
from tests.helpers import TOKENS, Cluster, create_key, free_port, http, wait_until


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path
    database_url: str = ""
    data_dir: Path = Path(".itemsapi")
    token: str | None = None  # a key with every scope, which tests.helpers.http sends

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def bearer(self) -> str | None:
        """The server's token, made on first need: a key with every scope in its database, or
        the embedded default's development key; None while the database cannot hold one
        (unreachable, not migrated yet)."""
        if self.token is None:
            self.token = _full_scope_token(self.database_url, self.data_dir)
            if self.token is not None and self.database_url:
                _until_held(self.url, self.token)
        return self.token

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """start_server(database_url, *args, wait="ready"|"live"|None, command=None, base_env=None,
    **env) -> Server. By default runs `itemsapi serve --port <free port> *args` with this
    process's environment; `command` and `base_env` replace those (ITEMSAPI_PORT is then set).
    wait=None returns as soon as the process is started. Access control is on, as by default:
    the server's `token` (a key with every scope made in its database, or the embedded
    default's development key) is sent by tests.helpers.http to it."""
    servers: list[Server] = []

    def start(
        database_url: str,
        *args: str,
        wait: str | None = "ready",
        command: list[str] | None = None,
        base_env: dict[str, str] | None = None,
        **env: str,
    ) -> Server:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        environment = {**(os.environ if base_env is None else base_env), **env}
        environment.update(DATABASE_URL=database_url, ITEMSAPI_PORT=str(port))
        if command is None:
            command = [sys.executable, "-m", "itemsapi", "serve", "--port", str(port), *args]
        with log_path.open("wb") as log:
            # A process group of its own, as a server started from a terminal has: tests can
            # signal it the way Ctrl-C does, and pytest's own Ctrl-C does not reach it.
            process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        data_dir = Path(environment.get("ITEMSAPI_DATA_DIR") or ".itemsapi")
        server = Server(f"http://127.0.0.1:{port}", process, log_path, database_url, data_dir)
        TOKENS[server.url] = server.bearer
        servers.append(server)

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError("server exited:\n" + log_path.read_text())
            return http("GET", f"{server.url}/{wait}", timeout=2).status == 200

        if wait is not None:
            wait_until(answers, 30, f"{server.url}/{wait}")
            server.bearer()
        return server

    yield start
    for server in servers:
        server.stop()
        TOKENS.pop(server.url, None)


def _until_held(url: str, token: str) -> None:
    """Wait, briefly, until the server takes a key just made: a worker that had read the key
    table before holds the new key once its creation is heard of (milliseconds). A server that
    does not answer, or answers otherwise, is the test's to judge."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            status = http("GET", f"{url}/v1/items?limit=1", headers={"Authorization":
                          f"Bearer {token}"}, timeout=1).status  # fmt: skip
        except OSError:
            return
        if status != 401:
            return
        time.sleep(0.01)


def _full_scope_token(database_url: str, data_dir: Path) -> str | None:
    if not database_url:
        token_file = data_dir / TOKEN_FILE
        return token_file.read_text().strip() if token_file.is_file() else None
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as conn:
            return create_key(conn, "e2e", list(SCOPES))[1]
    except psycopg.Error:
        return None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A PostgreSQL of the test's own, migrated, that it may stop, restart or freeze; thawed and
    stopped afterwards whatever the test left it in."""
    cluster = Cluster(tmp_path / "pg", free_port()).init()
    cluster.start()
    cluster.prepare_items()
    yield cluster
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        cluster.thaw()
    if cluster.running():
        cluster.stop()
