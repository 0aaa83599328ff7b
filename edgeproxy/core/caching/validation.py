"""
Conditional requests: the client's validators and the cache's own.

A response served from the cache answers the client's ``If-None-Match`` or
``If-Modified-Since`` with a 304 (:func:`served_response`,
:func:`not_modified`); a miss goes upstream without them so that the answer
can be stored (:func:`forward_request`); a stale response is revalidated with
the cache's validators (:func:`revalidation_request`).
"""

from __future__ import annotations

from edgeproxy.core.cache_control import (
    parse_cache_control,
    parse_entity_tag_list,
    parse_http_date,
)
from edgeproxy.core.caching.decision import CacheDecision
from edgeproxy.core.caching.freshness import age_field, current_age
from edgeproxy.core.caching.stored_response import (
    StoredResponse,
    entity_tag,
    single_date,
)
from edgeproxy.core.message import Headers, RequestHead, ResponseHead

# What a 304 carries (RFC 9110 section 15.4.5), with Age for the cache.
_NOT_MODIFIED_FIELDS = frozenset(
    b"age cache-control content-location date etag expires vary".split()
)
_CLIENT_VALIDATORS = frozenset({b"if-none-match", b"if-modified-since"})


def _is_not_modified(request: RequestHead, headers: Headers, received: float) -> bool:
    """
    Whether the client's own validators match (RFC 9110 13.1.2, 13.1.3, 13.2.2).

    ``If-None-Match`` (weak comparison; ``*`` matches) takes precedence over
    ``If-Modified-Since``, which compares ``Last-Modified``, else ``Date``,
    else the arrival time (RFC 9111 section 4.3.2).  ``If-Match`` and
    ``If-Unmodified-Since`` do not apply to a cache.
    """
    if request.method not in (b"GET", b"HEAD"):
        return False
    if_none_match = request.headers.get_all(b"if-none-match")
    if if_none_match:
        wanted = parse_entity_tag_list(if_none_match)
        if wanted.wildcard:
            return True
        etag = entity_tag(headers)
        return etag is not None and any(etag.weak_match(tag) for tag in wanted.tags)
    since_values = request.headers.get_all(b"if-modified-since")
    if len(since_values) != 1:
        return False
    since = parse_http_date(since_values[0])
    if since is None:
        return False
    modified = single_date(headers, b"last-modified")
    if modified is None:
        modified = single_date(headers, b"date")
    return (received if modified is None else modified) <= since


def not_modified(
    request: RequestHead, response: ResponseHead, received: float
) -> ResponseHead | None:
    """
    A 304 for ``request`` when its validators match a 200 ``response``.

    For a response served from the cache or a full response fetched after
    the client's validators were dropped (:func:`forward_request`).  The 304
    keeps the fields RFC 9110 section 15.4.5 lists (and ``Age``), plus
    ``Last-Modified`` when there is no ``ETag``.  ``None`` otherwise.
    """
    if response.status != 200 or not _is_not_modified(
        request, response.headers, received
    ):
        return None
    kept = _NOT_MODIFIED_FIELDS
    if b"etag" not in response.headers:
        kept = kept | {b"last-modified"}
    pairs = [pair for pair in response.headers.pairs if pair[0].lower() in kept]
    return ResponseHead(304, b"Not Modified", Headers(pairs), response.version)


def served_response(
    request: RequestHead, stored: StoredResponse, now: float
) -> ResponseHead:
    """
    The head that answers ``request`` from ``stored`` at ``now``.

    A copy of the stored head with ``Age`` set, or a 304 when the client's
    validators match a stored 200.  The glue sends the stored body only for
    a non-304 answer to a ``GET``, framed by the body's stored size.
    """
    head = ResponseHead(stored.status, stored.reason, stored.headers.copy())
    head.headers.set(b"Age", age_field(current_age(stored, now)))
    return not_modified(request, head, stored.response_time) or head


def _without_validators(
    request: RequestHead, method: bytes | None = None
) -> RequestHead:
    """A copy of ``request`` without ``If-None-Match`` and ``If-Modified-Since``."""
    pairs = [p for p in request.headers.pairs if p[0].lower() not in _CLIENT_VALIDATORS]
    return RequestHead(
        method or request.method, request.target, Headers(pairs), request.version
    )


def forward_request(request: RequestHead) -> RequestHead:
    """
    The request to send upstream when
    :func:`~edgeproxy.core.caching.decision.decide` says forward.

    A ``GET`` whose response may be stored loses the client's
    ``If-None-Match`` and ``If-Modified-Since``, so the answer is a full
    response the cache can keep (the client's 304 then comes from
    :func:`not_modified`).  Any other request is returned as it is.
    """
    if request.method != b"GET" or b"range" in request.headers:
        return request
    if "no-store" in parse_cache_control(request.headers.get_all(b"cache-control")):
        return request
    if not any(name.lower() in _CLIENT_VALIDATORS for name, _ in request.headers.pairs):
        return request
    return _without_validators(request)


def revalidation_request(
    request: RequestHead, decision: CacheDecision, method: bytes | None = None
) -> RequestHead:
    """
    The conditional request that revalidates ``decision.candidates``.

    The client's validators are replaced by the cache's (RFC 9111 4.3.1):
    ``If-None-Match`` with every stored entity-tag, ``If-Modified-Since``
    with ``Last-Modified`` when one response is validated.  ``method``
    overrides the client's (``b"GET"`` for a background revalidation, so a
    changed response can be stored).
    """
    conditional = _without_validators(request, method)
    etags: list[bytes] = []
    for stored in decision.candidates:
        etag = entity_tag(stored.headers)
        if (
            etag is not None
            and (raw := (b"W/" if etag.weak else b"") + etag.opaque) not in etags
        ):
            etags.append(raw)
    if etags:
        conditional.headers.add(b"If-None-Match", b", ".join(etags))
    if len(decision.candidates) == 1:
        last_modified = decision.candidates[0].headers.get(b"last-modified")
        if last_modified is not None and parse_http_date(last_modified) is not None:
            conditional.headers.add(b"If-Modified-Since", last_modified)
    return conditional
