"""
Tests for edgeproxy.cache.memory, and the CacheStore contract of both stores.

The contract tests run against the memory store and the disk store alike
(``store_kind``): they pin down the behaviour edgeproxy.cache.store promises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from edgeproxy.cache.disk import DiskCacheStore
from edgeproxy.cache.memory import MemoryCacheStore
from edgeproxy.cache.store import (
    CHUNK_SIZE,
    CacheReader,
    CacheStore,
    CacheWriter,
    metadata_cost,
)
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.message import Headers

StoreFactory = Callable[..., CacheStore]
KEY = b"http://app.example/a"
OTHER = b"http://app.example/b"


def response(
    variant: bytes = b"", time: float = 1000.0, etag: bytes = b'"1"'
) -> StoredResponse:
    """Stored metadata for a small 200."""
    headers = Headers([(b"Cache-Control", b"max-age=60"), (b"ETag", etag)])
    return StoredResponse(200, b"OK", headers, time - 1, time, variant)


def put(
    store: CacheStore,
    key: bytes = KEY,
    body: bytes = b"hello",
    variant: bytes = b"",
    tags: Iterable[bytes] = (),
    piece: int = 1000,
) -> bool:
    """Store ``body`` written in pieces of ``piece`` bytes; whether it was stored."""
    writer = store.open_writer(key, response(variant), tags)
    assert writer is not None
    for start in range(0, len(body), piece):
        assert writer.write(body[start : start + piece])
    return writer.commit()


def read(store: CacheStore, key: bytes = KEY, variant: bytes = b"") -> bytes | None:
    """The whole stored body, checking the piece sizes; ``None`` when absent."""
    reader = store.open_reader(key, variant)
    if reader is None:
        return None
    pieces = []
    while piece := reader.read():
        assert len(piece) <= CHUNK_SIZE
        pieces.append(piece)
    assert reader.read() == b"", "the end stays the end"
    body = b"".join(pieces)
    assert len(body) == reader.size
    reader.close()
    return body


@pytest.fixture(params=["memory", "disk"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes empty stores of one kind: ``make_store(max_size, max_object_size)``."""

    def make(max_size: int = 10**7, max_object_size: int = 10**6) -> CacheStore:
        if request.param == "memory":
            return MemoryCacheStore(max_size, max_object_size)
        return DiskCacheStore(tmp_path / "cache", max_size, max_object_size)

    return make


def test_provides_the_protocols(make_store: StoreFactory) -> None:
    """Both stores, their readers and writers provide the store contract."""
    store = make_store()
    writer = store.open_writer(KEY, response())
    assert isinstance(store, CacheStore)
    assert isinstance(writer, CacheWriter)
    assert writer.commit()
    reader = store.open_reader(KEY, b"")
    assert isinstance(reader, CacheReader)
    reader.close()


@pytest.mark.parametrize(
    ("size", "piece"),
    [(0, 1), (5, 1), (150_000, 1000), (150_000, 100_000), (CHUNK_SIZE, CHUNK_SIZE)],
)
def test_body_round_trip(make_store: StoreFactory, size: int, piece: int) -> None:
    """A body written in pieces reads back whole, in order, in bounded pieces."""
    store = make_store()
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert put(store, body=body, piece=piece)
    assert read(store) == body
    assert store.variants(KEY) == [response()]


def test_nothing_visible_before_commit(make_store: StoreFactory) -> None:
    """A partially written entry is never served."""
    store = make_store()
    writer = store.open_writer(KEY, response())
    assert writer is not None
    assert writer.write(b"partial")
    assert store.variants(KEY) == []
    assert store.open_reader(KEY, b"") is None
    assert writer.commit()
    assert read(store) == b"partial"


def test_abandoned_writer(make_store: StoreFactory) -> None:
    """An abandoned body is dropped, and its writer refuses more."""
    store = make_store()
    assert put(store, body=b"old")
    writer = store.open_writer(KEY, response())
    assert writer is not None
    assert writer.write(b"new")
    writer.abandon()
    writer.abandon()
    assert not writer.write(b"more")
    assert not writer.commit()
    assert read(store) == b"old", "the stored entry is untouched"


def test_max_object_size(make_store: StoreFactory) -> None:
    """A writer past max_object_size abandons; a declared size is refused at once."""
    store = make_store(max_object_size=100)
    assert store.open_writer(KEY, response(), expected_size=101) is None
    assert put(store, body=b"x" * 100, piece=60)
    writer = store.open_writer(OTHER, response(), expected_size=None)
    assert writer is not None
    assert writer.write(b"x" * 60)
    assert not writer.write(b"x" * 41)
    assert not writer.commit()
    assert store.variants(OTHER) == []


def test_max_object_size_within_max_size(make_store: StoreFactory) -> None:
    """No object may be larger than the whole store."""
    assert make_store(max_size=1000, max_object_size=5000).max_object_size == 1000


def test_too_large_to_keep(make_store: StoreFactory) -> None:
    """A response too large for the store is not kept, and still supersedes the old."""
    store = make_store(max_size=1000, max_object_size=1000)
    assert put(store, body=b"small")
    assert not put(store, body=b"x" * 1000)
    assert store.variants(KEY) == []
    assert store.stats()[2:4] == (0, 0)


