"""
Where cached responses live: the store contract, and the index every store keeps.

A store keeps *entries*: the metadata of one stored response
(:class:`~edgeproxy.core.caching.stored_response.StoredResponse`), its purge
tags and its body.  Entries are found by primary key (the URL,
:func:`~edgeproxy.core.caching.keys.primary_key`) and variant (the secondary
key); several variants of a URL live side by side.  A body is written in
pieces through an :class:`CacheWriter` and becomes visible only when
committed whole; it is read back in pieces through an :class:`CacheReader`,
one :meth:`~CacheReader.read` at a time, so the glue reads only as fast as
the client takes it.

:class:`IndexedStore` is the bookkeeping both stores share: LRU order, the
byte bound, variants by URL, entries by tag, counters, and the claims of
writers in flight (a purge while a body is being written voids that write, so
a purged response never comes back from a fetch that started before it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    NamedTuple,
    Protocol,
    TypeVar,
    runtime_checkable,
)

if TYPE_CHECKING:
    from edgeproxy.cache.body_writer import BodyWriter
    from edgeproxy.core.caching.stored_response import StoredResponse

CHUNK_SIZE = 65536
"""The largest piece a reader returns, and the unit memory bodies are kept in."""

Payload = TypeVar("Payload")


class CacheStats(NamedTuple):
    """A store's counters at one moment."""

    hits: int
    misses: int
    entries: int
    stored_bytes: int
    evictions: int


@runtime_checkable
class CacheReader(Protocol):
    """One stored body, read in order, one piece per call."""

    size: int
    """The body's length in bytes."""

    def read(self) -> bytes:
        """
        The next piece of the body (at most :data:`CHUNK_SIZE` bytes).

        Returns ``b""`` once the whole body was returned.  Raises ``OSError``
        when the stored body cannot be read in full (a disk file that went
        away or was truncated): the response cannot be completed, so abort it.
        """

    def close(self) -> None:
        """Release the body (done by itself at the end; safe to repeat)."""


@runtime_checkable
class CacheWriter(Protocol):
    """A body being stored; nothing is visible until :meth:`commit`."""

    def write(self, data: bytes) -> bool:
        """
        Append ``data`` to the body.

        Returns ``False`` once the writer is abandoned (the body passed the
        store's ``max_object_size``, or could not be written): stop feeding
        it, it already cleaned up.
        """

    def commit(self) -> bool:
        """
        Publish the entry, replacing the one with the same key and variant.

        Call only when the whole body was received.  Returns whether it was
        stored: ``False`` when abandoned, when a purge of its key or tags
        happened while it was written, or when it is larger than the store.
        """

    def abandon(self) -> None:
        """Drop the partial body (on any upstream failure; safe to repeat)."""


@runtime_checkable
class CacheStore(Protocol):
    """
    Stored responses by primary key and variant, bounded in bytes (LRU).

    No method blocks for long or raises on a corrupt or missing entry: such
    an entry is dropped and reads as absent.
    """

    max_size: int
    """The bound on stored bytes."""
    max_object_size: int
    """The largest body a writer accepts."""

    def variants(self, key: bytes) -> list[StoredResponse]:
        """The metadata of every variant stored under ``key`` (any order)."""

    def open_reader(self, key: bytes, variant: bytes) -> CacheReader | None:
        """The body of one entry, or ``None`` when it is not (or no longer) there."""

    def open_writer(
        self,
        key: bytes,
        response: StoredResponse,
        tags: Iterable[bytes] = (),
        expected_size: int | None = None,
    ) -> CacheWriter | None:
        """
        Start storing a body for ``response`` under ``key`` and its variant.

        ``None`` when ``expected_size`` (a ``Content-Length``) already passes
        ``max_object_size``.
        """

    def update(self, key: bytes, variant: bytes, response: StoredResponse) -> bool:
        """
        Replace the metadata of an entry (after a 304), keeping its body.

        ``response.variant`` may differ from ``variant``: the entry moves (and
        replaces any entry already there).  Returns ``False`` when the entry
        is gone.
        """

    def remove(self, key: bytes) -> int:
        """Drop every variant of ``key`` (invalidation, purge by URL); how many."""

    def remove_variant(self, key: bytes, variant: bytes) -> bool:
        """Drop one entry; whether it was there."""

    def purge_tag(self, tag: bytes) -> int:
        """Drop every entry recorded with ``tag``; how many."""

    def record_hit(self, key: bytes, variant: bytes) -> None:
        """Count a response served from the entry and mark it recently used."""

    def record_miss(self) -> None:
        """Count a cacheable request the store could not answer."""

    def stats(self) -> CacheStats:
        """The counters now."""


