"""
A cache store in process memory, bounded in bytes, least recently used out first.

Bodies are kept as tuples of pieces of at most
:data:`~edgeproxy.cache.store.CHUNK_SIZE` bytes.  A reader keeps its entry's
pieces, so an entry evicted or replaced while it is being sent is still sent
whole (its memory is freed when the last reader is done).  Bodies being
written are not counted against ``max_size``: each is bounded by
``max_object_size`` instead.
"""

from __future__ import annotations

from edgeproxy.cache.body_writer import BodyWriter
from edgeproxy.cache.store import (
    CHUNK_SIZE,
    IndexedStore,
    StoreEntry,
    WriteClaim,
    metadata_cost,
)
from edgeproxy.core.caching.stored_response import StoredResponse

Body = tuple[bytes, ...]


class MemoryReader:
    """The pieces of one stored body, in order."""

    def __init__(self, pieces: Body, size: int) -> None:
        self.size = size
        self._pieces = pieces
        self._next = 0

    def read(self) -> bytes:
        """The next piece, or ``b""`` at the end."""
        if self._next >= len(self._pieces):
            return b""
        piece = self._pieces[self._next]
        self._next += 1
        return piece

    def close(self) -> None:
        """Let go of the body."""
        self._pieces = ()


class MemoryWriter(BodyWriter["MemoryCacheStore"]):
    """A body collected in memory until it is committed."""

    def __init__(
        self,
        store: MemoryCacheStore,
        key: bytes,
        response: StoredResponse,
        claim: WriteClaim,
    ) -> None:
        super().__init__(store, key, response, claim)
        self._pieces: list[bytes] = []
        self._pending = bytearray()

    def _keep(self, data: bytes) -> bool:
        """Append ``data`` in pieces of ``CHUNK_SIZE``."""
        self._pending += data
        # Pieces of CHUNK_SIZE: few objects for a large body, small reads.
        while len(self._pending) >= CHUNK_SIZE:
            self._pieces.append(bytes(self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]
        return True

    def _publish(self) -> bool:
        """Index the pieces as an entry."""
        if self._pending:
            self._pieces.append(bytes(self._pending))
        cost = self._size + metadata_cost(self._key, self._response)
        entry = StoreEntry(
            self._key,
            self._response,
            self._claim.tags,
            self._size,
            cost,
            tuple(self._pieces),
        )
        self._drop_partial()
        return self._store._insert(entry)

    def _drop_partial(self) -> None:
        """Let go of the pieces."""
        self._pieces = []
        self._pending = bytearray()


class MemoryCacheStore(IndexedStore[Body]):
    """
    Stored responses in memory, at most ``max_size`` bytes (bodies and metadata).

    :param max_size: the bound on stored bytes.
    :param max_object_size: the largest body stored.
    """

    writer_type = MemoryWriter

    def open_reader(self, key: bytes, variant: bytes) -> MemoryReader | None:
        """The body of one entry, or ``None``."""
        entry = self._find(key, variant)
        if entry is None:
            return None
        return MemoryReader(entry.payload, entry.body_size)

    def _rewrite(
        self, entry: StoreEntry[Body], response: StoredResponse
    ) -> StoreEntry[Body]:
        """``entry`` with new metadata (nothing to persist)."""
        return entry.with_response(
            response, entry.body_size + metadata_cost(entry.key, response)
        )

    def _discard(self, entry: StoreEntry[Body], replaced: bool) -> None:
        """Nothing to free: the body goes when its last reader does."""
