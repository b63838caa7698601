"""API keys: the token format, the api_keys table behind KeyStore (a key's record, cached while
changes to api_keys are heard of) and the functions `itemsapi keys` runs (create, list, revoke).

A token is `itemsapi_<id>_<secret>`: the prefix makes a leaked token recognisable (secret
scanners, grep), the id finds the row with one indexed lookup, and the secret is 256 random
bits. Only the sha256 of the whole token is stored; a random secret that long needs no slow
password hash. The comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from itemsapi.auth.scopes import SCOPES, Principal
from itemsapi.cache import ReadCache
from itemsapi.errors import ItemsError, Unauthorized
from itemsapi.listener import Listener
from itemsapi.repository import ItemRepository

log = logging.getLogger(__name__)

TOKEN_PREFIX = "itemsapi_"  # noqa: S105 - the public prefix
_TOKEN = re.compile(r"itemsapi_([0-9a-f]{12})_[A-Za-z0-9_-]{43,128}")
# Seconds between two writes of a key's last_used_at from one process.
TOUCH_INTERVAL = 60.0
CHANNEL = "itemsapi_keys"  # sql/migrations/0003_api_keys_notify.sql
RECORDS_MAX = 1024  # key records a worker keeps
RECORDS_TTL = 60.0  # a safety net only: changes are heard of at once

LOOKUP = (
    "SELECT id, scopes, token_sha256, revoked_at IS NOT NULL AS revoked"
    " FROM api_keys WHERE id = %(id)s"
)
TOUCH = "UPDATE api_keys SET last_used_at = now() WHERE id = %(id)s"
INSERT = (
    "INSERT INTO api_keys (id, name, scopes, token_sha256)"
    " VALUES (%(id)s, %(name)s, %(scopes)s, %(token_sha256)s)"
)
LIST = (
    "SELECT id, name, scopes, created_at, last_used_at, revoked_at"
    " FROM api_keys ORDER BY created_at, id"
)
REVOKE = (
    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = %(id)s"
    " RETURNING revoked_at"
)


def new_token() -> tuple[str, str]:
    """A fresh (key id, token)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def token_key_id(token: str) -> str | None:
    """The key id a well-formed token names, else None."""
    match = _TOKEN.fullmatch(token)
    return match[1] if match else None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# Compared against when the key id is unknown, so that an unknown id costs what a wrong secret
# does.
_NO_KEY = digest(TOKEN_PREFIX)


@dataclass(frozen=True)
class KeyRecord:
    id: str
    scopes: frozenset[str]
    token_sha256: bytes
    revoked: bool


class _NoSuchKey(Exception):
    """Raised through the records cache, so that an unknown key id is never stored: ids that
    name no key cost a lookup each, and cannot push the real keys out."""


class KeyStore:
    """Requests' one door to api_keys. A key's record (one small query by primary key) is kept
    in a ReadCache of this worker while `listener` hears every change to api_keys (the triggers
    of migration 0003), so a revocation holds in every worker and replica once its notification
    arrives, milliseconds after the commit; while not listening, every request reads the row.
    Without a listener, every request reads it."""

    def __init__(
        self,
        repository: ItemRepository,
        listener: Listener | None = None,
        touch_interval: float = TOUCH_INTERVAL,
    ) -> None:
        self._repository = repository
        self._touch_interval = touch_interval
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()
        self._records: ReadCache | None = None
        if listener is not None:
            self._records = ReadCache(RECORDS_MAX, RECORDS_TTL)
            listener.subscribe(CHANNEL, lambda _payload: self._records.flush())
            listener.on_state_change(self._records.set_usable)

    def lookup(self, key_id: str) -> KeyRecord | None:
        if self._records is None:
            return self._read(key_id)
        try:
            return self._records.item(key_id, lambda: self._read_known(key_id))[0]
        except _NoSuchKey:
            return None

    def _read_known(self, key_id: str) -> KeyRecord:
        record = self._read(key_id)
        if record is None:
            raise _NoSuchKey
        return record

    def _read(self, key_id: str) -> KeyRecord | None:
        row = self._repository.read(lambda conn: conn.run(LOOKUP, {"id": key_id}).fetchone())
        if row is None:
            return None
        return KeyRecord(row["id"], frozenset(row["scopes"]), row["token_sha256"], row["revoked"])

    def verify(self, token: str) -> Principal:
        """The principal a token stands for; Unauthorized if it stands for none."""
        key_id = token_key_id(token)
        if key_id is None:
            raise Unauthorized("malformed")
        record = self.lookup(key_id)
        expected = record.token_sha256 if record is not None else _NO_KEY
        if not hmac.compare_digest(digest(token), expected) or record is None:
            raise Unauthorized("unknown")
        if record.revoked:
            raise Unauthorized("revoked")
        self.touch(key_id)
        return Principal(record.id, record.scopes)

    def touch(self, key_id: str) -> None:
        """Record a use: at most once per interval per key in this process (the time of the
        last write is kept here), so that reads stay reads; a failure is logged, never raised."""
        now = time.monotonic()
        with self._touch_lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < self._touch_interval:
                return
            self._touched[key_id] = now
        try:
            self._repository.write(lambda conn: conn.run(TOUCH, {"id": key_id}))
        except ItemsError as exc:
            log.warning("could not record a key's last use", extra={"key_id": key_id,
                                                                   "error": str(exc)})  # fmt: skip


def parse_scopes(text: str) -> list[str]:
    """'write, read' -> ['read', 'write']; ValueError for an unknown scope or none at all."""
    given = {scope.strip() for scope in text.split(",") if scope.strip()}
    unknown = sorted(given - set(SCOPES))
    if unknown or not given:
        wrong = f"unknown scope {', '.join(unknown)}: " if unknown else "no scope given: "
        raise ValueError(wrong + f"choose from {','.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in given]


def create_key(conn: psycopg.Connection, name: str, scopes: list[str]) -> tuple[str, str]:
    """Store a new key; return (key id, token). The token exists only in the return value."""
    key_id, token = new_token()
    conn.execute(
        INSERT, {"id": key_id, "name": name, "scopes": scopes, "token_sha256": digest(token)}
    )
    return key_id, token


def list_keys(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(LIST).fetchall()


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke a key (again is harmless); False if there is no such key."""
    return conn.execute(REVOKE, {"id": key_id}).fetchone() is not None
