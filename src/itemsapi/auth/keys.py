"""API keys: the token format, KeyStore (the key records, held by each worker while changes to
api_keys are heard of) and what `itemsapi keys` does (create, list, revoke). The rows are
KeyRepository's (db/keys.py).

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

from itemsapi.auth.scopes import SCOPES, Principal
from itemsapi.cache.listener import Listener
from itemsapi.cache.store import ReadCache
from itemsapi.db.keys import KeyRepository, Revocation
from itemsapi.db.pool import Row
from itemsapi.errors import ItemsError, Unauthorized

log = logging.getLogger(__name__)

TOKEN_PREFIX = "itemsapi_"  # noqa: S105 - the public prefix
_TOKEN = re.compile(r"itemsapi_([0-9a-f]{12})_[A-Za-z0-9_-]{43,128}")
# Seconds between two writes of a key's last_used_at from one process.
TOUCH_INTERVAL = 60.0
CHANNEL = "itemsapi_keys"  # sql/migrations/0003_api_keys_notify.sql
# Keys a worker holds in memory (about 0.2 KB each); with more in the table, every request reads
# its own key's row instead, whatever the key (docs/security.md: the same cost for every refusal).
KEYS_HELD_MAX = 10_000
TABLE_TTL = 60.0  # a safety net only: changes are heard of at once
_TABLE = "api_keys"  # the held table's one entry in its ReadCache

NAME_MAX = 200  # the api_keys table's CHECK says the same


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


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    scopes: frozenset[str]
    token_sha256: bytes
    revoked: bool


class KeyStore:
    """Requests' one door to api_keys, built so that every refused key costs the same: an
    unknown id, a wrong secret and a revoked key each take one lookup in the same place and one
    constant-time comparison (an unknown id against a dummy digest).

    While `listener` hears every change to api_keys (the triggers of migration 0003), each worker
    holds the whole table (one query, up to KEYS_HELD_MAX keys) in a ReadCache entry that every
    notification drops and the next request reloads: a revocation holds in every worker and
    replica milliseconds after its commit, and no key, known or forged, costs a query. Forged ids
    store nothing, so they can neither grow memory nor push real keys out. Not listening, or with
    more keys than that, every request reads its own key's row: one query, whatever the key."""

    def __init__(
        self,
        repository: KeyRepository,
        listener: Listener | None = None,
        touch_interval: float = TOUCH_INTERVAL,
    ) -> None:
        self._repository = repository
        self._touch_interval = touch_interval
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()
        self._table: ReadCache | None = None
        if listener is not None:
            self._table = ReadCache(1, TABLE_TTL)
            listener.subscribe(CHANNEL, lambda _payload: self._table.flush())
            listener.on_state_change(self._table.set_usable)

    def lookup(self, key_id: str) -> KeyRecord | None:
        if self._table is not None and self._table.usable:
            held = self._table.item(_TABLE, self._load_table)[0]
            if held is not None:
                return held.get(key_id)
        row = self._repository.record(key_id)
        return _record(row) if row is not None else None

    def _load_table(self) -> dict[str, KeyRecord] | None:
        """Every key by id; None when there are more than KEYS_HELD_MAX (kept as such until
        the next change, so that the table is not read again at each request)."""
        rows = self._repository.records(KEYS_HELD_MAX + 1)
        if len(rows) > KEYS_HELD_MAX:
            log.warning(
                "more API keys than a worker holds: each request reads its key's row",
                extra={"held_max": KEYS_HELD_MAX},
            )
            return None
        scopes: dict[frozenset[str], frozenset[str]] = {}  # a few distinct sets, shared
        records = (_record(row, scopes) for row in rows)
        return {record.id: record for record in records}

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
            self._repository.touch(key_id)
        except ItemsError as exc:
            log.warning("could not record a key's last use", extra={"key_id": key_id,
                                                                   "error": str(exc)})  # fmt: skip


def _record(row: Row, shared: dict[frozenset[str], frozenset[str]] | None = None) -> KeyRecord:
    scopes = frozenset(row["scopes"])
    if shared is not None:
        scopes = shared.setdefault(scopes, scopes)
    return KeyRecord(row["id"], scopes, row["token_sha256"], row["revoked"])


def parse_scopes(text: str) -> list[str]:
    """'write, read' -> ['read', 'write']; ValueError for an unknown scope or none at all."""
    given = {scope.strip() for scope in text.split(",") if scope.strip()}
    unknown = sorted(given - set(SCOPES))
    if unknown or not given:
        wrong = f"unknown scope {', '.join(unknown)}: " if unknown else "no scope given: "
        raise ValueError(wrong + f"choose from {','.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in given]


def check_name(name: str) -> str:
    """A key's name as stored: 1 to NAME_MAX characters, not only white space; ValueError."""
    if not name.strip() or len(name) > NAME_MAX:
        raise ValueError(f"a key's name is 1 to {NAME_MAX} characters, not only spaces")
    return name


def create_key(repository: KeyRepository, name: str, scopes: list[str]) -> tuple[str, str]:
    """Store a new key; return (key id, token). The token exists only in the return value."""
    key_id, token = new_token()
    repository.insert(key_id, check_name(name), scopes, digest(token))
    return key_id, token


def revoke_key(repository: KeyRepository, key_id: str) -> Revocation:
    """Revoke a key; says whether it was revoked now, already, or is not a key."""
    return repository.revoke(key_id)
