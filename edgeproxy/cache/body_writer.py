"""
A body being stored: the bookkeeping every store's writer shares.

:class:`BodyWriter` provides :class:`~edgeproxy.cache.store.CacheWriter`: it
counts the bytes against the store's ``max_object_size``, holds the writer's
claim on its key and tags (a purge voids it), and keeps the writer's state
(open, then committed or abandoned, once).  A store's writer adds where the
bytes go: :meth:`BodyWriter._keep` a piece, :meth:`BodyWriter._publish` the
whole body as an entry, :meth:`BodyWriter._drop_partial` what was kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from edgeproxy.cache.store import WriteClaim

if TYPE_CHECKING:
    from edgeproxy.cache.store import IndexedStore
    from edgeproxy.core.caching.stored_response import StoredResponse

StoreT = TypeVar("StoreT", bound="IndexedStore[Any]")


class BodyWriter(Generic[StoreT]):
    """
    One body on its way into ``store``, for ``response`` under ``key``.

    Nothing is visible until :meth:`commit`; a body that passes
    ``max_object_size``, or that the subclass cannot keep, abandons the
    writer at once.
    """

    def __init__(
        self, store: StoreT, key: bytes, response: StoredResponse, claim: WriteClaim
    ) -> None:
        self._store = store
        self._key = key
        self._response = response
        self._claim = claim
        self._size = 0
        self._open = True

    def write(self, data: bytes) -> bool:
        """Append ``data``; ``False`` once abandoned (too large, or not kept)."""
        if not self._open:
            return False
        self._size += len(data)
        if self._size > self._store.max_object_size or not self._keep(data):
            self.abandon()
            return False
        return True

    def commit(self) -> bool:
        """Publish the entry; whether it was stored (see ``CacheWriter``)."""
        if not self._open:
            return False
        if not self._claim.valid:
            # A purge of the key or a tag came while the body was written.
            self.abandon()
            return False
        self._open = False
        self._store._release(self._claim)
        return self._publish()

    def abandon(self) -> None:
        """Drop the partial body (safe to repeat)."""
        if self._open:
            self._open = False
            self._store._release(self._claim)
        self._drop_partial()

    def _keep(self, data: bytes) -> bool:
        """Keep one piece of the body; ``False`` when it cannot be kept."""
        raise NotImplementedError

    def _publish(self) -> bool:
        """Make the whole body an entry of the store; whether it was stored."""
        raise NotImplementedError

    def _drop_partial(self) -> None:
        """Free what :meth:`_keep` kept (called again after a commit: a no-op)."""
        raise NotImplementedError
