"""The `itemsapi` command."""

import psycopg

from itemsapi.cli import main


def test_init_db_applies_the_schema_idempotently(runner, clean_db, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('survives')")
        conn.execute("DROP INDEX items_name_id_idx")
    result = runner.invoke(main, ["init-db"])
    assert result.exit_code == 0, result.output
    assert "schema applied" in result.output
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("survives",)]
        assert conn.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'items_name_id_idx'"
        ).fetchone()


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
