import os
import re
from pathlib import Path

import pytest

from itemsapi.app import create_app
from itemsapi.config import ConfigError, Settings, env_name


def read_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> Settings:
    """Settings.from_env() with exactly `values` among the variables it reads."""
    for name in list(os.environ):
        if name.startswith("ITEMSAPI_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_defaults_when_environment_is_empty(monkeypatch):
    settings = read_env(monkeypatch, {})
    assert settings.database_url is None
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.data_dir == Path(".itemsapi")


def test_reads_every_variable_by_its_documented_name(monkeypatch):
    settings = read_env(
        monkeypatch,
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
        },
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
        ({"ITEMSAPI_PORT": "70000"}, "ITEMSAPI_PORT must be <= 65535"),
        ({"ITEMSAPI_POOL_TIMEOUT": "-1"}, "ITEMSAPI_POOL_TIMEOUT must be > 0$"),
        (
            {"ITEMSAPI_POOL_MIN_SIZE": "5", "ITEMSAPI_POOL_MAX_SIZE": "2"},
            "ITEMSAPI_POOL_MAX_SIZE must be >= 1 and >= ITEMSAPI_POOL_MIN_SIZE",
        ),
        ({"ITEMSAPI_LOG_LEVEL": "loud"}, "ITEMSAPI_LOG_LEVEL must be one of"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a postgresql:// URL"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env, message, monkeypatch):
    with pytest.raises(ConfigError, match=message):
        read_env(monkeypatch, env)


def test_every_bad_value_is_reported_at_once_by_its_variable(monkeypatch):
    bad = {
        "DATABASE_URL": "mysql://x",
        "ITEMSAPI_PORT": "eighty",
        "ITEMSAPI_WORKERS": "0",
        "ITEMSAPI_BLOCKING_THREADS": "0",
        "ITEMSAPI_POOL_MIN_SIZE": "5",
        "ITEMSAPI_POOL_MAX_SIZE": "2",
        "ITEMSAPI_LOG_LEVEL": "loud",
        "ITEMSAPI_PREPARE_THRESHOLD": "often",
    }
    with pytest.raises(ConfigError) as excinfo:
        read_env(monkeypatch, bad)
    reported = {part.split()[0].split("=")[0] for part in _problems(excinfo.value)}
    assert reported == set(bad) - {"ITEMSAPI_POOL_MIN_SIZE"}  # the max is the one that is wrong


def _problems(error: ConfigError) -> list[str]:
    prefix = "invalid configuration: "
    assert str(error).startswith(prefix)
    return str(error).removeprefix(prefix).split("; ")


def test_database_url_is_read_by_its_own_name_not_the_prefixed_one(monkeypatch):
    url = "postgresql://u@h/db"
    assert read_env(monkeypatch, {"DATABASE_URL": url}).database_url == url
    assert read_env(monkeypatch, {"ITEMSAPI_DATABASE_URL": url}).database_url is None


def test_empty_or_blank_variables_take_the_default(monkeypatch):
    settings = read_env(
        monkeypatch, {"DATABASE_URL": "", "ITEMSAPI_PORT": "  ", "ITEMSAPI_PREPARE_THRESHOLD": ""}
    )
    assert (settings.database_url, settings.port, settings.prepare_threshold) == (None, 8000, 5)


@pytest.mark.parametrize(
    ("raw", "threshold"), [("none", None), ("None", None), ("NONE", None), ("0", 0), ("12", 12)]
)
def test_prepare_threshold_is_a_count_or_none(raw, threshold, monkeypatch):
    settings = read_env(monkeypatch, {"ITEMSAPI_PREPARE_THRESHOLD": raw})
    assert settings.prepare_threshold == threshold


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("sometimes", "ITEMSAPI_PREPARE_THRESHOLD='sometimes' is not a valid integer"),
        ("-1", "ITEMSAPI_PREPARE_THRESHOLD must be >= 0"),
    ],
)
def test_bad_prepare_threshold_is_refused(raw, message, monkeypatch):
    with pytest.raises(ConfigError, match=message):
        read_env(monkeypatch, {"ITEMSAPI_PREPARE_THRESHOLD": raw})


def test_variables_that_are_not_settings_are_ignored(monkeypatch):
    settings = read_env(monkeypatch, {"ITEMSAPI_START_LINE": "/tmp/x", "ITEMSAPI_NOT_A_THING": "1"})
    assert settings == Settings()


def test_replace_validates_the_changes(monkeypatch):
    settings = read_env(monkeypatch, {})
    assert settings.replace(port=9000, ready_timeout=2).ready_timeout == 2.0
    with pytest.raises(ConfigError, match="ITEMSAPI_PORT must be >= 1"):
        settings.replace(port=0)
    with pytest.raises(ConfigError, match="DATABASE_URL must be a postgresql:// URL"):
        settings.replace(database_url="mysql://x")
    with pytest.raises(ConfigError, match="prot is not a setting"):
        settings.replace(prot=9000)


def test_env_name_names_the_variable_of_each_field():
    assert env_name("database_url") == "DATABASE_URL"
    assert env_name("prepare_threshold") == "ITEMSAPI_PREPARE_THRESHOLD"
    with pytest.raises(KeyError):
        env_name("prot")


def test_app_factory_refuses_to_start_without_a_database(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        create_app()


def test_every_setting_is_explained_in_env_example():
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    for field in Settings.model_fields:
        assert re.search(rf"^#? ?{env_name(field)}=", example, re.MULTILINE), env_name(field)


def test_the_database_password_comes_from_a_file_into_the_url(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("p@ss:w/rd\n")  # a trailing newline, as `echo` writes, is not part of it
    settings = Settings(
        database_url="postgresql://itemsapi@db:5432/itemsapi", database_password_file=secret
    )
    assert settings.database_url == "postgresql://itemsapi:p%40ss%3Aw%2Frd@db:5432/itemsapi"
    with pytest.raises(ConfigError, match="ITEMSAPI_DATABASE_PASSWORD_FILE: cannot read"):
        Settings(database_url="postgresql://x@db/x", database_password_file=tmp_path / "nope")


def test_jwt_mode_needs_its_issuer_audience_and_jwks_url():
    with pytest.raises(ConfigError) as caught:
        Settings(auth="jwt", jwt_issuer="https://issuer.test")
    assert "ITEMSAPI_JWT_AUDIENCE" in str(caught.value)
    assert "ITEMSAPI_JWT_JWKS_URL" in str(caught.value)
    assert Settings(auth="KEYS").auth == "keys"


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,none", ""])
def test_only_asymmetric_jwt_algorithms_are_accepted(algorithms):
    with pytest.raises(ConfigError, match="ITEMSAPI_JWT_ALGORITHMS"):
        Settings(jwt_algorithms=algorithms or " , ")
