"""
Whether a forwarded response may be stored, and what of it (RFC 9111 section 3).
"""

from __future__ import annotations

from typing import NamedTuple

from edgeproxy.core.cache_control import (
    CacheControl,
    field_name_list,
    format_http_date,
    parse_cache_control,
)
from edgeproxy.core.caching.freshness import (
    HEURISTICALLY_CACHEABLE,
    current_age,
    freshness_lifetime,
    stale_window,
)
from edgeproxy.core.caching.keys import variant_key
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.stored_response import (
    StoredResponse,
    has_validator,
    single_date,
)
from edgeproxy.core.message import HeaderPair, Headers, RequestHead, ResponseHead

# Final statuses whose caching rules this cache implements, for must-understand
# (RFC 9111 section 5.2.2.3): RFC 9110's, less 206 (no range support).
_UNDERSTOOD = frozenset(
    (*range(200, 206), *range(300, 306), 307, 308, *range(400, 418), 421, 422, 426)
).union(range(500, 506))
NOT_STORED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authentication-info",
        b"proxy-authorization",
        b"surrogate-key",
        b"cache-tag",
    }
)
"""Fields removed before storing (RFC 9111 section 3.1): hop-by-hop and
proxy-specific fields, and the surrogate tags the store keeps apart."""


def fields_to_store(headers: Headers, excluded: frozenset[bytes]) -> list[HeaderPair]:
    """``headers`` without ``excluded`` and the fields ``Connection`` names."""
    named = set(field_name_list(headers.get_all(b"connection")))
    return [
        pair
        for pair in headers.pairs
        if (key := pair[0].lower()) not in excluded and key not in named
    ]


def without_private_fields(pairs: list[HeaderPair]) -> Headers:
    """``pairs`` less the fields a qualified ``private`` lists (RFC 9111 5.2.2.7)."""
    headers = Headers(pairs)
    directives = parse_cache_control(headers.get_all(b"cache-control"))
    for name in directives.field_names("private") or ():
        headers.remove(name)
    return headers


def with_date(headers: Headers, response_time: float) -> None:
    """Give ``headers`` a valid ``Date`` (RFC 9110 section 6.6.1)."""
    if single_date(headers, b"date") is None:
        headers.set(b"Date", format_http_date(response_time))


def response_tags(headers: Headers) -> frozenset[bytes]:
    """The purge tags of ``Surrogate-Key`` (space-separated) and ``Cache-Tag``."""
    tags = set()
    for name in (b"surrogate-key", b"cache-tag"):
        for value in headers.get_all(name):
            tags.update(value.replace(b",", b" ").split())
    return frozenset(tags)


class StorageDecision(NamedTuple):
    """
    Whether and what to store for a forwarded response.

    :ivar response: the metadata to store, or ``None`` when not storable.
    :ivar refusal: why not (``"method"``, ``"status"``, ``"no-store"``,
        ``"request-no-store"``, ``"private"``, ``"authorization"``,
        ``"vary-star"``, ``"range"``, ``"no-freshness"``,
        ``"stale-without-validator"``).
    :ivar tags: the purge tags the entry records.
    """

    response: StoredResponse | None
    refusal: str | None
    tags: frozenset[bytes] = frozenset()


def _refusal(request: RequestHead, response: ResponseHead) -> str | None:
    """Why RFC 9111 section 3 forbids storing, or ``None``."""
    status = response.status
    if request.method != b"GET":
        return "method"  # a HEAD response has no body to store
    if b"range" in request.headers:
        return "range"  # ranges are not combined (RFC 9111 section 3.4)
    if status < 200 or status in (206, 304):
        return "status"
    if "no-store" in parse_cache_control(request.headers.get_all(b"cache-control")):
        return "request-no-store"
    directives = parse_cache_control(response.headers.get_all(b"cache-control"))
    if "must-understand" in directives:
        if status not in _UNDERSTOOD:
            return "status"
    elif "no-store" in directives:
        return "no-store"
    if "private" in directives and directives.field_names("private") is None:
        return "private"
    shareable = ("public", "s-maxage", "must-revalidate")
    if b"authorization" in request.headers and not any(
        name in directives for name in shareable
    ):
        return "authorization"
    if b"*" in field_name_list(response.headers.get_all(b"vary")):
        return "vary-star"
    if not _explicitly_cacheable(directives, response.headers) and (
        status not in HEURISTICALLY_CACHEABLE
    ):
        return "no-freshness"
    return None


def _explicitly_cacheable(directives: CacheControl, headers: Headers) -> bool:
    """Whether a response has explicit freshness or says ``public``."""
    return b"expires" in headers or any(
        name in directives for name in ("s-maxage", "max-age", "public")
    )


def storage_decision(
    request: RequestHead,
    response: ResponseHead,
    request_time: float,
    response_time: float,
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> StorageDecision:
    """
    Decide whether the response to a forwarded ``GET`` may be stored.

    Beyond RFC 9111 section 3, a response that would be stale at once and has
    no validator and no stale-* window is not stored: it could never be
    served, only replaced (section 3 lets a cache skip such responses).
    """
    refusal = _refusal(request, response)
    if refusal is not None:
        return StorageDecision(None, refusal)
    headers = without_private_fields(fields_to_store(response.headers, NOT_STORED))
    with_date(headers, response_time)
    stored = StoredResponse(
        response.status,
        response.reason,
        headers,
        request_time,
        response_time,
        variant_key(request, field_name_list(headers.get_all(b"vary")), settings),
    )
    if (
        freshness_lifetime(stored, settings) <= current_age(stored, response_time)
        and not has_validator(headers)
        and stale_window(stored.cache_control, "stale-while-revalidate") <= 0
        and stale_window(stored.cache_control, "stale-if-error") <= 0
        and settings.stale_if_error <= 0
    ):
        explicit = _explicitly_cacheable(stored.cache_control, headers)
        return StorageDecision(
            None, "stale-without-validator" if explicit else "no-freshness"
        )
    return StorageDecision(stored, None, response_tags(response.headers))
