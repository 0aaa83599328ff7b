"""
The ``Cache-Status`` response field (RFC 9211): what the cache did, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeproxy.core.cache_control import is_token


@dataclass(frozen=True)
class CacheStatus:
    """
    One ``Cache-Status`` member (RFC 9211), for one outcome.

    :ivar hit: answered from the cache without going forward.
    :ivar fwd: why the request went forward: ``"uri-miss"``, ``"vary-miss"``,
        ``"miss"``, ``"stale"``, ``"request"``, ``"method"``, ``"bypass"``.
    :ivar fwd_status: the status the forward got.
    :ivar stored: the forward's response was stored (or freshened one).
    :ivar collapsed: the request waited on another request's forward.
    :ivar ttl: the remaining freshness, in seconds (negative when stale).
    :ivar detail: an implementation note (``"stale-while-revalidate"``...).
    """

    hit: bool = False
    fwd: str | None = None
    fwd_status: int | None = None
    stored: bool = False
    collapsed: bool = False
    ttl: int | None = None
    detail: str | None = None

    def forwarded(
        self, fwd_status: int, *, stored: bool = False, ttl: int | None = None
    ) -> CacheStatus:
        """This status once the forward answered ``fwd_status``."""
        return replace(self, fwd_status=fwd_status, stored=stored, ttl=ttl)

    def field_value(self, cache_name: bytes = b"edgeproxy") -> bytes:
        """The member as RFC 9211 writes it: ``edgeproxy; fwd=miss; stored``."""
        parts = [cache_name if is_token(cache_name) else _sf_string(cache_name)]
        if self.hit:
            parts.append(b"hit")
        if self.fwd is not None:
            parts.append(b"fwd=" + self.fwd.encode("ascii"))
        if self.fwd_status is not None:
            parts.append(b"fwd-status=%d" % self.fwd_status)
        if self.stored:
            parts.append(b"stored")
        if self.collapsed:
            parts.append(b"collapsed")
        if self.ttl is not None:
            parts.append(b"ttl=%d" % self.ttl)
        if self.detail is not None:
            detail = self.detail.encode("ascii")
            parts.append(
                b"detail=" + (detail if is_token(detail) else _sf_string(detail))
            )
        return b"; ".join(parts)


def _sf_string(value: bytes) -> bytes:
    """A Structured Field string (RFC 8941 section 3.3.3)."""
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
