"""
How long a stored response stays fresh, and how old it is (RFC 9111 4.2).
"""

from __future__ import annotations

import math

from edgeproxy.core.cache_control import DELTA_SECONDS_MAX, INVALID, CacheControl
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.stored_response import (
    StoredResponse,
    date_value,
    single_date,
)

HEURISTICALLY_CACHEABLE = frozenset(
    {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}
)
"""RFC 9110 section 15.1's heuristically cacheable statuses, less 206 (never stored)."""


def freshness_lifetime(
    stored: StoredResponse, settings: CacheSettings = DEFAULT_SETTINGS
) -> float:
    """
    Seconds the response stays fresh (RFC 9111 sections 4.2.1 and 4.2.2).

    ``s-maxage``, then ``max-age``, then ``Expires - Date``; invalid or
    conflicting values give 0 (stale).  Otherwise, for a heuristically
    cacheable status or a ``public`` response: 10% (configurable) of
    ``Date - Last-Modified``, capped; without ``Last-Modified``, the
    configured ``default_ttl``.
    """
    directives = stored.cache_control
    for name in ("s-maxage", "max-age"):
        seconds = directives.seconds(name)
        if seconds is not None:
            return max(seconds, 0)
    if b"expires" in stored.headers:
        expires = single_date(stored.headers, b"expires")
        return 0 if expires is None else max(0.0, expires - date_value(stored))
    if stored.status not in HEURISTICALLY_CACHEABLE and "public" not in directives:
        return 0
    last_modified = single_date(stored.headers, b"last-modified")
    if last_modified is None:
        return settings.default_ttl
    interval = max(0.0, date_value(stored) - last_modified)
    return min(interval * settings.heuristic_fraction, settings.heuristic_max)


def current_age(stored: StoredResponse, now: float) -> float:
    """The response's age at ``now`` (RFC 9111 section 4.2.3), never negative."""
    ages = [INVALID]
    for value in stored.headers.get_all(b"age"):
        digits = value.strip(b" \t")
        if digits.isdigit():
            ages.append(min(int(digits[:11]), DELTA_SECONDS_MAX))
    age_value = max(0, *ages)
    apparent_age = max(0.0, stored.response_time - date_value(stored))
    response_delay = stored.response_time - stored.request_time
    corrected_age_value = age_value + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    resident_time = now - stored.response_time
    return max(0.0, corrected_initial_age + resident_time)


def age_field(age: float) -> bytes:
    """An ``Age`` field value: whole seconds, at most 2**31 (RFC 9111 5.1)."""
    return b"%d" % min(int(age), DELTA_SECONDS_MAX)


def time_to_live(
    stored: StoredResponse, now: float, settings: CacheSettings = DEFAULT_SETTINGS
) -> int:
    """Remaining freshness in whole seconds (negative when stale): Cache-Status ttl."""
    return math.floor(freshness_lifetime(stored, settings) - current_age(stored, now))


def stale_window(directives: CacheControl, name: str) -> int:
    """A stale-* extension's seconds, or -1 when absent or invalid."""
    seconds = directives.seconds(name)
    return INVALID if seconds is None else seconds
