"""
What a revalidation's answer does to the stored responses.

A 304 (or a 200 answering a ``HEAD``) updates the stored heads it selects
(RFC 9111 sections 3.2 and 4.3.3 to 4.3.5) and drops those it no longer
allows to be stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from edgeproxy.core.cache_control import field_name_list, parse_cache_control
from edgeproxy.core.caching.decision import CacheDecision
from edgeproxy.core.caching.keys import variant_key
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.storability import (
    NOT_STORED,
    fields_to_store,
    with_date,
    without_private_fields,
)
from edgeproxy.core.caching.stored_response import (
    StoredResponse,
    entity_tag,
    has_validator,
    single_date,
)
from edgeproxy.core.message import Headers, RequestHead, ResponseHead

# Never taken from a 304 or HEAD response (RFC 9111 section 3.2).
_NOT_UPDATED = NOT_STORED | {b"content-length", b"content-range"}


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
    etag = entity_tag(headers)
    if etag is not None and not etag.weak:
        return [
            stored
            for stored in candidates
            if (own := entity_tag(stored.headers)) is not None
            and own.strong_match(etag)
        ]
    if etag is not None:
        matching = [
            stored
            for stored in candidates
            if (own := entity_tag(stored.headers)) is not None and own.weak_match(etag)
        ]
        return matching[:1]
    last_modified = single_date(headers, b"last-modified")
    if last_modified is not None:
        matching = [
            stored
            for stored in candidates
            if single_date(stored.headers, b"last-modified") == last_modified
        ]
        return matching[:1]
    if len(candidates) == 1 and not has_validator(candidates[0].headers):
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
    fresh = fields_to_store(response.headers, _NOT_UPDATED)
    names = {pair[0].lower() for pair in fresh}
    names.update((b"date", b"age"))
    kept = [pair for pair in stored.headers.pairs if pair[0].lower() not in names]
    headers = without_private_fields(kept + fresh)
    with_date(headers, times[1])
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
