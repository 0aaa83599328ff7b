"""
What a ``[cache:NAME]`` is at run time, and what a reload carries over.

A :class:`SharedCache` holds the store, the policy's settings, the counters
and the requests in flight (one fetch per URL, waiters behind it; one
background revalidation per URL).  :func:`purge_answer` answers ``PURGE``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from edgeproxy.cache.store import CacheStore
from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.caching.keys import primary_key
from edgeproxy.core.caching.settings import CacheSettings
from edgeproxy.core.message import Headers, LocalResponse


@dataclasses.dataclass
class CacheCounters:
    """
    What a cache did, beyond the store's own hits and misses.

    :ivar stale_served: stale answers (stale-while-revalidate, stale-if-error).
    :ivar revalidated_304: revalidations the origin answered 304.
    :ivar revalidated_200: revalidations the origin answered with a new 200.
    :ivar coalesced_waits: requests that waited for another's fetch.
    """

    stale_served: int = 0
    revalidated_304: int = 0
    revalidated_200: int = 0
    coalesced_waits: int = 0


class SharedCache:
    """
    One ``[cache:NAME]`` at run time: store, policy, counters, requests in flight.

    :ivar purge_from: the clients that may send ``PURGE``.
    """

    def __init__(
        self,
        name: str,
        store: CacheStore,
        settings: CacheSettings,
        purge_from: AddressSet,
    ) -> None:
        self.name = name
        self.store = store
        self.settings = settings
        self.purge_from = purge_from
        self.counters = CacheCounters()
        self._flights: dict[bytes, list[Callable[[], None]]] = {}
        self._revalidating: set[bytes] = set()

    def stats(self) -> dict[str, int]:
        """The counters, as the status page shows them."""
        store = self.store.stats()
        return {
            "hits": store.hits,
            "misses": store.misses,
            "entries": store.entries,
            "stored_bytes": store.stored_bytes,
            "evictions": store.evictions,
            "max_size": self.store.max_size,
            **dataclasses.asdict(self.counters),
        }

    def purge_url(self, url: str) -> int:
        """Drop every variant stored for ``url`` (absolute); how many."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = primary_key(
            parts.scheme.encode("ascii"),
            parts.netloc.encode("latin-1"),
            target.encode("latin-1"),
        )
        return self.store.remove(key)

    # --- single flight, and one background revalidation per key --------------

    def join(self, key: bytes, waiter: Callable[[], None]) -> bool:
        """Wait for the request in flight for ``key``, if there is one."""
        waiters = self._flights.get(key)
        if waiters is None:
            return False
        waiters.append(waiter)
        self.counters.coalesced_waits += 1
        return True

    def leave(self, key: bytes, waiter: Callable[[], None]) -> None:
        """Stop waiting (the client left, or waited long enough)."""
        waiters = self._flights.get(key, [])
        if waiter in waiters:
            waiters.remove(waiter)

    def lead(self, key: bytes) -> bool:
        """A request goes forward for ``key``; ``False`` when one is already."""
        if key in self._flights:
            return False
        self._flights[key] = []
        return True

    def land(self, key: bytes) -> None:
        """The request in flight for ``key`` is over: its waiters look again."""
        for waiter in self._flights.pop(key, []):
            waiter()

    def start_revalidation(self, key: bytes) -> bool:
        """Whether a background revalidation of ``key`` may start (none running)."""
        if key in self._revalidating:
            return False
        self._revalidating.add(key)
        return True

    def end_revalidation(self, key: bytes) -> None:
        """The background revalidation of ``key`` is over."""
        self._revalidating.discard(key)


def purge_answer(
    cache: SharedCache | None,
    client_host: str,
    scheme: bytes,
    host: bytes,
    target: bytes,
) -> LocalResponse:
    """The answer to ``PURGE``: 405 without a cache, 403 from elsewhere, or 200."""
    if cache is None:
        answer = LocalResponse.text(405, "Method Not Allowed: this route has no cache")
        answer.headers.add(b"Allow", b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
        return answer
    if not cache.purge_from.contains(client_host):
        return LocalResponse.text(403, "Forbidden: PURGE is not allowed from here")
    purged = cache.store.remove(primary_key(scheme, host, target))
    body = json.dumps({"purged": purged}).encode("ascii") + b"\n"
    return LocalResponse(200, body, Headers([(b"Content-Type", b"application/json")]))
