"""JWT mode's fixtures, shared by its tests: a fake issuer serving a JWKS (tests/integration/
test_auth_jwt.py says how it answers) and an app verifying tokens against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from itemsapi.app import close_app, create_app
from tests.integration.test_auth_jwt import AUDIENCE, ISSUER, REFRESH_SECONDS, Issuer


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    yield issuer
    issuer.release.set()
    issuer.server.shutdown()
    issuer.server.server_close()


@pytest.fixture
def jwt_app(clean_db: str, issuer: Issuer) -> Iterator[Flask]:
    app = create_app({
        "database_url": clean_db, "auth": "jwt", "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE,
        "jwt_jwks_url": issuer.url, "jwt_jwks_refresh_seconds": REFRESH_SECONDS,
    })  # fmt: skip
    yield app
    close_app(app)
