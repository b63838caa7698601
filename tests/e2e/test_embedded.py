"""The quick start's path: `itemsapi serve` with no DATABASE_URL runs its own PostgreSQL."""

from __future__ import annotations

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
    created = http("POST", f"{first.url}/items", item_payload(name="kept"))
    assert created.status == 201
    assert first.stop() == 0
    pgdata = data_dir / "pgdata"
    assert (pgdata / "PG_VERSION").is_file()
    assert not (pgdata / "postmaster.pid").exists(), "the embedded server outlived the API"

    second = start_server("", **env)
    items = http("GET", f"{second.url}/items").json()["items"]
    assert [i["name"] for i in items] == ["kept"]
