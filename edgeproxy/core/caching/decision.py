"""
How a request is answered given the responses stored for its URL.

:func:`decide` chooses: serve a stored response, serve it stale while one
background revalidation runs, revalidate, forward, or refuse (504 for
``only-if-cached``); :func:`usable_after_error` says whether a stale response
may stand in for an origin that failed (``stale-if-error``).  Both read the
request's directives (:func:`request_cache_control`) beside the response's.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from edgeproxy.core.cache_control import (
    INVALID,
    CacheControl,
    parse_cache_control,
    pragma_no_cache,
)
from edgeproxy.core.caching.freshness import (
    current_age,
    freshness_lifetime,
    stale_window,
)
from edgeproxy.core.caching.keys import select_variants
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.status import CacheStatus
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.message import RequestHead

ORIGIN_ERROR_STATUSES = frozenset({500, 502, 503, 504})
"""Upstream statuses that count as a failure for ``stale-if-error`` (RFC 5861)."""


class Action(enum.Enum):
    """What the glue does with a request after :func:`decide`."""

    SERVE = "serve"
    """Answer from ``decision.selected``
    (:func:`~edgeproxy.core.caching.validation.served_response`)."""
    SERVE_STALE = "serve-stale"
    """Answer from the stale ``decision.selected`` and start one background
    revalidation for the key, unless one is running (stale-while-revalidate)."""
    REVALIDATE = "revalidate"
    """Send :func:`~edgeproxy.core.caching.validation.revalidation_request` and
    handle its answer."""
    FORWARD = "forward"
    """Send :func:`~edgeproxy.core.caching.validation.forward_request`; store its
    response if allowed."""
    REFUSE = "refuse"
    """Answer 504: ``only-if-cached`` and nothing usable (RFC 9111 5.2.1.7)."""


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
        swr = stale_window(response_directives, "stale-while-revalidate")
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
        stale_window(directives, "stale-if-error"),
        stale_window(request_directives, "stale-if-error"),
        settings.stale_if_error if settings.stale_if_error > 0 else INVALID,
    )
    return window >= 0 and staleness <= window
