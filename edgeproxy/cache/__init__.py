"""
The stores of edgeproxy's shared HTTP cache.

The policy (what may be stored, for how long, which stored response answers a
request) is sans-IO and lives in :mod:`edgeproxy.core.caching`; this
package keeps the bytes: :class:`MemoryCacheStore` in process memory,
:class:`DiskCacheStore` in a directory that survives restarts, both providing
:class:`CacheStore`.
"""

from __future__ import annotations

from edgeproxy.cache.disk import DiskCacheStore
from edgeproxy.cache.memory import MemoryCacheStore
from edgeproxy.cache.store import (
    CHUNK_SIZE,
    CacheReader,
    CacheStats,
    CacheStore,
    CacheWriter,
)

__all__ = [
    "CHUNK_SIZE",
    "CacheReader",
    "CacheStats",
    "CacheStore",
    "CacheWriter",
    "DiskCacheStore",
    "MemoryCacheStore",
]