def test_variants_side_by_side(make_store: StoreFactory) -> None:
    """Variants of a URL coexist; storing one again replaces only it."""
    store = make_store()
    assert put(store, body=b"gzip", variant=b"ae=gzip")
    assert put(store, body=b"plain", variant=b"ae=")
    assert put(store, body=b"gzip2", variant=b"ae=gzip")
    variants = sorted(r.variant for r in store.variants(KEY))
    assert variants == [b"ae=", b"ae=gzip"]
    assert read(store, variant=b"ae=gzip") == b"gzip2"
    assert read(store, variant=b"ae=") == b"plain"
    assert store.stats().entries == 2


def test_lru_eviction(make_store: StoreFactory) -> None:
    """Past max_size the least recently used entry goes first."""
    probe = make_store()
    assert put(probe, body=b"x" * 1000)
    cost = probe.stats().stored_bytes
    store = make_store(max_size=2 * cost + 10, max_object_size=5000)
    assert put(store, KEY, b"a" * 1000)
    assert put(store, OTHER, b"b" * 1000)
    store.record_hit(KEY, b"")
    assert put(store, b"http://app.example/c", b"c" * 1000)
    assert read(store, KEY) == b"a" * 1000
    assert read(store, OTHER) is None
    stats = store.stats()
    assert (stats.entries, stats.evictions) == (2, 1)
    assert stats.stored_bytes <= store.max_size


def test_reader_outlives_eviction(make_store: StoreFactory) -> None:
    """A body being read is read whole even if its entry goes meanwhile."""
    store = make_store()
    body = b"z" * (3 * CHUNK_SIZE)
    assert put(store, body=body, piece=CHUNK_SIZE)
    reader = store.open_reader(KEY, b"")
    assert reader is not None
    first = reader.read()
    assert put(store, body=b"replacement")
    assert store.remove(KEY) == 1
    rest = b"".join(iter(reader.read, b""))
    assert first + rest == body


def test_remove(make_store: StoreFactory) -> None:
    """Purge by URL drops every variant of it and nothing else."""
    store = make_store()
    assert put(store, variant=b"1")
    assert put(store, variant=b"2")
    assert put(store, OTHER)
    assert store.remove(KEY) == 2
    assert store.remove(KEY) == 0
    assert store.variants(KEY) == []
    assert read(store, OTHER) == b"hello"
    assert store.remove_variant(OTHER, b"")
    assert not store.remove_variant(OTHER, b"")
    assert store.stats()[2:4] == (0, 0)


def test_purge_tag(make_store: StoreFactory) -> None:
    """Purge by tag drops every entry recorded with it, whatever its URL."""
    store = make_store()
    assert put(store, KEY, tags=[b"product-1", b"all"])
    assert put(store, OTHER, tags=[b"product-2", b"all"])
    assert put(store, OTHER, variant=b"v", tags=[b"product-2"])
    assert store.purge_tag(b"product-2") == 2
    assert store.variants(OTHER) == []
    assert store.purge_tag(b"product-2") == 0
    assert store.purge_tag(b"all") == 1
    assert store.stats().entries == 0


@pytest.mark.parametrize(
    ("purge", "stored"),
    [
        pytest.param(lambda s: s.remove(KEY), False, id="its URL purged"),
        pytest.param(lambda s: s.purge_tag(b"t"), False, id="its tag purged"),
        pytest.param(lambda s: s.remove(OTHER), True, id="another URL purged"),
        pytest.param(lambda s: s.purge_tag(b"u"), True, id="another tag purged"),
    ],
)
def test_purge_voids_writes_in_flight(
    make_store: StoreFactory, purge: Callable[[CacheStore], object], stored: bool
) -> None:
    """A response fetched before a purge of its URL or tag is not stored after it."""
    store = make_store()
    writer = store.open_writer(KEY, response(), tags=[b"t"])
    assert writer is not None
    assert writer.write(b"old content")
    purge(store)
    assert writer.commit() is stored
    assert (read(store) is not None) is stored


def test_update(make_store: StoreFactory) -> None:
    """A 304's metadata replaces an entry's; the body stays; a missing entry is said."""
    store = make_store()
    assert put(store, body=b"body", variant=b"v1")
    fresher = response(b"v1", time=2000.0, etag=b'"2"')
    assert store.update(KEY, b"v1", fresher)
    assert store.variants(KEY) == [fresher]
    assert read(store, variant=b"v1") == b"body"
    assert not store.update(OTHER, b"v1", fresher)


def test_update_moves_variant(make_store: StoreFactory) -> None:
    """An update with a new variant moves the entry, replacing one already there."""
    store = make_store()
    assert put(store, body=b"first", variant=b"v1")
    assert put(store, body=b"second", variant=b"v2")
    assert store.update(KEY, b"v1", response(b"v2", time=2000.0))
    assert [r.variant for r in store.variants(KEY)] == [b"v2"]
    assert read(store, variant=b"v2") == b"first"
    assert store.stats().entries == 1


def test_counters(make_store: StoreFactory) -> None:
    """Hits, misses, entries and bytes are counted as the glue reports them."""
    store = make_store()
    assert put(store, body=b"x" * 100)
    store.record_hit(KEY, b"")
    store.record_hit(KEY, b"gone")
    store.record_miss()
    stats = store.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.evictions) == (2, 1, 1, 0)
    assert stats.stored_bytes > 100


def test_memory_cost() -> None:
    """The memory store counts bodies and an estimate of their metadata."""
    store = MemoryCacheStore(10**6, 10**5)
    assert put(store, body=b"x" * 1000)
    assert store.stats().stored_bytes == 1000 + metadata_cost(KEY, response())
    assert metadata_cost(KEY, response()) > len(KEY) + 40
