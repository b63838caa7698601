"""Test fixtures. Every test that touches data uses a real PostgreSQL, found in this order:

1. ITEMSAPI_TEST_DATABASE_URL, used as is (its items table is emptied between tests);
2. a throwaway postgres:18 container through testcontainers, when a Docker engine answers;
3. the embedded PostgreSQL (pgserver) in a temporary folder, deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql as pgsql

from itemsapi.app import close_app, create_app
from itemsapi.auth.scopes import SCOPES
from itemsapi.db import migrations
from itemsapi.serve import embedded
from tests.helpers import create_key

POSTGRES_IMAGE = "postgres:18"


def pytest_configure(config: pytest.Config) -> None:
    """As root, each run gets a temporary folder of its own. The clusters the tests start run
    as another user (PostgreSQL refuses root), inside pytest's folders; pytest's shared
    /tmp/pytest-of-root is made private again by every run that starts, so a second run at the
    same time (a developer's, beside CI's) would lock the first one's clusters out of their
    own data."""
    if os.geteuid() == 0 and config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="itemsapi-pytest-")
        config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    explicit = os.environ.get("ITEMSAPI_TEST_DATABASE_URL")
    if explicit:
        migrations.migrate(explicit)
        yield explicit
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            url = container.get_connection_url()
            migrations.migrate(url)
            yield url
    else:
        data_dir = tmp_path_factory.mktemp("embedded-pg")
        url = embedded.start(data_dir, database="itemsapi_test", cleanup="delete")
        migrations.migrate(url)
        yield url


@pytest.fixture
def clean_db(database_url: str) -> str:
    """The test database with an empty items table (ids restart at 1), no API keys, no
    idempotency keys and an empty change log."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE items RESTART IDENTITY")
        conn.execute("TRUNCATE item_changes RESTART IDENTITY")
        conn.execute("UPDATE item_changes_pruned SET tx = '0', seq = 0")
        conn.execute("TRUNCATE api_keys")
        conn.execute("TRUNCATE idempotency_keys")
    return database_url


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A database of its own on the test server, without the schema; dropped afterwards."""
    name = f"empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name)))


@pytest.fixture
def app(clean_db: str) -> Iterator[Flask]:
    # No cache priming: tests that expect a first read to miss must not race the primer (its
    # own tests turn it on).
    app = create_app(
        {"database_url": clean_db, "pool_min_size": 1, "pool_max_size": 4, "cache_prime": 0}
    )
    app.config["TESTING"] = True
    yield app
    close_app(app)


@pytest.fixture
def api_token(clean_db: str) -> str:
    """The token of a key with every scope, in the test database."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        return create_key(conn, "tests", list(SCOPES))[1]


@pytest.fixture
def client(app: Flask, api_token: str) -> FlaskClient:
    """A test client that sends a key with every scope (auth is on, as by default); a request
    may override the header, and app.test_client() sends none."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_token}"
    return client


@pytest.fixture
def keyed_client(api_token: str) -> Callable[[Flask], FlaskClient]:
    """keyed_client(app): a test client of another app that sends the full-scope key."""

    def make(app: Flask) -> FlaskClient:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_token}"
        return client

    return make


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sql(clean_db: str) -> Iterator[psycopg.Connection]:
    """A direct connection, for looking at (or arranging) rows behind the API's back."""
    with psycopg.connect(clean_db, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        yield conn
