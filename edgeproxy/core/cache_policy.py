"""
The policy of edgeproxy's shared HTTP cache (RFC 9111), as pure functions.

Nothing here stores bytes or reads a clock: the glue passes the request head,
the stored responses (:class:`StoredResponse`, metadata only), the upstream
response head and the times.  One request goes like this:

1. :func:`decide` with the variants stored under :func:`primary_key` gives a
   :class:`CacheDecision`: serve a stored response, serve it stale while one
   background revalidation runs, revalidate, forward, or refuse (504 for
   ``only-if-cached``).
2. A served response's head comes from :func:`served_response` (``Age``, and
   a 304 when the client's own validators match).
3. A revalidation sends :func:`revalidation_request`; its 304 (or a 200 to a
   ``HEAD``) goes through :func:`freshen`; an origin failure may fall back on
   the stale response when :func:`usable_after_error` says so.
4. A forwarded request sends :func:`forward_request`; its response is stored
   when :func:`storage_decision` allows; a response to an unsafe method
   invalidates :func:`invalidated_keys`.
5. :class:`CacheStatus` gives the ``Cache-Status`` field (RFC 9211).

This is a shared cache: ``s-maxage``, ``proxy-revalidate`` and ``private``
apply.  206 responses are never stored (no range combining, RFC 9111 section
3.3); requests with ``Range`` bypass the cache.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from edgeproxy.core.cache_control import (
    DELTA_SECONDS_MAX,
    INVALID,
    CacheControl,
    EntityTag,
    field_name_list,
    format_http_date,
    is_token,
    parse_cache_control,
    parse_entity_tag,
    parse_entity_tag_list,
    parse_http_date,
    pragma_no_cache,
)
from edgeproxy.core.message import HeaderPair, Headers, RequestHead, ResponseHead

HEURISTICALLY_CACHEABLE = frozenset(
    {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}
)
"""RFC 9110 section 15.1's heuristically cacheable statuses, less 206 (never stored)."""

ORIGIN_ERROR_STATUSES = frozenset({500, 502, 503, 504})
"""Upstream statuses that count as a failure for ``stale-if-error`` (RFC 5861)."""

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
"""Methods that never invalidate (RFC 9110 section 9.2.1); any other may."""

