"""Access control (docs/operations.md, "Access control"): API keys with scopes (keys.py) or
OpenID Connect bearer tokens (jwt_tokens.py), enforced before every request (enforce.py) by
the rule in scopes.py. `admin_only` marks a view as an operational action."""

from __future__ import annotations

import logging

from flask import Flask

from itemsapi.auth.keys import KeyStore
from itemsapi.auth.scopes import ADMIN, READ, SCOPES, WRITE, Principal, admin_only
from itemsapi.config import Settings
from itemsapi.db import REPOSITORY_KEY
from itemsapi.listener import LISTENER_KEY

__all__ = [
    "ADMIN",
    "KEY_STORE_KEY",
    "READ",
    "SCOPES",
    "WRITE",
    "KeyStore",
    "Principal",
    "admin_only",
    "init_app",
]

log = logging.getLogger(__name__)

KEY_STORE_KEY = "itemsapi.key_store"


def init_app(app: Flask) -> None:
    """Install the enforcement hook for the configured mode (after the repository and the
    listener exist, before the listener starts)."""
    # Imported here: enforcement counts refusals in itemsapi.metrics, and the CLI (which imports
    # this package for the keys commands) must not import prometheus-client before `serve` has
    # set up its multiprocess folder.
    from itemsapi.auth.enforce import install

    settings: Settings = app.config["SETTINGS"]
    if settings.auth == "off":
        log.warning(
            "ITEMSAPI_AUTH=off: access control is switched off; anyone who can reach the port "
            "may read, change and delete every item"
        )
        return
    if settings.auth == "jwt":
        from itemsapi.auth.jwt_tokens import JwtVerifier  # PyJWT only where it is used

        install(app, settings, JwtVerifier(settings).verify)
        return
    store = app.extensions[KEY_STORE_KEY] = KeyStore(
        app.extensions[REPOSITORY_KEY], app.extensions.get(LISTENER_KEY)
    )
    install(app, settings, store.verify)