@dataclass(slots=True)
class StoreEntry(Generic[Payload]):
    """
    One entry as a store indexes it.

    :ivar cost: the bytes it counts against ``max_size``.
    :ivar payload: where the body is (memory chunks, a file name).
    """

    key: bytes
    response: StoredResponse
    tags: frozenset[bytes]
    body_size: int
    cost: int
    payload: Payload

    @property
    def ident(self) -> tuple[bytes, bytes]:
        """The entry's place: primary key and variant."""
        return self.key, self.response.variant

    def with_response(self, response: StoredResponse, cost: int) -> StoreEntry[Payload]:
        """This entry's body and tags with other metadata, costing ``cost``."""
        return StoreEntry(
            self.key, response, self.tags, self.body_size, cost, self.payload
        )


class WriteClaim:
    """An open writer's claim on its key and tags; a purge of either voids it."""

    __slots__ = ("key", "tags", "valid")

    def __init__(self, key: bytes, tags: frozenset[bytes]) -> None:
        self.key = key
        self.tags = tags
        self.valid = True


def metadata_cost(key: bytes, response: StoredResponse) -> int:
    """An estimate of the memory an entry's metadata takes, in bytes."""
    fields = sum(len(name) + len(value) + 64 for name, value in response.headers.pairs)
    return 512 + len(key) + len(response.variant) + fields


