"""The `itemsapi` command: click commands only. `serve` runs the API (serve/server.py),
`migrate` brings the schema up to date (db/migrations.py), `keys` manages API keys
(auth/keys.py), `export` and `import` move items (transfer_cli.py); each uses the embedded
PostgreSQL when DATABASE_URL is unset.

Only `serve` logs to stdout (a server's output is its log); the other commands log to stderr,
so that stdout holds only what they print for a script."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import click
import psycopg

from itemsapi import jsonlog, tracing, transfer_cli
from itemsapi.auth import dev_key, keys
from itemsapi.config import ConfigError, Settings, env_name
from itemsapi.db import migrations
from itemsapi.db.database import direct
from itemsapi.db.keys import KeyRepository, Revocation
from itemsapi.db.pool import connection_options
from itemsapi.errors import ItemsError, SchemaMissing
from itemsapi.serve import embedded, server

log = logging.getLogger(__name__)

T = TypeVar("T")


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings.from_env()
        tracing.exporters(os.environ)  # OTEL_* asking for what cannot be exported: refused now
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
        migrations.migrate(url, search_config=settings.search_config)
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
    help=f"Item requests a worker runs at once [env {env_name('blocking_threads')}; 16].",
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
        url = _database_url(settings)
        if not settings.database_url and settings.auth == "keys":
            with direct(url, connection_options(settings)) as database:
                # The embedded default: a key to start with.
                click.echo(dev_key.ensure(settings, KeyRepository(database)), err=True)
        server.serve(settings, url)
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
    settings, url = _configured(apply_schema=False)
    if status:
        rows = _retrying(lambda: migrations.status(url), wait, "cannot read the schema's status")
        for row in rows:
            click.echo(f"{row.version:04d}  {row.state:<8} {row.name}")
        return
    config = settings.search_config
    done = _retrying(lambda: migrations.migrate(url, dry_run=dry_run, search_config=config), wait)
    verb = "would apply" if dry_run else "applied"
    for migration in done:
        click.echo(f"{verb} {migration.version:04d} {migration.name}")
    if not done:
        click.echo("schema up to date: nothing to apply")


@main.command("init-db")
@WAIT_OPTION
def init_db(wait: float) -> None:
    """Apply the schema: the same as `itemsapi migrate`, kept for existing scripts."""
    settings, url = _configured(apply_schema=False)
    config = settings.search_config
    done = _retrying(lambda: migrations.migrate(url, search_config=config), wait)
    click.echo(f"schema applied: {len(done)} migration(s) now, up to date")


@main.group("keys")
def keys_group() -> None:
    """API keys: create (the token is shown once), list, revoke."""


@keys_group.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option(
    "--scopes", default="read", show_default=True, help="Comma-separated: read, write, admin."
)
def keys_create(name: str, scopes: str) -> None:
    """Create a key; its token is printed once, alone on the last line."""
    try:
        chosen = keys.parse_scopes(scopes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from None
    try:
        keys.check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    key_id, token = _with_keys(lambda repository: keys.create_key(repository, name, chosen))
    click.echo(f"created key {key_id} ({name}) with scopes {','.join(chosen)}")
    click.echo("the token follows; it is shown only this once:")
    click.echo(token)


@keys_group.command("list")
def keys_list() -> None:
    """List keys: id, name, scopes, created, last used, revoked (UTC; never a token)."""
    rows = _with_keys(lambda repository: repository.all())
    click.echo(f"{'ID':<12}  {'NAME':<20} {'SCOPES':<16} {'CREATED':<20} {'LAST USED':<20} REVOKED")
    for row in rows:
        click.echo(
            f"{row['id']:<12}  {row['name'][:20]:<20} {','.join(row['scopes']):<16} "
            f"{_when(row['created_at']):<20} {_when(row['last_used_at']):<20} "
            f"{_when(row['revoked_at'])}"
        )


@keys_group.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: refused from the next request on, by every worker and replica."""
    outcome = _with_keys(lambda repository: keys.revoke_key(repository, key_id))
    if outcome is not Revocation.REVOKED:
        raise click.ClickException(f"key {key_id[:40]}: {outcome.value}; nothing changed")
    click.echo(f"revoked key {key_id}")


def _with_keys(work: Callable[[KeyRepository], T]) -> T:
    settings, url = _configured(apply_schema=True)
    try:
        with direct(url, connection_options(settings)) as database:
            return work(KeyRepository(database))
    except SchemaMissing:
        raise click.ClickException("no api_keys table: run `itemsapi migrate` first") from None
    except ItemsError as exc:
        # The database's own words: this is the operator's terminal, not an HTTP client.
        cause = exc.__cause__ or exc
        raise click.ClickException(str(cause).strip().splitlines()[0]) from None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _configured(*, apply_schema: bool) -> tuple[Settings, str]:
    """A command's settings, its log on stderr, and the database it works on."""
    settings = _settings()
    jsonlog.configure(settings.log_level, sys.stderr)
    return settings, _database_url(settings, apply_schema=apply_schema)


def _setup(*, apply_schema: bool) -> str:
    return _configured(apply_schema=apply_schema)[1]


def _retrying(work: Callable[[], T], wait: float, failed: str = "schema not applied") -> T:
    """work(), tried again every second for `wait` seconds while the database cannot be reached
    (it may be starting too); any other failure is final at once, as a one-line error."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return work()
        except psycopg.OperationalError as exc:  # could not connect, or lost the connection
            if time.monotonic() >= deadline:
                reason = str(exc).strip().splitlines()[0]
                raise click.ClickException(
                    f"{failed}: the database cannot be reached: {reason}"
                ) from None
            log.info("database not reachable yet; trying again", extra={"error": str(exc)})
            time.sleep(1)
        except (psycopg.Error, migrations.MigrationError) as exc:  # retrying will not help
            raise click.ClickException(f"{failed}: {str(exc).strip()}") from None


transfer_cli.register(main, lambda: _configured(apply_schema=True))

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
