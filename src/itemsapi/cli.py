"""The `itemsapi` command: `serve` runs the API under Granian, `init-db` applies the schema."""

from __future__ import annotations

import logging
import os
import sys

import click

from itemsapi import db, embedded
from itemsapi import logging as json_logging
from itemsapi.config import ConfigError, Settings, env_name

APP_FACTORY = "itemsapi.app:create_app"

log = logging.getLogger(__name__)


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings.from_env()
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database_url(settings: Settings) -> str:
    """The configured database, or the embedded one (started, schema applied) when unset."""
    if settings.database_url:
        return settings.database_url
    log.info(
        "DATABASE_URL is not set: using the embedded PostgreSQL",
        extra={"data_dir": str(settings.data_dir.resolve())},
    )
    url = embedded.start(settings.data_dir)
    db.apply_schema(url)
    return url


@click.group()
@click.version_option(package_name="itemsapi")
def main() -> None:
    """itemsapi: a REST API for items on PostgreSQL."""


@main.command()
@click.option("--host", help=f"Address to bind [env {env_name('host')}; default 127.0.0.1].")
@click.option("--port", type=int, help=f"Port to bind [env {env_name('port')}; default 8000].")
@click.option("--workers", type=int, help=f"Worker processes [env {env_name('workers')}; 1].")
@click.option(
    "--blocking-threads",
    type=int,
    help=f"Threads per worker running requests [env {env_name('blocking_threads')}; 8].",
)
def serve(
    host: str | None, port: int | None, workers: int | None, blocking_threads: int | None
) -> None:
    """Serve the API with Granian (embedded PostgreSQL when DATABASE_URL is unset)."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings(host=host, port=port, workers=workers, blocking_threads=blocking_threads)
    json_logging.configure(settings.log_level)
    # Workers are forked from this process and read DATABASE_URL in the app factory.
    os.environ["DATABASE_URL"] = _database_url(settings)
    Granian(
        APP_FACTORY,
        factory=True,
        interface=Interfaces.WSGI,
        address=settings.host,
        port=settings.port,
        workers=settings.workers,
        blocking_threads=settings.blocking_threads,
        # Requests beyond the threads wait in Granian, not on the pool, so a pool wait never
        # exceeds what the threads can hold.
        backpressure=settings.blocking_threads,
        log_dictconfig=json_logging.dict_config(settings.log_level),
        log_access=False,  # the app writes its own JSON access line per request
        workers_kill_timeout=30,
    ).serve()


@main.command("init-db")
def init_db() -> None:
    """Apply sql/init.sql (idempotent) to DATABASE_URL, or to the embedded database."""
    settings = _settings()
    json_logging.configure(settings.log_level)
    url = _database_url(settings)
    db.apply_schema(url)
    click.echo(f"schema applied from {db.schema_path()}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
