"""Deps: what the views need from the rest of the service, handed to the app once (app.py) and
read back with `deps()`; the one object kept in `app.extensions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from itemsapi.cache.follower import ChangeFollower
from itemsapi.cache.items import CachedItemRepository
from itemsapi.cache.listener import Listener
from itemsapi.config import Settings
from itemsapi.db.changes import ChangeLog
from itemsapi.db.database import Database
from itemsapi.db.health import DatabaseCheck
from itemsapi.db.transfer import Transfers

if TYPE_CHECKING:  # PyJWT is imported in JWT mode only
    from itemsapi.auth.jwks import Jwks

_KEY = "itemsapi"


@dataclass(frozen=True)
class Deps:
    settings: Settings
    items: CachedItemRepository
    database: Database
    check: DatabaseCheck
    listener: Listener | None
    transfers: Transfers
    identity_provider: Jwks | None = None  # JWT mode's key set
    changes: ChangeLog | None = None
    follower: ChangeFollower | None = None


def install(app: Flask, deps: Deps) -> None:
    app.extensions[_KEY] = deps


def deps() -> Deps:
    return current_app._get_current_object().extensions[_KEY]  # type: ignore[attr-defined]
