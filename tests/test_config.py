from pathlib import Path

import pytest

from itemsapi.app import create_app
from itemsapi.config import ConfigError, Settings


def test_defaults_when_environment_is_empty():
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.data_dir == Path(".itemsapi")


def test_reads_every_variable_by_its_documented_name():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "ITEMSAPI_POOL_MIN_SIZE": "3",
            "ITEMSAPI_POOL_MAX_SIZE": "12",
            "ITEMSAPI_POOL_TIMEOUT": "0.5",
            "ITEMSAPI_STATEMENT_TIMEOUT_MS": "250",
            "ITEMSAPI_LOG_LEVEL": "debug",
            "ITEMSAPI_MAX_BODY_BYTES": "2048",
            "ITEMSAPI_PORT": "9000",
            "ITEMSAPI_WORKERS": "2",
        }
    )
    assert settings.database_url == "postgresql://u@h/db"
    assert (settings.pool_min_size, settings.pool_max_size) == (3, 12)
    assert settings.pool_timeout == 0.5
    assert settings.statement_timeout_ms == 250
    assert settings.log_level == "DEBUG"
    assert settings.max_body_bytes == 2048
    assert (settings.port, settings.workers) == (9000, 2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ITEMSAPI_PORT": "eighty"}, "ITEMSAPI_PORT='eighty' is not a valid integer"),
        ({"ITEMSAPI_PORT": "70000"}, "ITEMSAPI_PORT must be between 1 and 65535"),
        ({"ITEMSAPI_POOL_TIMEOUT": "-1"}, "ITEMSAPI_POOL_TIMEOUT must be > 0"),
        (
            {"ITEMSAPI_POOL_MIN_SIZE": "5", "ITEMSAPI_POOL_MAX_SIZE": "2"},
            "ITEMSAPI_POOL_MAX_SIZE must be >= 1 and >= ITEMSAPI_POOL_MIN_SIZE",
        ),
        ({"ITEMSAPI_LOG_LEVEL": "loud"}, "ITEMSAPI_LOG_LEVEL must be one of"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a postgresql:// URL"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"ITEMSAPI_WORKERS": "0", "ITEMSAPI_BLOCKING_THREADS": "0"})
    assert "ITEMSAPI_WORKERS" in str(excinfo.value)
    assert "ITEMSAPI_BLOCKING_THREADS" in str(excinfo.value)


def test_app_factory_refuses_to_start_without_a_database(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        create_app()
