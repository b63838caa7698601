"""The `itemsapi` command."""

import logging
import os
import subprocess
import sys
import time

import psycopg

from itemsapi.cli import main
from itemsapi.config import Settings
from itemsapi.db import migrations
from itemsapi.db.server import inspect_server
from itemsapi.serve import server
from tests.helpers import Cluster, apply_baseline, free_port, make_the_schema_fail


def test_init_db_brings_a_database_from_before_migrations_up_to_date(
    runner, empty_database, monkeypatch
):
    # A database made by an older release: init.sql's objects, rows, no schema_migrations.
    apply_baseline(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DROP TABLE schema_migrations")
        conn.execute("INSERT INTO items (name) VALUES ('survives')")
        conn.execute("DROP INDEX items_name_id_idx")
    monkeypatch.setenv("DATABASE_URL", empty_database)
    result = runner.invoke(main, ["init-db"])
    assert result.exit_code == 0, result.output
    assert "schema applied" in result.output
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("survives",)]
        assert conn.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'items_name_id_idx'"
        ).fetchone()
        recorded = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1")
        shipped = [(m.version, m.name) for m in migrations.discover()]
        assert recorded.fetchall() == [(0, "baseline"), *shipped]


def test_init_db_of_an_unreachable_database_is_a_clear_error(runner, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    result = runner.invoke(main, ["init-db"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # click's error exit, not a crash
    assert "Error: schema not applied: the database cannot be reached: connection failed" in (
        result.output
    )


def test_migrate_status_of_an_unreachable_database_says_it_cannot_be_reached(runner, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    result = runner.invoke(main, ["migrate", "--status"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: cannot read the schema's status: the database cannot be reached:"
    )
    assert "not applied" not in result.output


def test_serve_with_an_unparsable_database_url_stops_at_start_in_one_line(runner, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:notaport/db")
    result = runner.invoke(main, ["serve", "--port", str(free_port())])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: invalid configuration: DATABASE_URL has a port that is not a number from 1 to"
        " 65535: 'notaport'"
    ]


def test_init_db_refused_by_the_server_fails_at_once_even_when_told_to_wait(
    runner, empty_database, monkeypatch
):
    make_the_schema_fail(empty_database)
    monkeypatch.setenv("DATABASE_URL", empty_database)
    started = time.monotonic()
    result = runner.invoke(main, ["init-db", "--wait", "60"])
    assert result.exit_code == 1
    assert (
        "Error: schema not applied: migration init.sql failed: cannot change return type"
        in result.output
    )
    assert time.monotonic() - started < 30  # not retried until the wait runs out


def test_init_db_told_to_wait_applies_the_schema_once_the_database_is_up(tmp_path):
    # A Kubernetes init container or a compose one-off may start before PostgreSQL does.
    cluster = Cluster(tmp_path / "pg", free_port()).init()
    init_db = subprocess.Popen(
        [sys.executable, "-m", "itemsapi", "init-db", "--wait", "60"],
        env={**os.environ, "DATABASE_URL": cluster.url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # A refused attempt first (read as it is logged: the command may take seconds to start
        # on a loaded machine), then the database comes up.
        first = init_db.stdout.readline()
        assert "database not reachable yet; trying again" in first, first
        cluster.start()
        output, _ = init_db.communicate(timeout=60)
        assert init_db.returncode == 0, first + output
        with psycopg.connect(cluster.url) as conn:
            assert conn.execute("SELECT to_regclass('items')").fetchone() == ("items",)
    finally:
        init_db.kill()
        if cluster.running():
            cluster.stop()


def test_bad_configuration_is_a_clear_error_not_a_traceback(runner, monkeypatch):
    monkeypatch.setenv("ITEMSAPI_PORT", "not-a-port")
    result = runner.invoke(main, ["serve"])
    assert result.exit_code != 0
    assert "ITEMSAPI_PORT='not-a-port' is not a valid integer" in result.output
    assert "Traceback" not in result.output


def test_serve_options_are_validated_like_the_environment(runner, monkeypatch):
    monkeypatch.delenv("ITEMSAPI_PORT", raising=False)
    result = runner.invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code != 0
    assert "ITEMSAPI_WORKERS must be >= 1" in result.output


def _start_check_records(caplog, settings: Settings) -> list[logging.LogRecord]:
    with caplog.at_level(logging.INFO, logger="itemsapi.serve.checks"):
        server.check_database(settings, settings.database_url)
    return [r for r in caplog.records if r.name == "itemsapi.serve.checks"]


def test_serve_start_check_names_a_missing_schema(empty_database, caplog):
    records = _start_check_records(caplog, Settings(database_url=empty_database))
    errors = [r for r in records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "itemsapi migrate" in errors[0].getMessage()


def test_serve_start_check_weighs_the_pools_against_max_connections(clean_db, caplog):
    allowed = inspect_server(clean_db).connections_allowed
    too_many = Settings(database_url=clean_db, workers=2, pool_max_size=allowed)
    (warning,) = _start_check_records(caplog, too_many)
    assert warning.levelno == logging.WARNING
    assert "exceeds" in warning.getMessage()
    # Each worker's listener holds a connection too, and each transfer slot (2 export, 1 import).
    needed = 2 * (allowed + 3) + 2
    assert (warning.connections_needed, warning.connections_allowed) == (needed, allowed)

    caplog.clear()
    one_short = Settings(database_url=clean_db, workers=1, pool_max_size=allowed - 3)
    (warning,) = _start_check_records(caplog, one_short)
    assert warning.levelno == logging.WARNING

    caplog.clear()
    fits = Settings(database_url=clean_db, workers=1, pool_max_size=allowed - 4)
    (info,) = _start_check_records(caplog, fits)
    assert info.levelno == logging.INFO
    assert "fits" in info.getMessage()


def test_serve_start_check_of_an_unreachable_database_warns_and_lets_it_serve(caplog):
    url = "postgresql://postgres@/x?host=/nonexistent&port=1"
    (warning,) = _start_check_records(caplog, Settings(database_url=url))
    assert warning.levelno == logging.WARNING
    assert "serving anyway" in warning.getMessage()


def _versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return []
        return [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def test_migrate_dry_run_and_status_tell_the_truth_and_change_nothing(
    runner, empty_database, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", empty_database)
    shipped = migrations.discover()
    status = runner.invoke(main, ["migrate", "--status"])
    assert status.exit_code == 0, status.output
    assert "0000  pending  baseline" in status.output
    for m in shipped:
        assert f"{m.version:04d}  pending  {m.name}" in status.output

    dry = runner.invoke(main, ["migrate", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    would = [line for line in dry.output.splitlines() if line.startswith("would apply")]
    assert would == ["would apply 0000 baseline"] + [
        f"would apply {m.version:04d} {m.name}" for m in shipped
    ]
    assert _versions(empty_database) == []  # nothing ran

    applied = runner.invoke(main, ["migrate"])
    assert applied.exit_code == 0, applied.output
    assert _versions(empty_database) == [0] + [m.version for m in shipped]
    again = runner.invoke(main, ["migrate"])
    assert "schema up to date: nothing to apply" in again.output
    status = runner.invoke(main, ["migrate", "--status"])
    assert "pending" not in status.output
    assert "0000  applied  baseline" in status.output
