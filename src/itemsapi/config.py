"""Configuration: read once from the environment, validated, failing fast with a clear message.

Every variable the service reads is listed here (and explained in `.env.example`): a field
`name` is read from `ITEMSAPI_NAME`, except `database_url`, read from `DATABASE_URL` as every
PostgreSQL tool spells it. An unset or empty variable means the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from itemsapi.config_values import (
    algorithms_from,
    describe,
    http_date,
    lower,
    none_word,
    one_of,
    origin_list,
    upper,
)
from itemsapi.database_url import check as check_database_url
from itemsapi.database_url import with_password_from

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Signature algorithms a JWT may use: asymmetric only, so that the JWKS (public keys) can never
# double as an HMAC secret (the "HS256 signed with the public key" confusion).
JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
ENV_PREFIX = "ITEMSAPI_"
DATABASE_URL = "DATABASE_URL"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


Positive = Annotated[float, Field(gt=0)]
SEARCH_CONFIG_NAME = r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$"  # [schema.]name


class Settings(BaseSettings):
    """Values given to the constructor win over the environment's (tests, CLI options)."""

    # An empty variable means the default; a .env file is for compose and the shell, and is
    # not read behind the operator's back (no env_file).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    # None means "no server given": `itemsapi serve` then starts the embedded PostgreSQL. Read
    # from DATABASE_URL alone; the field's own name is for code (replace, tests).
    database_url: str | None = Field(
        None, validation_alias=AliasChoices(DATABASE_URL, "database_url")
    )
    data_dir: Path = Path(".itemsapi")
    environment: str = "development"
    log_level: Annotated[str, BeforeValidator(upper), AfterValidator(one_of(LOG_LEVELS))] = "INFO"

    # Pool sizing and timeouts (seconds). One pool per server process.
    pool_min_size: Annotated[int, Field(ge=0)] = 2
    pool_max_size: int = 16
    pool_timeout: Positive = 2.0
    pool_max_idle: Positive = 300.0
    pool_max_lifetime: Positive = 1800.0
    statement_timeout_ms: Annotated[int, Field(ge=1)] = 5000
    ready_timeout: Positive = 1.0
    # Executions of a statement before psycopg prepares it on that connection (psycopg's own
    # default); None never prepares, which is what a transaction-mode pooler needs.
    prepare_threshold: Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(none_word)] = 5

    # Where each session's statement_timeout and TimeZone come from: "startup" sends them in the
    # connection's startup packet; "server" leaves them to the role or database settings
    # (ALTER ROLE ... SET), for a pooler that refuses startup options (PgBouncer).
    session_settings: Literal["startup", "server"] = "startup"
    # A pooler's server pool for this database and user (PgBouncer's pool_size), for serve's check.
    pooler_pool_size: Annotated[int, Field(ge=1)] | None = None
    # A file holding the database password (a secret), put into DATABASE_URL.
    database_password_file: Path | None = None

    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # Bodies a worker reads at once, and one client address's share once half are busy.
    max_body_reads: Annotated[int, Field(ge=1)] = 32
    max_body_reads_per_client: Annotated[int, Field(ge=1)] = 8
    max_batch: Annotated[int, Field(ge=1, le=100_000)] = 1000  # items one POST of an array makes
    # Idempotency-Key (db/idempotency.py): retention, purge interval, required on POST.
    idempotency_ttl: Positive = 86400.0
    idempotency_purge_interval: Positive = 60.0
    require_idempotency_key: bool = False
    # The change log (db/changes.py): kept this long (seconds); each worker reads it at least
    # this often (cache/follower.py); long-polls waiting at once per worker (more: no wait).
    changes_retention: Positive = 7 * 86400.0
    changes_poll_interval: Positive = 1.0
    changes_waiters: Annotated[int, Field(ge=0)] = 64
    # A list page holds no more items than fit in this many bytes of JSON (at least one item).
    max_response_bytes: Annotated[int, Field(ge=64 * 1024)] = 4 * 1024 * 1024

    # The read cache (cache.py): per worker, kept coherent by the items triggers' notifications.
    cache: bool = True
    cache_max_entries: Annotated[int, Field(ge=1)] = 10_000
    # Bytes of JSON a worker's cache holds at most (each entry counted at least 1/max_entries of
    # it), and the largest entry it keeps: larger ones are served, not kept (docs/operations.md).
    cache_max_bytes: Annotated[int, Field(ge=1024 * 1024)] = 64 * 1024 * 1024
    cache_max_entry_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    cache_ttl: Positive = 300.0
    # Items changed last that each worker loads into its cache once listening; 0: none.
    cache_prime: Annotated[int, Field(ge=0)] = 10_000
    # Where workers LISTEN: a direct connection, not a transaction pooler. None: DATABASE_URL.
    listen_database_url: str | None = None
    # Text search configuration of `search=`; `itemsapi migrate` refuses one the server lacks.
    search_config: Annotated[str, Field(pattern=SEARCH_CONFIG_NAME, max_length=63)] = "simple"

    # How `itemsapi serve` runs Granian.
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1)] = 1
    # Run slots per worker (as many as pool connections), and how many may wait for one.
    blocking_threads: Annotated[int, Field(ge=1)] = 16
    max_queued: Annotated[int, Field(ge=0)] = 32
    # Seconds a worker gets to finish in-flight requests after SIGTERM before it is killed.
    shutdown_timeout: Annotated[int, Field(ge=1)] = 10
    # Streaming export and import (web/transfer.py): slots of their own, not run slots.
    export_slots: Annotated[int, Field(ge=1)] = 2
    export_time_limit: Positive = 300.0
    import_slots: Annotated[int, Field(ge=1)] = 1
    import_time_limit: Positive = 600.0
    max_import_bytes: Annotated[int, Field(ge=1024)] = 1024**3

    # Access control (docs/operations.md, "Access control"): API keys by default; `jwt` verifies
    # OpenID Connect bearer tokens against the issuer's JWKS; `off` opens everything.
    auth: Annotated[Literal["keys", "jwt", "off"], BeforeValidator(lower)] = "keys"
    public_reads: bool = False  # anonymous GET/HEAD on items
    public_docs: bool = True  # /docs and /openapi.json without a key (else the read scope)
    public_metrics: bool = True  # /metrics without a key (else the admin scope)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None
    # A comma-separated allow-list, asymmetric only.
    jwt_algorithms: Annotated[str, AfterValidator(algorithms_from(JWT_ALGORITHMS))] = "RS256,ES256"
    jwt_scope_claim: str = "scope"  # space-separated string (or a list) of scopes
    # A token naming a key id the cached JWKS lacks refetches it at most this often.
    jwt_jwks_refresh_seconds: Positive = 30.0

    # CORS (web/cors.py): exact origins, comma-separated, or `*` (not with credentials); "": off.
    cors_credentials: bool = False
    cors_origins: str = ""
    cors_max_age: Annotated[int, Field(ge=0, le=86400)] = 600  # seconds a preflight is reused
    unversioned: bool = True  # the deprecated paths from before /v1 (web/deprecation.py)
    unversioned_sunset: Annotated[AwareDatetime | None, BeforeValidator(http_date)] = None

    def __init__(self, **values: Any) -> None:
        # One error for every bad value at once, each named by the variable that sets it.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(describe(error, _variable) for error in exc.errors())
            raise ConfigError(f"invalid configuration: {problems}") from None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        # A variable set to spaces is as good as empty: the default, not a parse error.
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        return values

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        file_field = "database_password_file"
        file = values.get(file_field)
        url = values.get("database_url") or values.get(DATABASE_URL)
        if not file or not url:
            return values
        values = {k: v for k, v in values.items() if k != DATABASE_URL}
        values["database_url"] = with_password_from(url, Path(file), env_name(file_field))
        return values

    @field_validator("pool_max_size")
    @classmethod
    def _room_for_min_size(cls, value: int, info: ValidationInfo) -> int:
        # Checked here rather than after the model so that it is reported together with the rest.
        if value < max(1, info.data.get("pool_min_size", 0)):
            raise ValueError(f"must be >= 1 and >= {env_name('pool_min_size')}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str, info: ValidationInfo) -> str:
        return origin_list(value, info.data.get("cors_credentials", False))

    @model_validator(mode="after")
    def _jwt_settings_given(self) -> Settings:
        if self.auth == "jwt":
            needed = ("jwt_issuer", "jwt_audience", "jwt_jwks_url")
            missing = [env_name(name) for name in needed if not getattr(self, name)]
            if missing:
                raise ValueError(f"ITEMSAPI_AUTH=jwt needs {', '.join(missing)}")
        return self

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_database_url(value)
        return value

    @property
    def needs_listener(self) -> bool:
        """Whether each worker runs a listener (and so holds one more, direct, connection): for
        the read cache, and for the key records of key mode."""
        return self.cache or self.auth == "keys"

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the process environment, every bad variable reported at once."""
        return cls()

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated like the original."""
        return type(self)(**{**self.model_dump(), **changes})


def _variable(location: str) -> str:
    return env_name(location) if location in Settings.model_fields else location


def env_name(field_name: str) -> str:
    """The environment variable that sets a Settings field."""
    if field_name not in Settings.model_fields:
        raise KeyError(field_name)
    alias = Settings.model_fields[field_name].validation_alias
    return alias.choices[0] if isinstance(alias, AliasChoices) else ENV_PREFIX + field_name.upper()
