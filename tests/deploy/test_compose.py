"""compose.yaml: dclint (the Compose Specification schema and best practices) and the
properties the stack relies on."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.deploy.conftest import ROOT, env_example, require_tool

DCLINT = ROOT / "tools" / "node_modules" / ".bin" / "dclint"


@pytest.mark.parametrize("compose_file", ["compose.yaml", "compose.prod.yaml"])
def test_dclint_finds_no_errors_and_no_warnings(compose_file):
    result = subprocess.run(
        [str(require_tool(DCLINT)), compose_file],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout + result.stderr


def test_the_four_services(compose):
    assert set(compose["services"]) == {"api", "db", "migrate", "pgadmin"}


def test_migrate_runs_once_from_the_api_image_before_the_api_starts(compose):
    migrate, api = compose["services"]["migrate"], compose["services"]["api"]
    assert migrate["build"] == api["build"]  # the same image: the same code and migrations
    assert migrate["command"][:2] == ["itemsapi", "migrate"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"
    assert migrate["environment"]["DATABASE_URL"] == api["environment"]["DATABASE_URL"]
    assert migrate["read_only"] is True
    assert migrate["cap_drop"] == ["ALL"]


def test_db_is_postgres_18_with_schema_volume_and_a_tcp_health_check(compose):
    db = compose["services"]["db"]
    assert db["image"] == "postgres:18"
    assert "db-data:/var/lib/postgresql" in db["volumes"]  # not .../data: the 18 images moved it
    assert not any(v.endswith("/var/lib/postgresql/data") for v in db["volumes"])
    assert "./sql/init.sql:/docker-entrypoint-initdb.d/init.sql:ro" in db["volumes"]
    test = db["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert test[test.index("-h") + 1] == "127.0.0.1"  # the init-time server listens on a socket
    assert db["stop_grace_period"]
    assert db["restart"] == "unless-stopped"
    assert set(db["deploy"]["resources"]["limits"]) >= {"cpus", "memory", "pids"}


def test_api_waits_for_a_healthy_db_and_runs_locked_down(compose):
    api = compose["services"]["api"]
    assert api["build"]["context"] == "."
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "/ready" in " ".join(api["healthcheck"]["test"])
    assert api["restart"] == "unless-stopped"
    assert set(api["deploy"]["resources"]["limits"]) >= {"cpus", "memory", "pids"}
    assert api["read_only"] is True
    assert any(t.startswith("/tmp:") for t in api["tmpfs"])  # metrics folder lives there
    assert "no-new-privileges:true" in api["security_opt"]
    assert api["cap_drop"] == ["ALL"]
    assert api["env_file"] == [{"path": ".env", "required": True}]
    assert api["environment"]["DATABASE_URL"].endswith("@db:5432/itemsapi")
    assert all(p.startswith("127.0.0.1:") for p in api["ports"])


def test_pgadmin_is_preregistered_on_loopback_and_healthy_only_after_db(compose):
    pgadmin = compose["services"]["pgadmin"]
    assert pgadmin["image"].startswith("dpage/pgadmin4:")
    assert pgadmin["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert pgadmin["ports"] == ["127.0.0.1:${PGADMIN_PORT:-5050}:80"]  # a console: loopback only
    assert "/misc/ping" in " ".join(pgadmin["healthcheck"]["test"])
    assert "pgadmin-data:/var/lib/pgadmin" in pgadmin["volumes"]
    env = pgadmin["environment"]
    assert env["PGADMIN_CONFIG_SERVER_MODE"] == "False"  # desktop mode: no login prompt
    assert env["PGADMIN_CONFIG_MASTER_PASSWORD_REQUIRED"] == "False"
    mount = f"./deploy/pgadmin/servers.json:{env['PGADMIN_SERVER_JSON_FILE']}:ro"
    assert mount in pgadmin["volumes"]
    # The entrypoint compares with "True": servers.json is then reloaded on every start.
    assert env["PGADMIN_REPLACE_SERVERS_ON_STARTUP"] == "True"


def test_the_passfile_pgadmin_writes_is_the_one_servers_json_names(compose):
    server = json.loads((ROOT / "deploy/pgadmin/servers.json").read_text())["Servers"]["1"]
    start = compose["services"]["pgadmin"]["entrypoint"][-1]
    assert f"> {server['PassFile']}" in start
    assert "umask 077" in start  # libpq ignores a passfile others can read
    assert start.endswith("exec /entrypoint.sh")
    db = compose["services"]["db"]["environment"]
    assert f"db:5432:*:{db['POSTGRES_USER']}:" in start
    assert (server["Host"], server["Port"]) == ("db", 5432)
    assert (server["MaintenanceDB"], server["Username"]) == (db["POSTGRES_DB"],
                                                              db["POSTGRES_USER"])  # fmt: skip


def test_no_secret_is_committed_and_every_variable_is_in_env_example():
    text = (ROOT / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    documented = env_example()
    assert used <= set(documented), used - set(documented)
    for secret in ("POSTGRES_PASSWORD", "PGADMIN_PASSWORD"):
        assert documented[secret] == ""  # the user must choose it: compose refuses an empty one
        assert f"${{{secret}:?" in text
