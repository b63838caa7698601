"""compose.prod.yaml's nginx on loopback for the e2e tests: Debian's nginx (from `make tools`)
running deploy/nginx/nginx.conf itself, with only what ties it to the container changed: the
listening ports, the API's address, where its secrets and files live. Clients reach it over
TLS, each from a loopback address of its own when a test needs them to count as different
clients (nginx limits per client address)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from pathlib import Path

from tests.deploy.conftest import NGINX_CONF
from tests.e2e.crowd import Answer, exchange, within
from tests.helpers import free_port, make_certificate, require_program, wait_until


def render(text: str, folder: Path, plain_port: int, tls_port: int, api_port: int) -> str:
    """The production configuration, placed on loopback. Each replacement must match, so that
    a change to the file this would silently miss fails here instead."""
    once = {
        "listen 8080;": f"listen 127.0.0.1:{plain_port};",
        "listen 8443 ssl;": f"listen 127.0.0.1:{tls_port} ssl;",
        # Docker's DNS is not here; an address needs no resolver.
        "resolver 127.0.0.11 valid=10s ipv6=off;": "",
        "set $api http://api:8000;": f"set $api http://127.0.0.1:{api_port};",
    }
    for old, new in once.items():
        assert text.count(old) == 1, f"deploy/nginx/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    # The secrets, the pid file and the temporary files (a tmpfs in the container).
    for old in ("/run/secrets/", " /tmp/"):
        assert old in text, f"deploy/nginx/nginx.conf no longer has {old!r}"
    return text.replace(" /tmp/", f" {folder}/").replace("/run/secrets/", f"{folder}/")


class Nginx:
    def __init__(self, folder: Path, api_port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        make_certificate(folder)
        self.folder = folder
        self.plain_port, self.tls_port = free_port(), free_port()
        self.config = folder / "nginx.conf"
        self.config.write_text(
            render(NGINX_CONF.read_text(), folder, self.plain_port, self.tls_port, api_port)
        )
        self.log_path = folder / "nginx.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        nginx = require_program("nginx")
        command = [nginx, "-c", str(self.config), "-p", str(self.folder), "-e", "stderr"]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._answers, 10, "nginx to answer /live", log=self.log_path)
        return self

    def _answers(self) -> bool:
        return asyncio.run(request(self.tls_port, "GET", "/live", timeout=2)).status == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def client_address(n: int) -> str:
    """The n-th loopback source address (127.0.1.1 onwards): one client in nginx's eyes."""
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the throwaway certificate
    return context


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=_tls(), server_hostname="localhost", local_addr=(source, 0)
    )


async def request(
    port: int, method: str, path: str, *, head: str = "", body: bytes = b"",
    source: str = "127.0.0.1", timeout: float = 20,
) -> Answer:  # fmt: skip
    """One request over TLS on a new connection, `head` being extra header lines."""
    started = time.perf_counter()
    lines = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{head}"
    return await within(exchange(connect(port, source), lines, body, started), timeout, started)
