"""pgAdmin from .venv-pgadmin, started the way the image's entrypoint starts it from compose.yaml,
and a client for the HTTP endpoints its browser UI calls."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from tests.deploy.conftest import ROOT, require_tool
from tests.helpers import http, wait_until

VENV_BIN = ROOT / ".venv-pgadmin" / "bin"
# The pgadmin-data volume's mount point: the one path that differs outside the container.
CONTAINER_DATA = "/var/lib/pgadmin"
START_IMAGE = " && exec /entrypoint.sh"
DB_ADDRESS = "db:5432:"  # the database as the compose network names it


def distro_config(compose: dict[str, Any], data: Path, port: int) -> str:
    """config_distro.py as the image's entrypoint writes it: each PGADMIN_CONFIG_<NAME> from
    compose becomes `NAME = value` (true/false spelled as Python's); only the data folder and
    the port are this test's."""
    lines = []
    for name, value in compose["services"]["pgadmin"]["environment"].items():
        if name.startswith("PGADMIN_CONFIG_"):
            value = {"true": "True", "false": "False"}.get(str(value).lower(), value)
            lines.append(f"{name.removeprefix('PGADMIN_CONFIG_')} = {value}")
    # In the image the data folder is the volume (config.py derives DATA_DIR before
    # config_distro turns SERVER_MODE off); here it is the test's folder.
    lines += [f"DATA_DIR = {str(data)!r}", f"DEFAULT_SERVER_PORT = {port}"]
    return "\n".join(lines) + "\n"


def write_passfile(compose: dict[str, Any], data: Path, password: str, port: int) -> Path:
    """Run the shell command compose's entrypoint runs before the image's own, with only the
    volume's path and the database's port changed (pgpass lines name the port); return the
    passfile it wrote."""
    start = compose["services"]["pgadmin"]["entrypoint"][-1]
    assert start.endswith(START_IMAGE)
    assert DB_ADDRESS in start
    command = start.removesuffix(START_IMAGE).replace("$$", "$")  # compose's escape for `$`
    command = command.replace(CONTAINER_DATA, str(data)).replace(DB_ADDRESS, f"db:{port}:")
    subprocess.run(
        ["sh", "-c", command],
        env={"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": password},
        check=True, timeout=10,
    )  # fmt: skip
    return data / "pgpass"


def servers_json(port: int, data: Path) -> dict[str, Any]:
    """deploy/pgadmin/servers.json with what must change outside compose: the port, HostAddr
    (Host stays `db`, which the passfile line names) and the volume's path."""
    servers = json.loads((ROOT / "deploy/pgadmin/servers.json").read_text())
    for server in servers["Servers"].values():
        server["Port"] = port
        server["HostAddr"] = "127.0.0.1"
        server["PassFile"] = server["PassFile"].replace(CONTAINER_DATA, str(data))
    return servers


class PgAdmin:
    """One pgAdmin on a data folder: `load_servers`, then `start`, as the image's entrypoint."""

    def __init__(self, root: Path, port: int, compose: dict[str, Any]) -> None:
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{port}"
        config = root / "config_distro.py"
        config.write_text(distro_config(compose, self.data, port))
        self.env = {"CONFIG_DISTRO_FILE_PATH": str(config), "HOME": str(root),
                    "PATH": "/usr/bin:/bin"}  # fmt: skip
        self.replace = compose["services"]["pgadmin"]["environment"].get(
            "PGADMIN_REPLACE_SERVERS_ON_STARTUP"
        )
        self.log = root / "pgadmin.out"
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [str(require_tool(VENV_BIN / "pgadmin4-cli")), *args], env=self.env,
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return result.stdout + result.stderr

    def load_servers(self, servers: dict[str, Any]) -> str:
        """What the image's entrypoint does before pgAdmin starts: create the configuration
        database on the first start, then load servers.json (on later starts only with
        PGADMIN_REPLACE_SERVERS_ON_STARTUP, and then with `--replace`)."""
        first_start = not (self.data / "pgadmin4.db").exists()
        if first_start:
            self.cli("setup-db")
        elif self.replace != "True":
            return ""
        path = self.data.parent / "servers.json"
        path.write_text(json.dumps(servers))
        replace = ["--replace"] if self.replace == "True" else []
        return self.cli("load-servers", str(path), *replace)

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(require_tool(VENV_BIN / "pgadmin4"))],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._pings, 60, f"pgAdmin at {self.url} (log: {self.log})", interval=0.2)

    def _pings(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        return http("GET", f"{self.url}/misc/ping", timeout=2).status == 200

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Browser:
    """A session as pgAdmin's web UI holds one: its cookie, and the CSRF token that
    /browser/js/utils.js hands the page (pgAdmin checks it on GET requests too)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.open("GET", "/browser/")  # desktop mode: this logs in the desktop user
        script = self.open("GET", "/browser/js/utils.js")[1].decode()
        self.csrf = re.search(r"pgAdmin\['csrf_token'\] = '([^']+)'", script).group(1)

    def open(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = {"X-pgA-CSRFToken": self.csrf} if hasattr(self, "csrf") else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.url + path
        request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310 (loopback)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, raw = self.open(method, path, body)
        return status, json.loads(raw)

    def nodes(self, path: str) -> dict[str, dict[str, Any]]:
        """A tree level, by label: what the browser shows when a node is expanded."""
        status, reply = self.json("GET", f"/browser/{path}")
        assert status == 200, reply
        # A node type's `nodes` answer in `result`, `children` and server groups in `data`.
        level = reply["data"] if reply.get("result") is None else reply["result"]
        return {node["label"]: node for node in level}

    def query(self, trans_id: int, sgid: int, sid: int, did: int, sql: str) -> list[list]:
        """Run one statement in a new query tool, as its Execute button does; its rows."""
        path = f"/sqleditor/initialize/sqleditor/{trans_id}/{sgid}/{sid}/{did}"
        status, reply = self.json("POST", path, {"dbname": "itemsapi"})
        assert status == 200, reply
        status, reply = self.json("POST", f"/sqleditor/query_tool/start/{trans_id}", {"sql": sql})
        assert status == 200, reply
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, reply = self.json("GET", f"/sqleditor/poll/{trans_id}")
            assert status == 200, reply
            if reply["data"]["status"] != "Busy":
                assert reply["data"]["status"] == "Success", reply
                return reply["data"]["result"]
            time.sleep(0.1)
        raise AssertionError(f"the query tool did not finish: {reply}")
