"""The read cache on its own: bounds, bypass, single-flight, and loads overtaken by invalidation."""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from itemsapi.cache.ring import FLUSH, SLOTS, WriteRing
from itemsapi.cache.store import BYPASS, HIT, MISS, ReadCache
from tests.helpers import run_at_once


def usable_cache(max_entries: int = 100, ttl: float = 60) -> ReadCache:
    cache = ReadCache(max_entries, ttl)
    cache.set_usable(True)
    return cache


def test_a_second_read_is_a_hit_until_the_key_is_invalidated():
    cache = usable_cache()
    assert cache.item(1, lambda: "v1") == ("v1", MISS)
    assert cache.item(1, lambda: "other") == ("v1", HIT)
    cache.invalidate([1])
    assert cache.item(1, lambda: "v2") == ("v2", MISS)


def test_any_invalidation_drops_every_list_page():
    cache = usable_cache()
    cache.page("q", lambda: "page1")
    cache.invalidate([12345])
    assert cache.page("q", lambda: "page2") == ("page2", MISS)


def test_while_unusable_every_read_is_a_bypass_and_nothing_is_kept():
    cache = ReadCache(100, 60)
    assert cache.item(1, lambda: "v1") == ("v1", BYPASS)
    cache.set_usable(True)
    assert cache.item(1, lambda: "v2") == ("v2", MISS)
    cache.set_usable(False)
    assert len(cache) == 0
    assert cache.item(1, lambda: "v3") == ("v3", BYPASS)
    cache.set_usable(True)
    assert cache.item(1, lambda: "v4") == ("v4", MISS)  # emptied: nothing from before the gap


def test_a_load_overtaken_by_an_invalidation_is_returned_but_not_kept():
    cache = usable_cache()

    def stale_read() -> str:
        cache.invalidate([7])  # the row changed while this read was in the database
        return "old"

    assert cache.item(7, stale_read) == ("old", MISS)
    assert cache.item(7, lambda: "new") == ("new", MISS)
    assert cache.item(7, lambda: "x") == ("new", HIT)


def test_a_load_overtaken_by_a_flush_or_a_listening_gap_is_not_kept():
    cache = usable_cache()
    cache.item(1, lambda: (cache.flush(), "old")[1])
    assert cache.item(1, lambda: "new")[1] == MISS
    cache.item(2, lambda: (cache.set_usable(False), cache.set_usable(True), "old")[2])
    assert cache.item(2, lambda: "new")[1] == MISS


def test_concurrent_misses_of_one_key_do_one_load():
    cache = usable_cache()
    loads = []

    def load() -> str:
        loads.append(1)
        time.sleep(0.2)
        return "v"

    results = []
    assert run_at_once(lambda: results.append(cache.item(1, load)), 20) == []
    assert len(loads) == 1
    assert sorted(outcome for _, outcome in results) == [MISS] * 20
    assert {value for value, _ in results} == {"v"}


def test_a_miss_after_an_invalidation_does_not_join_a_load_started_before_it():
    cache = usable_cache()
    started, release = threading.Event(), threading.Event()

    def slow_old() -> str:
        started.set()
        release.wait(5)
        return "old"

    first = threading.Thread(target=cache.item, args=(1, slow_old))
    first.start()
    started.wait(5)
    cache.invalidate([1])  # the write commits while the first load is in the database
    assert cache.item(1, lambda: "new") == ("new", MISS)
    release.set()
    first.join(5)
    assert cache.item(1, lambda: "x") == ("new", HIT)


def test_a_failed_load_reaches_every_waiter_and_is_not_kept():
    cache = usable_cache()

    def failing() -> str:
        time.sleep(0.1)
        raise LookupError("gone")

    failures = run_at_once(lambda: cache.item(1, failing), 5)
    assert len(failures) == 5
    assert all(isinstance(f, LookupError) for f in failures)
    assert cache.item(1, lambda: "v") == ("v", MISS)


def test_entries_are_bounded_least_recently_used_first_and_evictions_counted():
    evicted = []
    cache = ReadCache(10, 60, on_evict=lambda: evicted.append(1))
    cache.set_usable(True)
    for key in range(100):
        cache.item(key, lambda: {"id": 1})
    assert len(cache) == 10
    assert len(evicted) == 90
    assert cache.item(99, lambda: None)[1] == HIT
    assert cache.item(0, lambda: {"id": 0})[1] == MISS


def test_entries_expire_after_the_ttl():
    cache = usable_cache(ttl=0.05)
    cache.item(1, lambda: "v1")
    time.sleep(0.1)
    assert cache.item(1, lambda: "v2") == ("v2", MISS)


def test_memory_stays_bounded_with_far_more_ids_than_entries():
    cache = usable_cache(max_entries=1000)
    row = {"id": 0, "name": "Widget", "attributes": {"color": "red"}}
    tracemalloc.start()
    for item_id in range(2000):
        cache.item(item_id, lambda: dict(row))
    filled = tracemalloc.get_traced_memory()[0]
    for item_id in range(2000, 8000):
        cache.item(item_id, lambda: dict(row))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(cache) == 1000
    assert after < filled * 1.2


