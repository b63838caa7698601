"""API keys beyond the matrix: revocation through the cached key records, the CLI, last_used_at, the
settings that open parts of the API, metrics and the access line."""

from __future__ import annotations

import io
import json
import logging
import os
import stat

import psycopg
import pytest
from flask import Blueprint, Response
from prometheus_client import REGISTRY
from pythonjsonlogger.orjson import OrjsonFormatter

from itemsapi.app import close_app, create_app, services_of
from itemsapi.auth import dev_key
from itemsapi.auth.keys import CHANNEL as KEYS_CHANNEL
from itemsapi.auth.keys import KeyStore, digest
from itemsapi.cli import main
from itemsapi.config import Settings
from itemsapi.db.database import direct
from itemsapi.db.keys import KeyRepository
from itemsapi.db.pool import connection_options
from itemsapi.errors import DatabaseUnavailable
from tests.helpers import apply_baseline, create_key, revoke_key, wait_until

UNKNOWN = "itemsapi_0123456789ab_" + "A" * 43


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# How long a revocation may take to reach a worker that caches key records: the notification's
# delivery (docs/operations.md, "Access control"), with room for a loaded machine.
REVOCATION_BOUND = 1.0


def test_a_revoked_key_is_refused_once_the_revocation_is_heard_of(
    app, runner, clean_db, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    created = runner.invoke(main, ["keys", "create", "--name", "ci", "--scopes", "read"])
    assert created.exit_code == 0, created.output
    token = created.output.splitlines()[-1]
    key_id = token.split("_")[1]
    client = app.test_client()
    for _ in range(2):  # read, then served from the worker's cache of records
        assert client.get("/v1/items", headers=bearer(token)).status_code == 200
    revoked = runner.invoke(main, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    wait_until(
        lambda: client.get("/v1/items", headers=bearer(token)).status_code == 401,
        REVOCATION_BOUND, "the revocation", interval=0.01,
    )  # fmt: skip
    assert client.get("/v1/items", headers=bearer(token)).status_code == 401


def quietly(sql: psycopg.Connection, statement: str) -> None:
    """Run a statement with the triggers off for this session: a change nobody hears of."""
    with sql.transaction():
        sql.execute("SET LOCAL session_replication_role = replica")
        sql.execute(statement)


def test_key_records_are_cached_while_listening_and_read_every_time_when_not(app, api_token, sql):
    wait_until(lambda: services_of(app).listener.listening, 10, "the listener")
    client = app.test_client()
    assert client.get("/v1/items", headers=bearer(api_token)).status_code == 200
    # Revoked behind the triggers' back: the cached record still stands, which shows it is the
    # notification (next test) that makes a revocation hold, and that the row is not re-read.
    quietly(sql, "UPDATE api_keys SET revoked_at = now()")
    assert client.get("/v1/items", headers=bearer(api_token)).status_code == 200
    # A listener that stops listening empties the records and bypasses them from then on.
    services_of(app).listener.stop(timeout=5)
    assert not services_of(app).listener.listening
    assert client.get("/v1/items", headers=bearer(api_token)).status_code == 401
    quietly(sql, "UPDATE api_keys SET revoked_at = NULL")
    assert client.get("/v1/items", headers=bearer(api_token)).status_code == 200


def test_changes_to_access_are_announced_and_last_use_is_not(sql, api_token):
    key_id = api_token.split("_")[1]
    with psycopg.connect(sql.info.dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {KEYS_CHANNEL}")
        sql.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", (key_id,))
        assert list(listener.notifies(timeout=0.5)) == []
        sql.execute("UPDATE api_keys SET scopes = '{read}' WHERE id = %s", (key_id,))
        sql.execute("DELETE FROM api_keys WHERE id = %s", (key_id,))
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert heard == ["*", "*"]


def test_keys_cli_creates_lists_and_revokes_without_ever_showing_a_stored_token(
    runner, clean_db, sql, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    created = runner.invoke(main, ["keys", "create", "--name", "me", "--scopes", "write,read"])
    assert created.exit_code == 0, created.output
    token = created.output.splitlines()[-1]
    assert token.startswith("itemsapi_")
    assert len(token) >= 60
    (row,) = sql.execute("SELECT * FROM api_keys").fetchall()
    assert row["scopes"] == ["read", "write"]
    assert row["token_sha256"] == digest(token)  # the hash, and nothing else of the token
    assert token.split("_", 2)[2] not in str(row)

    listed = runner.invoke(main, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert row["id"] in listed.output
    assert "me" in listed.output
    assert "read,write" in listed.output
    assert token not in listed.output
    assert token.split("_", 2)[2] not in listed.output

    assert runner.invoke(main, ["keys", "revoke", row["id"]]).exit_code == 0
    assert sql.execute("SELECT revoked_at FROM api_keys").fetchone()["revoked_at"] is not None
    missing = runner.invoke(main, ["keys", "revoke", "0123456789ab"])
    assert missing.exit_code == 1
    assert "key 0123456789ab: no such key; nothing changed" in missing.output


def test_revoking_a_revoked_key_says_so_and_fails(runner, clean_db, sql, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    key_id, _ = create_key(sql, "twice", ["read"])
    first = runner.invoke(main, ["keys", "revoke", key_id])
    assert (first.exit_code, first.output.strip()) == (0, f"revoked key {key_id}")
    revoked_at = sql.execute("SELECT revoked_at FROM api_keys").fetchone()["revoked_at"]
    again = runner.invoke(main, ["keys", "revoke", key_id])
    assert again.exit_code == 1
    assert f"key {key_id}: already revoked; nothing changed" in again.output
    assert sql.execute("SELECT revoked_at FROM api_keys").fetchone()["revoked_at"] == revoked_at


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_keys_cli_refuses_a_bad_name_in_one_line(runner, clean_db, sql, monkeypatch, name):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    result = runner.invoke(main, ["keys", "create", "--name", name])
    assert result.exit_code == 2
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert error_lines == [
        "Error: Invalid value for --name: a key's name is 1 to 200 characters, not only spaces"
    ]
    assert "token_sha256" not in result.output
    assert "violates" not in result.output
    assert sql.execute("SELECT count(*) AS n FROM api_keys").fetchone()["n"] == 0


def test_keys_commands_print_only_their_output_on_stdout(runner, clean_db, sql, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("ITEMSAPI_LOG_LEVEL", "DEBUG")  # every line the command may log
    create_key(sql, "listed", ["read"])
    result = runner.invoke(main, ["keys", "list"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("ID")
    assert all(not line.startswith("{") for line in result.stdout.splitlines())


@pytest.mark.parametrize("scopes", ["reed", "", "read,root"])
def test_keys_cli_refuses_unknown_scopes(runner, clean_db, sql, monkeypatch, scopes):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    result = runner.invoke(main, ["keys", "create", "--name", "x", "--scopes", scopes])
    assert result.exit_code == 2
    assert "choose from read,write,admin" in result.output
    assert sql.execute("SELECT count(*) AS n FROM api_keys").fetchone()["n"] == 0


def test_the_table_refuses_unknown_scopes_whatever_the_client(sql):
    with pytest.raises(psycopg.errors.CheckViolation):
        sql.execute(
            "INSERT INTO api_keys (id, name, scopes, token_sha256)"
            " VALUES ('0123456789ab', 'x', ARRAY['root'], %s)",
            (digest("x"),),
        )


def test_last_used_at_is_written_at_most_once_per_interval(app, sql, api_token):
    store = KeyStore(KeyRepository(services_of(app).database), touch_interval=3600)
    store.verify(api_token)
    first = sql.execute("SELECT last_used_at FROM api_keys").fetchone()["last_used_at"]
    assert first is not None
    sql.execute("UPDATE api_keys SET last_used_at = '2000-01-01'")
    store.verify(api_token)  # within the interval: no write
    assert sql.execute("SELECT last_used_at FROM api_keys").fetchone()["last_used_at"].year == 2000
    KeyStore(KeyRepository(services_of(app).database), touch_interval=0).verify(api_token)
    assert sql.execute("SELECT last_used_at FROM api_keys").fetchone()["last_used_at"].year > 2000


def test_a_failed_last_used_write_never_fails_the_request(app, api_token, caplog):
    class WritesFail(KeyRepository):
        def touch(self, key_id):
            raise DatabaseUnavailable("down for writes")

    store = KeyStore(WritesFail(services_of(app).database))
    principal = store.verify(api_token)
    assert principal.scopes == {"read", "write", "admin"}
    assert "could not record a key's last use" in caplog.text


def test_probes_index_docs_and_metrics_are_open_by_default(app):
    client = app.test_client()
    for path in ("/live", "/ready", "/health", "/", "/docs", "/openapi.json", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_settings_close_docs_and_metrics_and_open_reads(clean_db, api_token, sql):
    closed = create_app({"database_url": clean_db, "public_docs": False,
                         "public_metrics": False, "public_reads": True})  # fmt: skip
    try:
        client = closed.test_client()
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=bearer(api_token)).status_code == 200, path
        with psycopg.connect(clean_db, autocommit=True) as conn:
            read_only = create_key(conn, "reader", ["read"])[1]
        # A key made after the worker read the table is held once its creation is heard of.
        wait_until(lambda: client.get("/metrics", headers=bearer(read_only)).status_code != 401,
                   REVOCATION_BOUND, "the new key", interval=0.01)  # fmt: skip
        assert client.get("/metrics", headers=bearer(read_only)).status_code == 403
        assert client.get("/openapi.json", headers=bearer(read_only)).status_code == 200
        assert client.get("/v1/items").status_code == 200  # anonymous reads
        assert client.get("/live").status_code == 200
        assert client.post("/v1/items", json={"name": "x"}).status_code == 401
    finally:
        close_app(closed)


def test_unclassified_endpoints_need_admin(app, clean_db):
    with psycopg.connect(clean_db, autocommit=True) as conn:
        writer = create_key(conn, "writer", ["read", "write"])[1]
        admin = create_key(conn, "admin", ["admin"])[1]
    tools = Blueprint("tools", __name__)
    tools.add_url_rule("/tools/reindex", "reindex", lambda: Response(status=204), methods=["POST"])
    tools.add_url_rule("/tools/other", "other", lambda: Response(status=204))
    app.register_blueprint(tools)
    client = app.test_client()
    for path, method in (("/tools/reindex", "POST"), ("/tools/other", "GET")):
        assert client.open(path, method=method, headers=bearer(writer)).status_code == 403
        assert client.open(path, method=method, headers=bearer(admin)).status_code == 204


def test_a_known_key_id_with_a_wrong_secret_is_refused_like_an_unknown_key(app, api_token):
    key_id = api_token.split("_")[1]
    forged = f"itemsapi_{key_id}_" + "B" * 43
    client = app.test_client()
    wrong = client.get("/v1/items", headers=bearer(forged))
    unknown = client.get("/v1/items", headers=bearer(UNKNOWN))
    assert wrong.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "bearer " + UNKNOWN[:-1] + "!"]
)
def test_malformed_authorization_is_401_invalid_token(app, header):
    response = app.test_client().get("/v1/items", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_failed_authentications_are_counted_by_reason(app):
    def counted(reason: str) -> float:
        value = REGISTRY.get_sample_value("itemsapi_auth_failures_total", {"reason": reason})
        return value or 0.0

    before = {reason: counted(reason) for reason in ("missing", "unknown")}
    client = app.test_client()
    client.get("/v1/items")
    client.get("/v1/items", headers=bearer(UNKNOWN))
    client.get("/v1/items", headers=bearer(UNKNOWN))
    assert counted("missing") == before["missing"] + 1
    assert counted("unknown") == before["unknown"] + 2
    assert 'itemsapi_auth_failures_total{reason="unknown"}' in client.get("/metrics").text


def test_the_access_line_names_the_key_never_the_token(app, api_token, clean_db):
    (handler,) = [
        h for h in logging.getLogger().handlers if isinstance(h.formatter, OrjsonFormatter)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        client = app.test_client()
        client.get("/v1/items", headers=bearer(api_token))
        client.get("/v1/items", headers=bearer(api_token[:-2] + "xx"))
    finally:
        handler.setStream(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "itemsapi.access"]
    assert [line["principal"] for line in access] == [api_token.split("_")[1], None]
    secret = api_token.split("_", 2)[2]
    assert all(secret[:20] not in line for line in stream.getvalue().splitlines())


def test_without_the_keys_table_a_token_gets_503_not_500(empty_database):
    apply_baseline(empty_database)  # the baseline only: no api_keys yet
    app = create_app({"database_url": empty_database})
    try:
        response = app.test_client().get("/v1/items", headers=bearer(UNKNOWN))
        assert response.status_code == 503
        assert response.get_json()["type"] == "urn:itemsapi:problem:database-unavailable"
    finally:
        close_app(app)


def test_auth_off_opens_everything_and_warns_at_every_start(clean_db, capsys):
    for _ in range(2):
        app = create_app({"database_url": clean_db, "auth": "off"})
        try:
            assert app.test_client().post("/v1/items", json={"name": "x"}).status_code == 201
        finally:
            close_app(app)
    # create_app logs through its JSON handler, on the stdout it found.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [line for line in lines if "ITEMSAPI_AUTH=off" in line["message"]]
    assert len(warnings) == 2
    assert all(line["level"] == "WARNING" for line in warnings)


def test_the_development_key_is_created_once_private_and_replaced_if_revoked(
    clean_db, tmp_path, capsys
):
    settings = Settings(database_url=clean_db, data_dir=tmp_path / "data")
    path = settings.data_dir.resolve() / dev_key.TOKEN_FILE
    with direct(clean_db, connection_options(settings)) as database:
        keys = KeyRepository(database)
        said = dev_key.ensure(settings, keys)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        token = path.read_text().strip()
        assert "Authorization: Bearer $(cat " in said
        assert token not in said + capsys.readouterr().out
        dev_key.ensure(settings, keys)
        assert path.read_text().strip() == token  # reused
        with psycopg.connect(clean_db, autocommit=True) as conn:
            revoke_key(conn, token.split("_")[1])
        dev_key.ensure(settings, keys)
    replaced = path.read_text().strip()
    assert replaced != token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
