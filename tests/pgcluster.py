"""A PostgreSQL cluster a test can stop, start and freeze, built from the pgserver wheel's
binaries. It listens on a fixed TCP port on 127.0.0.1, so its URL survives a restart."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import psycopg

from itemsapi import db, embedded

SERVICE_USER = "pgserver"  # PostgreSQL refuses to run as root


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
            [embedded.program(name), *args],
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
        db.apply_schema(self.url)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("TRUNCATE items RESTART IDENTITY")

    def item_ids(self) -> set[int]:
        with psycopg.connect(self.url) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM items")}