# Final statuses whose caching rules this cache implements, for must-understand
# (RFC 9111 section 5.2.2.3): RFC 9110's, less 206 (no range support).
_UNDERSTOOD = frozenset(
    (*range(200, 206), *range(300, 306), 307, 308, *range(400, 418), 421, 422, 426)
).union(range(500, 506))
# Removed before storing (RFC 9111 section 3.1): hop-by-hop and proxy-specific
# fields, and the surrogate tags the store keeps apart.
_NOT_STORED = frozenset(
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
# Never taken from a 304 or HEAD response (RFC 9111 section 3.2).
_NOT_UPDATED = _NOT_STORED | {b"content-length", b"content-range"}
# What a 304 carries (RFC 9110 section 15.4.5), with Age for the cache.
_NOT_MODIFIED_FIELDS = frozenset(
    b"age cache-control content-location date etag expires vary".split()
)
_CLIENT_VALIDATORS = frozenset({b"if-none-match", b"if-modified-since"})
# Field values compared case-insensitively when matching Vary (RFC 9111 4.1).
_CASE_INSENSITIVE_VALUES = frozenset(
    {b"accept-encoding", b"accept-charset", b"accept-language"}
)
_DEFAULT_PORTS = {b"http": b"80", b"https": b"443"}
_QUOTED = re.compile(rb'("(?:[^"\\]|\\.)*"?)')
_OWS_AROUND_DELIMITER = re.compile(rb"[ \t]*([,;=])[ \t]*")
_WHITESPACE_RUN = re.compile(rb"[ \t]+")
_EMPTY_MEMBERS = re.compile(rb",{2,}")


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


class StoredResponse:
    """
    The metadata of one stored response (its body lives in the store).

    :ivar status: the status code.
    :ivar reason: the reason phrase.
    :ivar headers: the stored fields (hop-by-hop and proxy fields removed, a
        ``Date`` always present); treat as read-only.
    :ivar request_time: when the request that fetched or last validated it left.
    :ivar response_time: when that response arrived.
    :ivar variant: the secondary key it was stored under (:func:`variant_key`).
    :ivar cache_control: its parsed ``Cache-Control``.
    :ivar vary: the lower-cased field names of its ``Vary``, sorted.
    """

    __slots__ = (
        "cache_control",
        "headers",
        "reason",
        "request_time",
        "response_time",
        "status",
        "variant",
        "vary",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: Headers,
        request_time: float,
        response_time: float,
        variant: bytes,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.request_time = request_time
        self.response_time = response_time
        self.variant = variant
        self.cache_control = parse_cache_control(headers.get_all(b"cache-control"))
        self.vary = tuple(sorted(set(field_name_list(headers.get_all(b"vary")))))

    def _identity(self) -> tuple[object, ...]:
        """What makes two stored responses equal."""
        return (
            self.status,
            self.reason,
            self.headers,
            self.request_time,
            self.response_time,
            self.variant,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredResponse):
            return NotImplemented
        return self._identity() == other._identity()

    def __repr__(self) -> str:
        return f"StoredResponse({self.status!r}, {self.variant!r}, {self.headers!r})"


# --- keys --------------------------------------------------------------------


def authority_key(host: bytes, scheme: bytes) -> bytes:
    """``host`` lower-cased, without the scheme's default port (or an empty one)."""
    lowered = host.lower()
    name, colon, port = lowered.rpartition(b":")
    if not colon or (b":" in name and not name.endswith(b"]")):
        return lowered  # no port, or a bare IPv6 address
    if not port or port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return lowered


def primary_key(scheme: bytes, host: bytes, target: bytes) -> bytes:
    """
    The key every variant of a URL is stored under (RFC 9111 section 2).

    The same for ``GET`` and ``HEAD``: ``scheme://authority`` normalised
    (:func:`authority_key`) and the origin-form target as received.
    """
    scheme = scheme.lower()
    return scheme + b"://" + authority_key(host, scheme) + target


def _normalised(name: bytes, values: list[bytes]) -> bytes:
    """
    A request field's values as Vary compares them (RFC 9111 section 4.1).

    Field lines are combined; whitespace around ``,``, ``;``, ``=`` outside
    quoted-strings is removed and runs of it squeezed; empty list members are
    dropped; values of a field known to be case-insensitive are lower-cased.
    """
    parts = _QUOTED.split(b",".join(values))
    for index in range(0, len(parts), 2):  # the parts outside quoted-strings
        squeezed = _OWS_AROUND_DELIMITER.sub(rb"\1", parts[index])
        parts[index] = _EMPTY_MEMBERS.sub(b",", _WHITESPACE_RUN.sub(b" ", squeezed))
    value = b"".join(parts).strip(b" \t,")
    return value.lower() if name in _CASE_INSENSITIVE_VALUES else value


def _cookie(request: RequestHead, name: bytes) -> bytes | None:
    """The value of the first cookie called ``name``, or ``None``."""
    for line in request.headers.get_all(b"cookie"):
        for pair in line.split(b";"):
            key, equals, value = pair.strip(b" \t").partition(b"=")
            if equals and key == name:
                return value.strip(b'"')
    return None


def _key_part(name: bytes, value: bytes | None) -> bytes:
    """One unambiguous piece of a variant key."""
    if value is None:
        return name + b"!;"
    return b"%s:%d:%s;" % (name, len(value), value)


def variant_key(
    request: RequestHead,
    vary: Iterable[bytes],
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> bytes:
    """
    The secondary key of ``request`` for a response that varies on ``vary``.

    Built from the normalised values of the named request fields (an absent
    field differs from an empty one), plus the configured key field or cookie.
    """
    names = {name.lower() for name in vary}
    if settings.key_header is not None:
        names.add(settings.key_header.lower())
    parts = []
    for name in sorted(names):
        values = request.headers.get_all(name)
        parts.append(_key_part(name, _normalised(name, values) if values else None))
    if settings.key_cookie is not None:
        cookie = _cookie(request, settings.key_cookie)
        parts.append(_key_part(b"cookie=" + settings.key_cookie, cookie))
    return b"".join(parts)


def _date_value(stored: StoredResponse) -> float:
    """The stored ``Date``, or the time the response arrived."""
    date = _single_date(stored.headers, b"date")
    return stored.response_time if date is None else date


def _single_date(headers: Headers, name: bytes) -> int | None:
    """The HTTP-date of a field that must appear once (``None`` otherwise)."""
    values = headers.get_all(name)
    if len(set(values)) != 1:
        return None
    return parse_http_date(values[0])


def select_variants(
    request: RequestHead,
    variants: Iterable[StoredResponse],
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> list[StoredResponse]:
    """
    The stored responses whose Vary matches ``request``, most recent first.

    ``Vary: *`` never matches; recency is by ``Date``, then arrival.
    """
    matching = [
        stored
        for stored in variants
        if b"*" not in stored.vary
        and variant_key(request, stored.vary, settings) == stored.variant
    ]
    matching.sort(key=lambda stored: (_date_value(stored), stored.response_time))
    matching.reverse()
    return matching


# --- freshness and age -------------------------------------------------------


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
        expires = _single_date(stored.headers, b"expires")
        return 0 if expires is None else max(0.0, expires - _date_value(stored))
    if stored.status not in HEURISTICALLY_CACHEABLE and "public" not in directives:
        return 0
    last_modified = _single_date(stored.headers, b"last-modified")
    if last_modified is None:
        return settings.default_ttl
    interval = max(0.0, _date_value(stored) - last_modified)
    return min(interval * settings.heuristic_fraction, settings.heuristic_max)


def current_age(stored: StoredResponse, now: float) -> float:
    """The response's age at ``now`` (RFC 9111 section 4.2.3), never negative."""
    ages = [INVALID]
    for value in stored.headers.get_all(b"age"):
        digits = value.strip(b" \t")
        if digits.isdigit():
            ages.append(min(int(digits[:11]), DELTA_SECONDS_MAX))
    age_value = max(0, *ages)
    apparent_age = max(0.0, stored.response_time - _date_value(stored))
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


# --- storing -----------------------------------------------------------------


def _fields_to_store(headers: Headers, excluded: frozenset[bytes]) -> list[HeaderPair]:
    """``headers`` without ``excluded`` and the fields ``Connection`` names."""
    named = set(field_name_list(headers.get_all(b"connection")))
    return [
        pair
        for pair in headers.pairs
        if (key := pair[0].lower()) not in excluded and key not in named
    ]


def _without_private_fields(pairs: list[HeaderPair]) -> Headers:
    """``pairs`` less the fields a qualified ``private`` lists (RFC 9111 5.2.2.7)."""
    headers = Headers(pairs)
    directives = parse_cache_control(headers.get_all(b"cache-control"))
    for name in directives.field_names("private") or ():
        headers.remove(name)
    return headers


def _with_date(headers: Headers, response_time: float) -> None:
    """Give ``headers`` a valid ``Date`` (RFC 9110 section 6.6.1)."""
    if _single_date(headers, b"date") is None:
        headers.set(b"Date", format_http_date(response_time))


def _has_validator(headers: Headers) -> bool:
    """Whether a response can be revalidated (ETag or Last-Modified)."""
    return b"etag" in headers or b"last-modified" in headers


def _window(directives: CacheControl, name: str) -> int:
    """A stale-* extension's seconds, or -1 when absent or invalid."""
    seconds = directives.seconds(name)
    return INVALID if seconds is None else seconds


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
    headers = _without_private_fields(_fields_to_store(response.headers, _NOT_STORED))
    _with_date(headers, response_time)
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
        and not _has_validator(headers)
        and _window(stored.cache_control, "stale-while-revalidate") <= 0
        and _window(stored.cache_control, "stale-if-error") <= 0
        and settings.stale_if_error <= 0
    ):
        explicit = _explicitly_cacheable(stored.cache_control, headers)
        return StorageDecision(
            None, "stale-without-validator" if explicit else "no-freshness"
        )
    return StorageDecision(stored, None, response_tags(response.headers))


# --- serving -----------------------------------------------------------------


class Action(enum.Enum):
    """What the glue does with a request after :func:`decide`."""

    SERVE = "serve"
    """Answer from ``decision.selected`` (:func:`served_response`)."""
    SERVE_STALE = "serve-stale"
    """Answer from the stale ``decision.selected`` and start one background
    revalidation for the key, unless one is running (stale-while-revalidate)."""
    REVALIDATE = "revalidate"
    """Send :func:`revalidation_request` and handle its answer."""
    FORWARD = "forward"
    """Send :func:`forward_request`; store its response if allowed."""
    REFUSE = "refuse"
    """Answer 504: ``only-if-cached`` and nothing usable (RFC 9111 5.2.1.7)."""


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


@dataclass(frozen=True)
class CacheDecision:
    """
    What :func:`decide` chose for one request.

    :ivar action: what to do.
    :ivar status: the ``Cache-Status`` for the outcome; complete for the
        serving actions, to finish with :meth:`CacheStatus.forwarded` after a
        forward.
    :ivar selected: the stored response to serve, or to update first.
    :ivar candidates: every stored response matching the request, most
        recent first (the set RFC 9111 section 4.3.4 updates from a 304).
    """

    action: Action
    status: CacheStatus
    selected: StoredResponse | None = None
    candidates: tuple[StoredResponse, ...] = ()


def request_cache_control(
    request: RequestHead, settings: CacheSettings = DEFAULT_SETTINGS
) -> CacheControl:
    """
    The request's directives, reading ``Pragma: no-cache`` as ``no-cache``.

    RFC 9111 section 5.4 deprecates Pragma (7234 required honouring it); a
    request for revalidation is always permitted, so it is honoured when the
    request has no ``Cache-Control`` and ``settings.honour_pragma`` is set.
    """
    values = request.headers.get_all(b"cache-control")
    if values:
        return parse_cache_control(values)
    if settings.honour_pragma and pragma_no_cache(request.headers.get_all(b"pragma")):
        return CacheControl({"no-cache": [None]})
    return parse_cache_control(())


def _stale_forbidden(directives: CacheControl) -> bool:
    """Whether the response may never be served stale (RFC 9111 section 4.2.4)."""
    return any(
        name in directives
        for name in ("must-revalidate", "proxy-revalidate", "s-maxage", "no-cache")
    )


def _request_forbids(directives: CacheControl, age: float, remaining: float) -> bool:
    """
    Whether the request's directives forbid serving without validation.

    ``no-cache``, ``max-age`` exceeded, ``min-fresh`` unmet; an invalid
    ``max-age`` or ``min-fresh`` reads as its most restrictive value.
    """
    if "no-cache" in directives:
        return True
    max_age = directives.seconds("max-age")
    if max_age is not None and (max_age == INVALID or age > max_age):
        return True
    min_fresh = directives.seconds("min-fresh")
    return min_fresh is not None and (min_fresh == INVALID or remaining < min_fresh)


def _max_stale(directives: CacheControl) -> float | None:
    """The staleness the client accepts: ``None`` (none), seconds, or infinity."""
    arguments = directives.arguments("max-stale")
    if not arguments:
        return None
    if all(argument is None for argument in arguments):
        return math.inf
    seconds = directives.seconds("max-stale")
    return None if seconds is None or seconds == INVALID else seconds


def decide(
    request: RequestHead,
    variants: Sequence[StoredResponse],
    now: float,
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> CacheDecision:
    """
    Choose how to answer ``request`` given the variants stored for its URL.

    A ``HEAD`` is answered from a stored ``GET`` response.  A fresh response
    is served unless a ``no-cache`` (response or request), the request's
    ``max-age`` or ``min-fresh`` asks for validation; a stale one is served
    within the request's ``max-stale`` or the response's
    ``stale-while-revalidate`` (RFC 5861), unless ``must-revalidate``,
    ``proxy-revalidate``, ``s-maxage`` or ``no-cache`` forbid stale use.
    """
    if request.method not in (b"GET", b"HEAD"):
        return CacheDecision(Action.FORWARD, CacheStatus(fwd="method"))
    if b"range" in request.headers:
        return CacheDecision(Action.FORWARD, CacheStatus(fwd="bypass", detail="range"))
    directives = request_cache_control(request, settings)
    candidates = tuple(select_variants(request, variants, settings))
    if not candidates:
        status = CacheStatus(fwd="vary-miss" if variants else "uri-miss")
        return _unless_only_cached(directives, CacheDecision(Action.FORWARD, status))
    selected = candidates[0]
    age = current_age(selected, now)
    remaining = freshness_lifetime(selected, settings) - age
    ttl = math.floor(remaining)
    response_directives = selected.cache_control
    decision = CacheDecision(
        Action.REVALIDATE, CacheStatus(fwd="stale", ttl=ttl), selected, candidates
    )
    if "no-cache" in response_directives:
        decision = replace(decision, status=replace(decision.status, detail="no-cache"))
    elif _request_forbids(directives, age, remaining):
        if remaining > 0:
            decision = replace(decision, status=CacheStatus(fwd="request", ttl=ttl))
    elif remaining > 0:
        decision = replace(
            decision, action=Action.SERVE, status=CacheStatus(True, ttl=ttl)
        )
    elif not _stale_forbidden(response_directives):
        staleness = -remaining
        max_stale = _max_stale(directives)
        swr = _window(response_directives, "stale-while-revalidate")
        if max_stale is not None and staleness <= max_stale:
            status = CacheStatus(True, ttl=ttl, detail="max-stale")
            decision = replace(decision, action=Action.SERVE, status=status)
        elif staleness <= swr:
            status = CacheStatus(True, ttl=ttl, detail="stale-while-revalidate")
            decision = replace(decision, action=Action.SERVE_STALE, status=status)
    return _unless_only_cached(directives, decision)


def _unless_only_cached(
    directives: CacheControl, decision: CacheDecision
) -> CacheDecision:
    """``decision``, or a refusal if it goes forward despite ``only-if-cached``."""
    if "only-if-cached" in directives and decision.action in (
        Action.FORWARD,
        Action.REVALIDATE,
    ):
        return replace(
            decision, action=Action.REFUSE, status=CacheStatus(detail="only-if-cached")
        )
    return decision


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
        etag = _entity_tag(headers)
        return etag is not None and any(etag.weak_match(tag) for tag in wanted.tags)
    since_values = request.headers.get_all(b"if-modified-since")
    if len(since_values) != 1:
        return False
    since = parse_http_date(since_values[0])
    if since is None:
        return False
    modified = _single_date(headers, b"last-modified")
    if modified is None:
        modified = _single_date(headers, b"date")
    return (received if modified is None else modified) <= since


def _entity_tag(headers: Headers) -> EntityTag | None:
    """The response's one entity-tag, or ``None``."""
    values = headers.get_all(b"etag")
    return parse_entity_tag(values[0]) if len(values) == 1 else None


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


# --- going forward -----------------------------------------------------------


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
    The request to send upstream when :func:`decide` says forward.

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
        etag = _entity_tag(stored.headers)
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


class Freshening(NamedTuple):
    """
    What a 304 (or a 200 to a ``HEAD``) does to the stored responses.

    :ivar updated: ``(old, new)`` pairs: replace ``old`` (keyed by its
        variant) with ``new``, whose variant may differ.
    :ivar removed: stored responses to drop.
    :ivar serve: the response that now answers the request, or ``None``
        (a 304 that matched nothing: forward the request unconditionally).
    """

    updated: tuple[tuple[StoredResponse, StoredResponse], ...]
    removed: tuple[StoredResponse, ...]
    serve: StoredResponse | None


def _selected_by_304(
    candidates: Sequence[StoredResponse], headers: Headers
) -> list[StoredResponse]:
    """The stored responses a 304 updates (RFC 9111 section 4.3.4)."""
    etag = _entity_tag(headers)
    if etag is not None and not etag.weak:
        return [
            stored
            for stored in candidates
            if (own := _entity_tag(stored.headers)) is not None
            and own.strong_match(etag)
        ]
    if etag is not None:
        matching = [
            stored
            for stored in candidates
            if (own := _entity_tag(stored.headers)) is not None and own.weak_match(etag)
        ]
        return matching[:1]
    last_modified = _single_date(headers, b"last-modified")
    if last_modified is not None:
        matching = [
            stored
            for stored in candidates
            if _single_date(stored.headers, b"last-modified") == last_modified
        ]
        return matching[:1]
    if len(candidates) == 1 and not _has_validator(candidates[0].headers):
        return list(candidates)
    return []


def _matches_head_response(stored: StoredResponse, headers: Headers) -> bool:
    """Whether a 200 to ``HEAD`` describes ``stored`` (RFC 9111 section 4.3.5)."""
    for name in (b"etag", b"last-modified", b"content-length"):
        values = headers.get_all(name)
        if values and [v.strip() for v in values] != [
            v.strip() for v in stored.headers.get_all(name)
        ]:
            return False
    return True


def _updated(
    stored: StoredResponse,
    request: RequestHead,
    response: ResponseHead,
    times: tuple[float, float],
    settings: CacheSettings,
) -> StoredResponse | None:
    """
    ``stored`` with ``response``'s fields (RFC 9111 section 3.2), or ``None``.

    Every field the response carries replaces the stored ones of that name,
    except framing, hop-by-hop and proxy fields.  The response's ``Date`` and
    ``Age`` describe the validated response: without them the stored ones go
    (the arrival time becomes the ``Date``).  ``None`` when the merged
    response may no longer be stored (``no-store``, ``private``, ``Vary: *``).
    """
    fresh = _fields_to_store(response.headers, _NOT_UPDATED)
    names = {pair[0].lower() for pair in fresh}
    names.update((b"date", b"age"))
    kept = [pair for pair in stored.headers.pairs if pair[0].lower() not in names]
    headers = _without_private_fields(kept + fresh)
    _with_date(headers, times[1])
    directives = parse_cache_control(headers.get_all(b"cache-control"))
    forbidden = "no-store" in directives and "must-understand" not in directives
    if forbidden or (
        "private" in directives and directives.field_names("private") is None
    ):
        return None
    vary = field_name_list(headers.get_all(b"vary"))
    if b"*" in vary:
        return None
    variant = variant_key(request, vary, settings)
    return StoredResponse(stored.status, stored.reason, headers, *times, variant)


def freshen(
    request: RequestHead,
    decision: CacheDecision,
    response: ResponseHead,
    request_time: float,
    response_time: float,
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> Freshening:
    """
    Apply a revalidation's 304, or a 200 answering a ``HEAD`` revalidation.

    A 304 updates the candidates RFC 9111 section 4.3.4 selects: those with
    its strong entity-tag; else the most recent with its weak entity-tag or
    ``Last-Modified``; else the only candidate when neither has a validator.
    A 200 to ``HEAD`` (section 4.3.5) updates the candidates whose validators
    and ``Content-Length`` it matches and removes the others.  Any other
    status changes nothing.
    """
    removed: list[StoredResponse] = []
    if response.status == 304:
        selected = _selected_by_304(decision.candidates, response.headers)
    elif response.status == 200 and request.method == b"HEAD":
        selected = []
        for stored in decision.candidates:
            matched = _matches_head_response(stored, response.headers)
            (selected if matched else removed).append(stored)
    else:
        return Freshening((), (), None)
    updated = []
    for stored in selected:
        new = _updated(
            stored, request, response, (request_time, response_time), settings
        )
        if new is None:
            removed.append(stored)
        else:
            updated.append((stored, new))
    return Freshening(
        tuple(updated), tuple(removed), updated[0][1] if updated else None
    )


def usable_after_error(
    request: RequestHead,
    stored: StoredResponse,
    now: float,
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> bool:
    """
    Whether ``stored`` may answer when its revalidation failed.

    Failure: no response, or a status in :data:`ORIGIN_ERROR_STATUSES`.
    Allowed within the largest of the response's and the request's
    ``stale-if-error`` (RFC 5861 section 4) and the configured floor, never
    for ``no-cache``, nor once stale under ``must-revalidate``,
    ``proxy-revalidate`` or ``s-maxage`` (RFC 9111 section 4.2.4; the glue
    answers 504 then).
    """
    directives = stored.cache_control
    if "no-cache" in directives:
        return False
    staleness = current_age(stored, now) - freshness_lifetime(stored, settings)
    if staleness > 0 and _stale_forbidden(directives):
        return False
    request_directives = request_cache_control(request, settings)
    window = max(
        _window(directives, "stale-if-error"),
        _window(request_directives, "stale-if-error"),
        settings.stale_if_error if settings.stale_if_error > 0 else INVALID,
    )
    return window >= 0 and staleness <= window


# --- invalidation ------------------------------------------------------------


def _same_origin_key(reference: bytes, base: bytes) -> bytes | None:
    """The primary key of ``reference`` resolved against ``base``, if same-origin."""
    try:
        resolved = urlsplit(
            urljoin(base.decode("latin-1"), reference.decode("latin-1").strip())
        )
        origin = urlsplit(base.decode("latin-1"))
    except ValueError:
        return None
    scheme = resolved.scheme.encode("latin-1")
    authority = resolved.netloc.encode("latin-1")
    if scheme != origin.scheme.encode("latin-1") or authority_key(
        authority, scheme
    ) != authority_key(origin.netloc.encode("latin-1"), scheme):
        return None
    target = resolved.path or "/"
    if resolved.query:
        target += "?" + resolved.query
    return primary_key(scheme, authority, target.encode("latin-1"))


def invalidated_keys(
    request: RequestHead, response: ResponseHead, scheme: bytes, host: bytes
) -> list[bytes]:
    """
    The primary keys a response to an unsafe method invalidates (RFC 9111 4.4).

    For a 2xx or 3xx answer to any method but GET, HEAD, OPTIONS and TRACE:
    the target URI, and the ``Location`` and ``Content-Location`` URIs of the
    same origin (others are ignored: that would let one origin purge another).
    The glue removes every variant stored under each key.
    """
    if request.method in SAFE_METHODS or not 200 <= response.status < 400:
        return []
    target_key = primary_key(scheme, host, request.target)
    keys = [target_key]
    for name in (b"location", b"content-location"):
        for value in response.headers.get_all(name):
            key = _same_origin_key(value, target_key)
            if key is not None and key not in keys:
                keys.append(key)
    return keys
