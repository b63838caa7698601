"""The `itemsapi` command: click commands only. `serve` runs the API (server.py), `init-db`
applies the schema (db.py); both use the embedded PostgreSQL when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import sys
import time

import click
import psycopg

from itemsapi import db, embedded, jsonlog, server
from itemsapi.config import ConfigError, Settings, env_name

log = logging.getLogger(__name__)


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings.from_env()
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database_url(settings: Settings, *, apply_schema: bool = True) -> str:
    """The configured database, or the embedded one when unset: started, and its schema applied
    unless the caller (init-db) applies it itself."""
    if settings.database_url:
        return settings.database_url
    log.info(
        "DATABASE_URL is not set: using the embedded PostgreSQL",
        extra={"data_dir": str(settings.data_dir.resolve())},
    )
    try:
        url = embedded.start(settings.data_dir)
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if apply_schema:
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
    help=f"Threads per worker running requests [env {env_name('blocking_threads')}; 4].",
)
def serve(
    host: str | None, port: int | None, workers: int | None, blocking_threads: int | None
) -> None:
    """Serve the API with Granian (embedded PostgreSQL when DATABASE_URL is unset)."""
    settings = _settings(host=host, port=port, workers=workers, blocking_threads=blocking_threads)
    jsonlog.configure(settings.log_level)
    try:
        # Checked before the embedded database starts: a busy port fails fast either way.
        server.check_port_free(settings.host, settings.port)
        server.serve(settings, _database_url(settings))
    except server.CannotListen as exc:
        raise click.ClickException(str(exc)) from None


@main.command("init-db")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to keep trying while the database cannot be reached (it may be starting).",
)
def init_db(wait: float) -> None:
    """Apply sql/init.sql (idempotent) to DATABASE_URL, or to the embedded database."""
    settings = _settings()
    jsonlog.configure(settings.log_level)
    url = _database_url(settings, apply_schema=False)
    deadline = time.monotonic() + wait
    while True:
        try:
            db.apply_schema(url)
            break
        except psycopg.OperationalError as exc:  # could not connect, or lost the connection
            if time.monotonic() >= deadline:
                raise _not_applied(exc) from None
            log.info("database not reachable yet; trying again", extra={"error": str(exc)})
            time.sleep(1)
        except psycopg.Error as exc:  # the server refused the script: retrying will not help
            raise _not_applied(exc) from None
    click.echo(f"schema applied from {db.schema_path()}")


def _not_applied(exc: Exception) -> click.ClickException:
    return click.ClickException(f"schema not applied: {str(exc).strip()}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
