"""The `itemsapi` command: click commands only. `serve` runs the API (server.py), `migrate`
brings the schema up to date (migrations.py); each uses the embedded PostgreSQL when
DATABASE_URL is unset."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import click
import psycopg

from itemsapi import embedded, jsonlog, migrations, server
from itemsapi.config import ConfigError, Settings, env_name

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    if apply_schema:  # only the embedded default migrates by itself
        migrations.migrate(url)
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
    help=f"Item requests a worker runs at once [env {env_name('blocking_threads')}; 8].",
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


WAIT_OPTION = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to keep trying while the database cannot be reached (it may be starting).",
)


@main.command()
@WAIT_OPTION
@click.option("--status", is_flag=True, help="List applied and pending migrations; change nothing.")
@click.option("--dry-run", is_flag=True, help="Print what would be applied; change nothing.")
def migrate(wait: float, status: bool, dry_run: bool) -> None:
    """Bring the schema up to date: the baseline (sql/init.sql) if missing, then every pending
    file of sql/migrations in order, each once, under a lock (replicas may run it together)."""
    url = _setup(apply_schema=False)
    if status:
        for row in _retrying(lambda: migrations.status(url), wait):
            click.echo(f"{row.version:04d}  {row.state:<8} {row.name}")
        return
    done = _retrying(lambda: migrations.migrate(url, dry_run=dry_run), wait)
    verb = "would apply" if dry_run else "applied"
    for migration in done:
        click.echo(f"{verb} {migration.version:04d} {migration.name}")
    if not done:
        click.echo("schema up to date: nothing to apply")


@main.command("init-db")
@WAIT_OPTION
def init_db(wait: float) -> None:
    """Apply the schema: the same as `itemsapi migrate`, kept for existing scripts."""
    url = _setup(apply_schema=False)
    done = _retrying(lambda: migrations.migrate(url), wait)
    click.echo(f"schema applied: {len(done)} migration(s) now, up to date")


def _setup(*, apply_schema: bool) -> str:
    settings = _settings()
    jsonlog.configure(settings.log_level)
    return _database_url(settings, apply_schema=apply_schema)


def _retrying(work: Callable[[], T], wait: float) -> T:
    """work(), tried again every second for `wait` seconds while the database cannot be reached
    (it may be starting too); any other failure is final at once, as a one-line error."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return work()
        except psycopg.OperationalError as exc:  # could not connect, or lost the connection
            if time.monotonic() >= deadline:
                raise _not_applied(exc) from None
            log.info("database not reachable yet; trying again", extra={"error": str(exc)})
            time.sleep(1)
        except (psycopg.Error, migrations.MigrationError) as exc:  # retrying will not help
            raise _not_applied(exc) from None


def _not_applied(exc: Exception) -> click.ClickException:
    return click.ClickException(f"schema not applied: {str(exc).strip()}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