class IndexedStore(Generic[Payload]):
    """
    The bookkeeping of a store: subclasses add how bodies are kept.

    A subclass sets :attr:`writer_type` and implements :meth:`open_reader`,
    :meth:`_rewrite` (new metadata for an entry) and :meth:`_discard` (an
    entry left the index: free its body).
    """

    writer_type: ClassVar[type[BodyWriter[Any]]]
    """The class of the store's writers, made with the store, the key, the
    response and the writer's claim."""

    def __init__(self, max_size: int, max_object_size: int) -> None:
        self.max_size = max_size
        self.max_object_size = min(max_object_size, max_size)
        # Least recently used first.
        self._entries: OrderedDict[tuple[bytes, bytes], StoreEntry[Payload]] = (
            OrderedDict()
        )
        self._variants: dict[bytes, set[bytes]] = {}
        self._tagged: dict[bytes, set[tuple[bytes, bytes]]] = {}
        self._claims: set[WriteClaim] = set()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def _discard(self, entry: StoreEntry[Payload], replaced: bool) -> None:
        """
        Free what ``entry`` holds; it left the index.

        ``replaced``: another entry now holds its key and variant (so files
        named after them belong to the newcomer).
        """
        raise NotImplementedError

    def _rewrite(
        self, entry: StoreEntry[Payload], response: StoredResponse
    ) -> StoreEntry[Payload] | None:
        """``entry`` with new metadata, persisted; ``None`` when that failed."""
        raise NotImplementedError

    # --- the bookkeeping subclasses call ----------------------------------

    def _claim(self, key: bytes, tags: frozenset[bytes]) -> WriteClaim:
        """Register a writer in flight."""
        claim = WriteClaim(key, tags)
        self._claims.add(claim)
        return claim

    def _release(self, claim: WriteClaim) -> None:
        """Forget a writer (committed or abandoned)."""
        self._claims.discard(claim)

    def _find(self, key: bytes, variant: bytes) -> StoreEntry[Payload] | None:
        """The entry at ``key`` and ``variant``, or ``None``."""
        return self._entries.get((key, variant))

    def _insert(self, entry: StoreEntry[Payload]) -> bool:
        """
        Index ``entry``, replacing the one at its place, then evict to the bound.

        An entry costing more than ``max_size`` is discarded instead (and the
        one it replaces is dropped all the same).
        """
        # The newcomer supersedes the entry at its place even when too large
        # to keep: the older response is outdated either way.
        previous = self._unindex(entry.ident)
        if previous is not None:
            self._discard(previous, replaced=True)
        if entry.cost > self.max_size:
            self._discard(entry, replaced=False)
            return False
        self._entries[entry.ident] = entry
        self._variants.setdefault(entry.key, set()).add(entry.response.variant)
        for tag in entry.tags:
            self._tagged.setdefault(tag, set()).add(entry.ident)
        self._bytes += entry.cost
        while self._bytes > self.max_size:
            oldest = self._unindex(next(iter(self._entries)))
            if oldest is not None:
                self._evictions += 1
                self._discard(oldest, replaced=False)
        return True

    def _unindex(self, ident: tuple[bytes, bytes]) -> StoreEntry[Payload] | None:
        """Take the entry at ``ident`` out of every map; return it."""
        entry = self._entries.pop(ident, None)
        if entry is None:
            return None
        key, variant = ident
        variants = self._variants[key]
        variants.discard(variant)
        if not variants:
            del self._variants[key]
        for tag in entry.tags:
            tagged = self._tagged[tag]
            tagged.discard(ident)
            if not tagged:
                del self._tagged[tag]
        self._bytes -= entry.cost
        return entry

    def _drop(self, ident: tuple[bytes, bytes]) -> bool:
        """Remove and discard the entry at ``ident``."""
        entry = self._unindex(ident)
        if entry is None:
            return False
        self._discard(entry, replaced=False)
        return True

    # --- CacheStore ------------------------------------------------------

    def variants(self, key: bytes) -> list[StoredResponse]:
        """The metadata of every variant stored under ``key``."""
        return [
            self._entries[key, variant].response
            for variant in self._variants.get(key, ())
        ]

    def open_writer(
        self,
        key: bytes,
        response: StoredResponse,
        tags: Iterable[bytes] = (),
        expected_size: int | None = None,
    ) -> CacheWriter | None:
        """Start storing a body; ``None`` when ``expected_size`` is too large."""
        if expected_size is not None and expected_size > self.max_object_size:
            return None
        claim = self._claim(key, frozenset(tags))
        return self.writer_type(self, key, response, claim)

    def update(self, key: bytes, variant: bytes, response: StoredResponse) -> bool:
        """Replace an entry's metadata, keeping its body; see :class:`CacheStore`."""
        entry = self._find(key, variant)
        if entry is None:
            return False
        self._unindex(entry.ident)
        rewritten = self._rewrite(entry, response)
        if rewritten is None:
            self._discard(entry, replaced=False)
            return False
        return self._insert(rewritten)

    def remove(self, key: bytes) -> int:
        """Drop every variant of ``key`` and void the writers filling it."""
        for claim in self._claims:
            if claim.key == key:
                claim.valid = False
        variants = list(self._variants.get(key, ()))
        for variant in variants:
            self._drop((key, variant))
        return len(variants)

    def remove_variant(self, key: bytes, variant: bytes) -> bool:
        """Drop one entry."""
        return self._drop((key, variant))

    def purge_tag(self, tag: bytes) -> int:
        """Drop every entry with ``tag`` and void the writers that would add one."""
        for claim in self._claims:
            if tag in claim.tags:
                claim.valid = False
        idents = list(self._tagged.get(tag, ()))
        for ident in idents:
            self._drop(ident)
        return len(idents)

    def record_hit(self, key: bytes, variant: bytes) -> None:
        """Count a hit and mark the entry recently used."""
        self._hits += 1
        if (key, variant) in self._entries:
            self._entries.move_to_end((key, variant))

    def record_miss(self) -> None:
        """Count a miss."""
        self._misses += 1

    def stats(self) -> CacheStats:
        """The counters now."""
        return CacheStats(
            self._hits, self._misses, len(self._entries), self._bytes, self._evictions
        )
