"""Configuration: read once from the environment, validated, failing fast with a clear message.

Every variable the service reads is listed here (and explained in `.env.example`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # None means "no server given": `itemsapi serve` then starts the embedded PostgreSQL.
    database_url: str | None = None
    data_dir: Path = Path(".itemsapi")
    environment: str = "development"
    log_level: str = "INFO"

    # Pool sizing and timeouts (seconds). One pool per server process.
    pool_min_size: int = 2
    pool_max_size: int = 8
    pool_timeout: float = 2.0
    pool_max_idle: float = 300.0
    pool_max_lifetime: float = 1800.0
    statement_timeout_ms: int = 5000
    ready_timeout: float = 1.0
    # Runs of a statement shape on a connection before psycopg prepares it; None: never (for
    # a transaction-pooling PgBouncer, where server sessions change under a connection).
    prepare_threshold: int | None = 5

    max_body_bytes: int = 1024 * 1024

    # How `itemsapi serve` runs Granian.
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    blocking_threads: int = 4
    # Seconds a worker gets to finish in-flight requests after SIGTERM before it is killed.
    shutdown_timeout: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.pool_min_size < 0:
            problems.append("ITEMSAPI_POOL_MIN_SIZE must be >= 0")
        if self.pool_max_size < max(1, self.pool_min_size):
            problems.append("ITEMSAPI_POOL_MAX_SIZE must be >= 1 and >= ITEMSAPI_POOL_MIN_SIZE")
        for name, value in (
            ("ITEMSAPI_POOL_TIMEOUT", self.pool_timeout),
            ("ITEMSAPI_POOL_MAX_IDLE", self.pool_max_idle),
            ("ITEMSAPI_POOL_MAX_LIFETIME", self.pool_max_lifetime),
            ("ITEMSAPI_READY_TIMEOUT", self.ready_timeout),
        ):
            if value <= 0:
                problems.append(f"{name} must be > 0")
        if self.statement_timeout_ms < 1:
            problems.append("ITEMSAPI_STATEMENT_TIMEOUT_MS must be >= 1")
        if self.max_body_bytes < 1024:
            problems.append("ITEMSAPI_MAX_BODY_BYTES must be >= 1024")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"ITEMSAPI_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if not 1 <= self.port <= 65535:
            problems.append("ITEMSAPI_PORT must be between 1 and 65535")
        if self.workers < 1:
            problems.append("ITEMSAPI_WORKERS must be >= 1")
        if self.shutdown_timeout < 1:
            problems.append("ITEMSAPI_SHUTDOWN_TIMEOUT must be >= 1")
        if self.blocking_threads < 1:
            problems.append("ITEMSAPI_BLOCKING_THREADS must be >= 1")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            problems.append("DATABASE_URL must be a postgresql:// URL")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        errors = []
        for field in dataclasses.fields(cls):
            name = _ENV_NAMES[field.name]
            raw = env.get(name, "").strip()
            if not raw:
                continue
            parse = _PARSERS.get(field.name, str)
            try:
                values[field.name] = parse(raw)
            except ValueError:
                errors.append(f"{name}={raw!r} is not a valid {_KIND[parse]}")
        if errors:
            raise ConfigError("invalid configuration: " + "; ".join(errors))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _log_level(raw: str) -> str:
    return raw.upper()


def _threshold(raw: str) -> int | None:
    return None if raw.lower() == "none" else int(raw)


_ENV_NAMES = {
    f.name: ("DATABASE_URL" if f.name == "database_url" else f"ITEMSAPI_{f.name.upper()}")
    for f in dataclasses.fields(Settings)
}
_PARSERS: dict[str, Callable[[str], Any]] = {
    "data_dir": Path,
    "log_level": _log_level,
    "pool_min_size": int,
    "pool_max_size": int,
    "pool_timeout": float,
    "pool_max_idle": float,
    "pool_max_lifetime": float,
    "statement_timeout_ms": int,
    "ready_timeout": float,
    "prepare_threshold": _threshold,
    "max_body_bytes": int,
    "port": int,
    "workers": int,
    "blocking_threads": int,
    "shutdown_timeout": int,
}
_KIND = {
    int: "integer",
    float: "number",
    str: "string",
    Path: "path",
    _log_level: "log level",
    _threshold: "integer or none",
}


def env_name(field_name: str) -> str:
    """The environment variable that sets a Settings field."""
    return _ENV_NAMES[field_name]
