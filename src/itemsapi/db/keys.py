"""KeyRepository: the only door to the api_keys table (auth/keys.py owns what a key means; this
only stores and reads its rows). Its statements run through Database like the items', so a
request's key lookup shares the pool, its deadline and the error mapping."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from itemsapi.db.database import Database
from itemsapi.db.pool import Row

LOOKUP = (
    "SELECT id, scopes, token_sha256, revoked_at IS NOT NULL AS revoked"
    " FROM api_keys WHERE id = %(id)s"
)
# Every key, for a worker that holds them all (auth/keys.py); the limit tells it when there are
# too many to hold.
ALL = (
    "SELECT id, scopes, token_sha256, revoked_at IS NOT NULL AS revoked"
    " FROM api_keys LIMIT %(limit)s"
)
TOUCH = "UPDATE api_keys SET last_used_at = now() WHERE id = %(id)s"
INSERT = (
    "INSERT INTO api_keys (id, name, scopes, token_sha256)"
    " VALUES (%(id)s, %(name)s, %(scopes)s, %(token_sha256)s)"
)
LIST = (
    "SELECT id, name, scopes, created_at AT TIME ZONE 'UTC' AS created_at,"
    " last_used_at AT TIME ZONE 'UTC' AS last_used_at,"
    " revoked_at AT TIME ZONE 'UTC' AS revoked_at"
    " FROM api_keys ORDER BY created_at, id"
)
# One statement, so that two revocations at once cannot both say they revoked the key.
REVOKE = (
    "WITH found AS (SELECT revoked_at FROM api_keys WHERE id = %(id)s),"
    " revoked AS (UPDATE api_keys SET revoked_at = now()"
    " WHERE id = %(id)s AND revoked_at IS NULL RETURNING 1)"
    " SELECT EXISTS (SELECT FROM found) AS found, EXISTS (SELECT FROM revoked) AS revoked"
)


class Revocation(Enum):
    REVOKED = "revoked"
    ALREADY_REVOKED = "already revoked"
    NO_SUCH_KEY = "no such key"


class KeyRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def record(self, key_id: str, deadline: float | None = None) -> Row | None:
        """id, scopes, token_sha256 and revoked of one key, or None."""
        return self._db.read(lambda conn: conn.run(LOOKUP, {"id": key_id}).fetchone(), deadline)

    def records(self, limit: int) -> list[Row]:
        """What record() gives, for at most `limit` keys (no order: all or too many)."""
        return self._db.read(lambda conn: conn.run(ALL, {"limit": limit}).fetchall())

    def touch(self, key_id: str) -> None:
        self._db.write(lambda conn: conn.run(TOUCH, {"id": key_id}))

    def insert(self, key_id: str, name: str, scopes: Sequence[str], token_sha256: bytes) -> None:
        values = {"id": key_id, "name": name, "scopes": list(scopes), "token_sha256": token_sha256}
        self._db.write(lambda conn: conn.run(INSERT, values))

    def all(self) -> list[Row]:
        """Every key, oldest first; times in UTC. Never a token or its hash."""
        return self._db.read(lambda conn: conn.run(LIST).fetchall())

    def revoke(self, key_id: str) -> Revocation:
        row = self._db.write(lambda conn: conn.run(REVOKE, {"id": key_id}).fetchone())
        if row["revoked"]:
            return Revocation.REVOKED
        return Revocation.ALREADY_REVOKED if row["found"] else Revocation.NO_SUCH_KEY
