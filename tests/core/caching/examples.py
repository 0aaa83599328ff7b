"""
The requests and stored responses the tests of edgeproxy.core.caching share.

Header fields are written as ``"Name: value | Name: value"`` (see
:func:`header_pairs`); times are offsets from ``T0``, and ``d(offset)`` is
that moment as an HTTP-date.
"""

from __future__ import annotations

from edgeproxy.core.cache_control import field_name_list, format_http_date
from edgeproxy.core.caching.decision import Action, CacheDecision
from edgeproxy.core.caching.keys import variant_key
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.status import CacheStatus
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.message import HeaderPair, Headers, RequestHead

T0 = 1_600_000_000.0
FRESH = "Cache-Control: max-age=60"
MUST = "Cache-Control: max-age=60, must-revalidate"


def d(offset: float = 0) -> str:
    """The HTTP-date ``offset`` seconds from T0."""
    return format_http_date(T0 + offset).decode("ascii")


def header_pairs(text: str) -> list[HeaderPair]:
    """Header pairs from ``"Name: value | Name: value"``."""
    pairs = []
    for line in text.split(" | "):
        if line:
            name, _, value = line.partition(":")
            pairs.append((name.encode("ascii"), value.strip().encode("latin-1")))
    return pairs


def request_head(fields: str = "", method: bytes = b"GET") -> RequestHead:
    """A request for /a on app.example."""
    pairs = [(b"Host", b"app.example"), *header_pairs(fields)]
    return RequestHead(method, b"/a", Headers(pairs))


def stored_response(
    fields: str = "",
    *,
    status: int = 200,
    request: RequestHead | None = None,
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> StoredResponse:
    """A response stored at T0 for ``request`` (its Date is T0 unless given)."""
    headers = Headers(header_pairs(fields))
    if b"date" not in headers:
        headers.add(b"Date", d())
    vary = field_name_list(headers.get_all(b"vary"))
    variant = variant_key(request or request_head(), vary, settings)
    return StoredResponse(status, b"OK", headers, T0, T0, variant)


def revalidating(*stored: StoredResponse) -> CacheDecision:
    """A revalidation decision over ``stored`` (most recent first)."""
    return CacheDecision(Action.REVALIDATE, CacheStatus(fwd="stale"), stored[0], stored)
