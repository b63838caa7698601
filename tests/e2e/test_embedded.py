"""The quick start's path: `itemsapi serve` with no DATABASE_URL runs its own PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import http, item_payload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_serve_without_database_url_uses_the_embedded_database_and_keeps_data(
    start_server, tmp_path, monkeypatch
):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    data_dir = tmp_path / "data"
    env = {"ITEMSAPI_DATA_DIR": str(data_dir)}

    first = start_server("", **env)
    # The first start made a development key, kept beside the data, and said how to use it.
    token_file = data_dir / "dev-token"
    assert first.token == token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert any("Authorization: Bearer $(cat" in line for line in first.log_lines())
    assert http("GET", f"{first.url}/v1/items", headers={"Authorization": None}).status == 401
    created = http("POST", f"{first.url}/v1/items", item_payload(name="kept"))
    assert created.status == 201
    assert first.stop() == 0
    pgdata = data_dir / "pgdata"
    assert (pgdata / "PG_VERSION").is_file()
    assert not (pgdata / "postmaster.pid").exists(), "the embedded server outlived the API"

    second = start_server("", **env)
    assert second.token == first.token  # reused
    items = http("GET", f"{second.url}/v1/items").json()["items"]
    assert [i["name"] for i in items] == ["kept"]


def test_init_db_without_database_url_sets_up_the_embedded_database(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("ITEMSAPI_DATA_DIR", str(tmp_path / "data"))
    init_db = subprocess.run(
        [sys.executable, "-m", "itemsapi", "init-db"], capture_output=True, text=True, timeout=120
    )
    assert init_db.returncode == 0, init_db.stdout + init_db.stderr
    assert "schema applied" in init_db.stdout
    # Looked at by a process of its own, which stops the embedded server again as it exits.
    check = (
        "from itemsapi import config\n"
        "from itemsapi.db.server import inspect_server\n"
        "from itemsapi.serve import embedded\n"
        "url = embedded.start(config.Settings.from_env().data_dir)\n"
        "print(inspect_server(url).schema_in_place)"
    )
    inspected = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120
    )
    assert inspected.stdout.strip() == "True", inspected.stdout + inspected.stderr
