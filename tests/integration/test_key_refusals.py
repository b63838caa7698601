"""Issue 28, item 5: an unknown key id cost a database query at every request while a real id's
record was cached, so the time of a refusal told whether a key id exists. Every refused key now
takes the same path: with the table held (listening), none reads the database; otherwise each
reads its own row. Counted here on a real KeyRepository, on the real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from itemsapi.auth import keys
from itemsapi.auth.keys import KeyStore
from itemsapi.cache.listener import Listener
from itemsapi.config import Settings
from itemsapi.db.database import Database
from itemsapi.db.keys import KeyRepository
from itemsapi.db.pool import ConnectionEvents, create_pool
from itemsapi.errors import Unauthorized
from tests.helpers import create_key, revoke_key, wait_until


class CountingKeys(KeyRepository):
    """The real repository, counting the statements a lookup sends."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.rows = 0  # record(): one key's row
        self.tables = 0  # records(): the whole table

    def record(self, key_id, deadline=None):
        self.rows += 1
        return super().record(key_id, deadline)

    def records(self, limit):
        self.tables += 1
        return super().records(limit)


@pytest.fixture
def repository(clean_db: str) -> Iterator[CountingKeys]:
    settings = Settings(database_url=clean_db, pool_min_size=1, pool_max_size=2)
    events = ConnectionEvents()
    pool = create_pool(settings, events)
    pool.open(wait=True)
    yield CountingKeys(Database(pool, events))
    pool.close()


@pytest.fixture
def listener(clean_db: str) -> Iterator[Listener]:
    listener = Listener(clean_db)
    yield listener
    listener.stop(timeout=5)


@pytest.fixture
def tokens(sql) -> dict[str, str]:
    _, valid = create_key(sql, "valid", ["read"])
    revoked_id, revoked = create_key(sql, "revoked", ["read"])
    revoke_key(sql, revoked_id)
    return {"valid": valid, "revoked": revoked, "wrong secret": valid[:-8] + "AAAAAAAA"}


def forged() -> str:
    """A well-formed token of a fresh random key id: what a prober sends."""
    return keys.new_token()[1]


def refuse(store: KeyStore, token: str) -> str:
    with pytest.raises(Unauthorized) as refused:
        store.verify(token)
    return refused.value.reason


def listening_store(repository: CountingKeys, listener: Listener) -> KeyStore:
    store = KeyStore(repository, listener)
    listener.start()
    wait_until(lambda: listener.listening, 10, "the listener")
    return store


def test_while_listening_no_refusal_reads_the_database(repository, listener, tokens):
    store = listening_store(repository, listener)
    assert store.verify(tokens["valid"]).scopes == {"read"}
    assert (repository.tables, repository.rows) == (1, 0)  # the table, read once
    for _ in range(3):
        assert refuse(store, forged()) == "unknown"
        assert refuse(store, tokens["wrong secret"]) == "unknown"
        assert refuse(store, tokens["revoked"]) == "revoked"
    assert (repository.tables, repository.rows) == (1, 0)


def test_forged_ids_neither_grow_memory_nor_push_real_keys_out(repository, listener, tokens):
    store = listening_store(repository, listener)
    store.verify(tokens["valid"])
    for _ in range(5000):
        refuse(store, forged())
    assert len(store._table) == 1  # the held table, and nothing of the forged ids
    assert store.verify(tokens["valid"]).scopes == {"read"}
    assert (repository.tables, repository.rows) == (1, 0)


def test_changes_to_keys_are_held_once_announced(repository, listener, tokens, sql):
    store = listening_store(repository, listener)
    store.verify(tokens["valid"])  # the table read, without the key made next
    _, late = create_key(sql, "created after the table was read", ["write"])
    wait_until(lambda: _accepted(store, late), 1.0, "the new key", interval=0.01)
    revoke_key(sql, late.split("_")[1])
    wait_until(lambda: not _accepted(store, late), 1.0, "the revocation", interval=0.01)
    assert repository.rows == 0
    assert repository.tables >= 3  # read again after each change


def _accepted(store: KeyStore, token: str) -> bool:
    try:
        store.verify(token)
    except Unauthorized:
        return False
    return True


def test_not_listening_every_kind_reads_its_own_row(repository, tokens):
    store = KeyStore(repository)  # no listener
    for token in (forged(), tokens["wrong secret"], tokens["revoked"]):
        before = repository.rows
        refuse(store, token)
        assert repository.rows == before + 1
    assert repository.tables == 0


def test_with_more_keys_than_held_every_kind_reads_its_own_row(
    repository, listener, tokens, monkeypatch
):
    monkeypatch.setattr(keys, "KEYS_HELD_MAX", 1)  # the fixture made two keys
    store = listening_store(repository, listener)
    assert store.verify(tokens["valid"]).scopes == {"read"}
    assert (repository.tables, repository.rows) == (1, 1)
    for token in (forged(), tokens["wrong secret"], tokens["revoked"]):
        before = repository.rows
        refuse(store, token)
        assert repository.rows == before + 1
    assert repository.tables == 1  # "too many" is kept until the next change, not re-read