def sized_cache(max_entries: int, max_bytes: int, max_entry_bytes: int = 0) -> ReadCache:
    """A cache of byte strings whose size is their length."""
    cache = ReadCache(
        max_entries, 60, sizeof=len, max_bytes=max_bytes, max_entry_bytes=max_entry_bytes
    )
    cache.set_usable(True)
    return cache


def test_with_sizes_the_bound_is_in_bytes_least_recently_used_first():
    cache = sized_cache(max_entries=1000, max_bytes=10_000)
    for key in range(10):
        cache.item(key, lambda: b"x" * 3000)
    assert len(cache) == 3  # 9,000 bytes; a fourth would pass 10,000
    assert [cache.item(key, lambda: b"")[1] for key in (9, 8, 7)] == [HIT] * 3
    assert cache.item(6, lambda: b"")[1] == MISS


def test_each_entry_counts_at_least_its_share_so_the_entry_bound_holds_too():
    cache = sized_cache(max_entries=4, max_bytes=10_000)
    for key in range(10):
        cache.item(key, lambda: b"x")
    assert len(cache) == 4


def test_an_entry_over_the_per_entry_cap_is_served_but_not_kept():
    cache = sized_cache(max_entries=100, max_bytes=100_000, max_entry_bytes=5000)
    cache.item(1, lambda: b"small")
    assert cache.item(2, lambda: b"x" * 5001) == (b"x" * 5001, MISS)
    assert cache.item(2, lambda: b"y" * 5001)[1] == MISS
    assert cache.item(1, lambda: b"")[1] == HIT  # and it pushed nothing out
    assert len(cache) == 1


def test_a_list_page_counts_its_full_size_against_a_tenth_of_the_bytes():
    cache = sized_cache(max_entries=100, max_bytes=100_000, max_entry_bytes=50_000)
    assert cache.page("big", lambda: b"x" * 10_001)[1] == MISS
    assert cache.page("big", lambda: b"")[1] == MISS  # over the pages' 10,000 bytes
    cache.page("a", lambda: b"x" * 6000)
    cache.page("b", lambda: b"x" * 6000)
    assert cache.page("b", lambda: b"")[1] == HIT
    assert cache.page("a", lambda: b"")[1] == MISS  # pushed out: both would pass 10,000


def test_priming_stops_at_the_byte_bound_and_skips_entries_over_the_cap():
    cache = sized_cache(max_entries=100, max_bytes=10_000, max_entry_bytes=4000)
    sizes = {1: 3000, 2: 4001, 3: 3000, 4: 3000, 5: 3000, 6: 1}
    assert cache.prime(lambda: [(key, b"x" * size) for key, size in sizes.items()]) == 3
    assert [cache.item(key, lambda: b"")[1] for key in (1, 3, 4)] == [HIT] * 3
    assert [cache.item(key, lambda: b"")[1] for key in (2, 5, 6)] == [MISS] * 3


# --- the write ring ---------------------------------------------------------------------------


def news(ring: WriteRing) -> list[int] | None:
    got = []
    ring.catch_up(got.append)
    return got[0] if got else None


def test_the_ring_tells_another_reader_of_the_same_file_each_id_once(tmp_path):
    writer, reader = WriteRing(tmp_path / "ring"), WriteRing(tmp_path / "ring")
    assert news(reader) is None
    writer.publish([3, 4])
    writer.publish([5])
    assert news(reader) == [3, 4, 5]
    assert news(reader) is None


def test_a_reader_too_far_behind_drops_everything(tmp_path):
    writer, reader = WriteRing(tmp_path / "ring"), WriteRing(tmp_path / "ring")
    writer.publish(range(1, SLOTS + 2))
    assert news(reader) == [FLUSH]


@pytest.mark.parametrize("path", [None, "ring"])
def test_a_ring_starts_with_no_news_of_what_came_before_it(tmp_path, path):
    WriteRing(tmp_path / "ring").publish([1])
    ring = WriteRing(tmp_path / path if path else None)
    assert news(ring) is None


def test_priming_fills_free_room_and_never_keeps_an_item_invalidated_while_loading():
    cache = ReadCache(max_entries=4, ttl=60)
    cache.set_usable(True)
    cache.item(9, lambda: "kept")  # already there: priming leaves it

    def load():
        cache.invalidate([2])  # a change to item 2 lands while the rows are read
        return [
            (1, "one"),
            (2, "two, before the change"),
            (9, "other"),
            (3, "3"),
            (4, "4"),
            (5, "5"),
        ]

    assert cache.prime(load) == 3
    assert len(cache) == 4  # full: item 5 was not stored
    assert cache.item(9, lambda: "loaded") == ("kept", HIT)
    for key in (1, 3, 4):
        assert cache.item(key, lambda: "loaded")[1] == HIT
    assert cache.item(2, lambda: "two") == ("two", MISS)


def test_priming_stores_nothing_across_a_flush_or_while_unusable():
    cache = ReadCache(max_entries=10, ttl=60)
    assert cache.prime(lambda: [(1, "one")]) == 0  # not listening yet
    cache.set_usable(True)

    def load():
        cache.flush()
        return [(1, "one")]

    assert cache.prime(load) == 0
    assert len(cache) == 0
