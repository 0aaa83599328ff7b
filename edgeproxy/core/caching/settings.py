"""
The configurable parts of the cache policy: what a ``[cache:NAME]`` section sets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CacheSettings:
    """
    The configurable parts of the policy.

    :ivar heuristic_fraction: share of ``Date - Last-Modified`` taken as the
        heuristic freshness lifetime (RFC 9111 section 4.2.2).
    :ivar heuristic_max: cap on a heuristic lifetime, in seconds.
    :ivar default_ttl: lifetime of a heuristically cacheable response with
        neither explicit freshness nor ``Last-Modified``.
    :ivar stale_if_error: seconds a stale response may stand in for a failed
        origin even when the origin did not say ``stale-if-error`` (never
        beyond ``must-revalidate`` and its kin).
    :ivar key_header: a request field that separates cached responses.
    :ivar key_cookie: a cookie whose value separates cached responses.
    :ivar honour_pragma: read ``Pragma: no-cache`` as a request for
        revalidation when the request has no ``Cache-Control``.
    """

    heuristic_fraction: float = 0.1
    heuristic_max: float = 86400.0
    default_ttl: float = 0.0
    stale_if_error: float = 0.0
    key_header: bytes | None = None
    key_cookie: bytes | None = None
    honour_pragma: bool = True


DEFAULT_SETTINGS = CacheSettings()
"""The settings of a ``[cache:NAME]`` section that sets none of its keys."""
