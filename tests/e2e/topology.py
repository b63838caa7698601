"""A scaled-out topology on loopback for the e2e tests: PostgreSQL (tests.helpers.Cluster) with
an application role whose session settings live on the server, a real PgBouncer in transaction
mode in front of it, and a real HAProxy in front of API replicas (Debian's packages, from
`make tools`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import psycopg

from itemsapi.db import migrations
from tests.helpers import SERVICE_USER, Cluster, free_port, require_program, wait_until

APP_ROLE = "itemsapi"
STATEMENT_TIMEOUT_MS = 1000


def prepare_database(cluster: Cluster) -> str:
    """Migrate on the direct URL, then give the API a role of its own that carries its session
    settings (what a pooler cannot take from the client). The database's own TimeZone is set
    elsewhere on purpose: the role's UTC must win. Returns the role's direct URL."""
    migrations.migrate(cluster.url)
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        for statement in (
            f"CREATE ROLE {APP_ROLE} LOGIN",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
            f"ALTER ROLE {APP_ROLE} SET statement_timeout = {STATEMENT_TIMEOUT_MS}",
            f"ALTER ROLE {APP_ROLE} SET TimeZone = 'UTC'",
            # The API announces its own writes after commit (the read cache's triggers skip it).
            f"ALTER ROLE {APP_ROLE} SET itemsapi.announce = 'after_commit'",
            "ALTER DATABASE postgres SET TimeZone = 'America/New_York'",
        ):
            conn.execute(statement)
    return cluster.url.replace("postgres@", f"{APP_ROLE}@", 1)


def _run_as_service_user() -> dict:
    # PgBouncer refuses to run as root, as PostgreSQL does.
    if os.geteuid() != 0:
        return {}
    return {"user": SERVICE_USER}


def _give_to_service_user(folder: Path) -> None:
    if os.geteuid() != 0:
        return
    from pgserver.utils import ensure_prefix_permissions

    ensure_prefix_permissions(folder)
    shutil.chown(folder, SERVICE_USER)
    for path in folder.iterdir():
        shutil.chown(path, SERVICE_USER)


class PgBouncer:
    """pgbouncer in pool_mode = transaction on 127.0.0.1, trust auth for the listed users."""

    def __init__(self, folder: Path, cluster: Cluster, pool_size: int, users: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.pool_size = pool_size
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in users))
        self.ini = folder / "pgbouncer.ini"
        self.ini.write_text(
            f"""[databases]
postgres = host=127.0.0.1 port={cluster.port} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
        )
        _give_to_service_user(folder)
        self.process: subprocess.Popen | None = None

    def url(self, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PgBouncer:
        self.process = subprocess.Popen(
            [require_program("pgbouncer"), str(self.ini)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **_run_as_service_user(),
        )  # fmt: skip
        wait_until(self._answers, 15, f"pgbouncer on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("pgbouncer exited:\n" + self.log())
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # SIGINT: a safe shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# The balancer's retry policy, which the replica test's failure bound follows from:
# - a connection that fails (a replica just killed, before the health check marks it down) is
#   retried, up to `retries 2` times, on another replica (`option redispatch`): any method;
# - a request already sent to a replica that dies before answering (an empty response) is
#   retried only when its method is idempotent: a POST may have been stored, so it is not,
#   and that client gets a 502.
HAPROXY_CONFIG = """global
    maxconn 512

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1

frontend api
    bind 127.0.0.1:{port}
    acl non_idempotent method POST PATCH
    http-request disable-l7-retry if non_idempotent
    default_backend replicas

backend replicas
    balance roundrobin
{servers}
"""


class HAProxy:
    def __init__(self, folder: Path, backends: list[str]) -> None:
        self.port = free_port()
        servers = "\n".join(
            f"    server replica{n} {address} check" for n, address in enumerate(backends)
        )
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "haproxy.cfg"
        self.config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        self.log_path = folder / "haproxy.log"
        self.process: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        haproxy = require_program("haproxy")
        check = subprocess.run(
            [haproxy, "-c", "-f", str(self.config)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [haproxy, "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._listening, 10, "haproxy to listen", log=self.log_path)
        return self

    def _listening(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):  # OSError: not yet
            return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
