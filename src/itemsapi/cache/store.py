"""A per-worker read cache: bounded LRU with a TTL, thread-safe, one load per key at a time, and
never storing a value that an invalidation has overtaken.

Coherence rests on three rules (docs/operations.md, "Read cache"):
- While it is not `usable` (the listener is not listening, so changes could go unheard) every
  read is a bypass: it loads, and stores nothing. Turning unusable empties it.
- Each key belongs to a stripe with a generation number; invalidating a key bumps its stripe's
  generation, and a flush bumps the epoch, which every stripe shares.
- A load notes (epoch, generation) before it reads the database and stores its value only if
  both are unchanged when it finishes. An invalidation that lands while the load was reading may
  concern a change the load did not see; the value is then returned to its caller but not kept.

Two regions: single items, invalidated by key, and list pages, which any change can alter and so
are flushed whole on every invalidation (replacing the map: O(1), however many pages it holds).

Bounded in entries, and, given `sizeof`, in bytes: cachetools' own `getsizeof` charges each entry
max(its size, max_bytes / max_entries), so neither bound can be passed, and an entry larger than
`max_entry_bytes` is returned but not kept. Sizes are measured before taking the lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cachetools import TTLCache

T = TypeVar("T")

HIT, MISS, BYPASS = "hit", "miss", "bypass"
STRIPES = 1024  # generations of item keys: collisions only cost an occasional unstored load
LIST_SHARE = 10  # list pages may hold at most 1/LIST_SHARE of the bounds (at least one entry)


def _charge(entry: tuple[Any, int]) -> int:
    return entry[1]


class _Entries(TTLCache):
    """TTLCache of (value, charge) pairs, bounded by the sum of the charges, telling someone
    about each entry evicted for room (not about expired ones)."""

    def __init__(self, maxsize: int, ttl: float, on_evict: Callable[[], None]) -> None:
        super().__init__(maxsize, ttl, getsizeof=_charge)
        self._on_evict = on_evict

    def popitem(self) -> tuple[Any, Any]:
        item = super().popitem()
        self._on_evict()
        return item


@dataclass
class _Flight:
    """One database load in progress; misses of the same key with the same token wait for it."""

    token: tuple[int, int]
    # Held by the leader until its load ends; waiters acquire it to wait. A lock, not an Event:
    # one is made per miss, and a lock costs a fraction of an Event (a Condition and a lock).
    done: threading.Lock = field(default_factory=threading.Lock)
    value: Any = None
    error: BaseException | None = None


class ReadCache:
    def __init__(
        self,
        max_entries: int,
        ttl: float,
        on_evict: Callable[[], None] = lambda: None,
        *,
        sizeof: Callable[[Any], int] | None = None,
        max_bytes: int = 0,
        max_entry_bytes: int = 0,
    ) -> None:
        self._ttl = ttl
        self._on_evict = on_evict
        self._sizeof = sizeof
        # Without sizeof every entry costs 1 and the bound is max_entries; with it, each costs
        # at least `unit` bytes, so max_bytes also keeps the count within max_entries.
        self._unit = math.ceil(max_bytes / max_entries) if sizeof else 1
        self._item_max = max_bytes if sizeof else max_entries
        self._list_max = max(self._unit, self._item_max // LIST_SHARE)
        cap = max_entry_bytes or self._item_max
        self._entry_max = (min(cap, self._item_max), min(cap, self._list_max))
        self._items = _Entries(self._item_max, ttl, on_evict)
        self._lists = _Entries(self._list_max, ttl, on_evict)
        self._lock = threading.Lock()
        self._usable = False
        self._epoch = 0
        self._stripes = [0] * STRIPES
        self._list_generation = 0
        self._flights: dict[Hashable, _Flight] = {}

    # --- reading ----------------------------------------------------------------------------

    def item(self, key: Hashable, load: Callable[[], T]) -> tuple[T, str]:
        return self._get(False, key, load)

    def page(self, key: Hashable, load: Callable[[], T]) -> tuple[T, str]:
        return self._get(True, key, load)

    def _region(self, is_list: bool) -> _Entries:
        # Looked up under the lock each time: a flush replaces the maps.
        return self._lists if is_list else self._items

    def _get(self, is_list: bool, key: Hashable, load: Callable[[], T]) -> tuple[T, str]:
        """(value, outcome): from memory, from a load in flight, or from `load()`."""
        flight_key = (is_list, key)
        with self._lock:
            if not self._usable:
                leader, flight = None, None
            else:
                try:
                    return self._region(is_list)[key][0], HIT
                except KeyError:
                    pass
                token = self._token(is_list, key)
                flight = self._flights.get(flight_key)
                leader = flight is None or flight.token != token
                if leader:
                    # A flight with an older token may have read a row since changed: not joined.
                    flight = self._flights[flight_key] = _Flight(token)
                    flight.done.acquire()
        if flight is None:
            return load(), BYPASS
        if not leader:
            with flight.done:
                pass
            if flight.error is not None:
                raise flight.error
            return flight.value, MISS
        try:
            flight.value = load()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            charge = self._charge(is_list, flight.value)
            with self._lock:
                if charge and self._usable and self._token(is_list, key) == flight.token:
                    self._region(is_list)[key] = (flight.value, charge)
            return flight.value, MISS
        finally:
            with self._lock:
                if self._flights.get(flight_key) is flight:
                    del self._flights[flight_key]
            flight.done.release()

    def prime(self, load: Callable[[], Iterable[tuple[Hashable, Any]]]) -> int:
        """Store the items `load()` returns (key, value pairs), under the rule every load obeys:
        the generations are noted before it reads, and an item whose stripe (or the epoch)
        moved meanwhile is not kept. Never evicts: only free room is filled, and entries already
        there stay; an item over the per-entry cap is skipped. Returns how many were stored."""
        with self._lock:
            if not self._usable:
                return 0
            epoch, stripes = self._epoch, list(self._stripes)
        loaded = [(key, value, self._charge(False, value)) for key, value in load()]
        stored = 0
        with self._lock:
            if not self._usable or self._epoch != epoch:
                return 0
            items = self._items
            for key, value, charge in loaded:
                stripe = hash(key) % STRIPES
                if not charge:
                    continue
                if items.currsize + charge > items.maxsize:
                    break
                if self._stripes[stripe] == stripes[stripe] and key not in items:
                    items[key] = (value, charge)
                    stored += 1
        return stored

    def _charge(self, is_list: bool, value: Any) -> int:
        """What keeping `value` costs against the bound; 0: too large to keep."""
        if self._sizeof is None:
            return 1
        size = self._sizeof(value)
        return max(size, self._unit) if size <= self._entry_max[is_list] else 0

    def _token(self, is_list: bool, key: Hashable) -> tuple[int, int]:
        if is_list:
            return self._epoch, self._list_generation
        return self._epoch, self._stripes[hash(key) % STRIPES]

    # --- invalidating -----------------------------------------------------------------------

    def invalidate(self, keys: Iterable[Hashable]) -> int:
        """Drop these items and every list page; returns how many entries went."""
        with self._lock:
            dropped = 0
            for key in keys:
                self._stripes[hash(key) % STRIPES] += 1
                if self._items.pop(key, None) is not None:
                    dropped += 1
            self._list_generation += 1
            if dropped_pages := len(self._lists):
                self._lists = _Entries(self._list_max, self._ttl, self._on_evict)
            return dropped + dropped_pages

    def flush(self) -> int:
        """Drop everything, and let no load in flight store; returns how many entries went."""
        with self._lock:
            return self._flush()

    def _flush(self) -> int:
        dropped = len(self._items) + len(self._lists)
        self._epoch += 1
        self._items = _Entries(self._item_max, self._ttl, self._on_evict)
        self._lists = _Entries(self._list_max, self._ttl, self._on_evict)
        return dropped

    def set_usable(self, usable: bool, keep: bool = False) -> None:
        """Usable only while every change is sure to be heard of. Unless `keep`, either way the
        cache starts empty: entries kept from before a gap in listening may be stale. `keep`
        is for a gap whose changes have been invalidated since (cache/follower.py)."""
        with self._lock:
            self._usable = usable
            if not keep:
                self._flush()

    @property
    def usable(self) -> bool:
        return self._usable

    def __len__(self) -> int:
        return len(self._items) + len(self._lists)
