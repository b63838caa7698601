"""deploy/pgadmin/servers.json, loaded by pgAdmin's own loader the way the image loads it."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from tests.deploy.conftest import ROOT, require_tool

PGADMIN_CLI = ROOT / ".venv-pgadmin" / "bin" / "pgadmin4-cli"
DESKTOP_USER = "pgadmin4@pgadmin.org"

pytestmark = pytest.mark.slow


def test_pgadmin_registers_the_server_for_its_desktop_user(tmp_path):
    cli = require_tool(PGADMIN_CLI)
    data = tmp_path / "data"
    data.mkdir()
    # What the image's entrypoint makes of PGADMIN_CONFIG_* (compose sets desktop mode).
    config = tmp_path / "config_distro.py"
    config.write_text(
        "SERVER_MODE = False\n"
        "MASTER_PASSWORD_REQUIRED = False\n"
        "UPGRADE_CHECK_ENABLED = False\n"
        f"DATA_DIR = {str(data)!r}\n"
        f"SQLITE_PATH = {str(data / 'pgadmin4.db')!r}\n"
        f"LOG_FILE = {str(data / 'pgadmin4.log')!r}\n"
        f"SESSION_DB_PATH = {str(data / 'sessions')!r}\n"
        f"STORAGE_DIR = {str(data / 'storage')!r}\n"
    )
    env = {"CONFIG_DISTRO_FILE_PATH": str(config), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(cli), *args], env=env, capture_output=True, text=True, timeout=300, check=True
        )
        return result.stdout + result.stderr

    run("setup-db")
    output = run("load-servers", str(ROOT / "deploy" / "pgadmin" / "servers.json"))
    assert "Added 1 Server Group(s) and 1 Server(s)." in output  # it exits 0 even on failure

    with sqlite3.connect(data / "pgadmin4.db") as conn:
        rows = conn.execute(
            "SELECT s.name, s.host, s.port, s.maintenance_db, s.username, s.connection_params,"
            " u.email, g.name"
            " FROM server s JOIN user u ON u.id = s.user_id"
            " JOIN servergroup g ON g.id = s.servergroup_id"
        ).fetchall()
    assert len(rows) == 1
    name, host, port, database, user, params, owner, group = rows[0]
    assert (name, group, owner) == ("itemsapi", "itemsapi", DESKTOP_USER)
    assert (host, port, database, user) == ("db", 5432, "itemsapi", "itemsapi")
    assert json.loads(params)["passfile"] == "/var/lib/pgadmin/pgpass"
