"""
The header fields sent to the client for an upstream response.

:func:`client_response_headers` makes one pass over the received fields
(:func:`~edgeproxy.core.field_sorting.sort_fields`): hop-by-hop fields
(RFC 9110 section 7.6.1) and the fields ``Connection`` names go, and ``Via``
is extended as the route's
:class:`~edgeproxy.core.forwarding.ForwardingPolicy` says.
:func:`client_response_fields` does the same and strips the framing fields in
that pass, for the usual response.
"""

from __future__ import annotations

from edgeproxy.core.field_sorting import (
    CONTENT_LENGTH,
    DATE,
    FRAMED_RESPONSE_SPECIAL,
    NO_NAMES,
    ONLY_CONTENT_LENGTH,
    RESPONSE_SPECIAL,
    folded,
    sort_fields,
    sort_without_named,
)
from edgeproxy.core.forwarding import ForwardingPolicy
from edgeproxy.core.message import HeaderPair, Headers, ResponseHead, headers_of
from edgeproxy.core.response_framing import (
    UNFRAMED,
    UnframedFields,
    length_describes_representation,
)


def client_response_headers(
    head: ResponseHead,
    policy: ForwardingPolicy,
    *,
    upgrade_passthrough: bool = False,
) -> Headers:
    """
    The header fields to send to the client for the upstream response ``head``.

    Hop-by-hop fields and the fields named by ``Connection`` go (except
    Content-Length).  When ``upgrade_passthrough`` (the request was a
    WebSocket upgrade being passed through) and the status is 101,
    ``Upgrade`` is kept and ``Connection: upgrade`` sent.  ``Via`` is
    extended with ours when ``policy.via`` is on.  Returns new Headers.
    """
    return headers_of(
        _response_fields(
            head, policy, upgrade_passthrough, RESPONSE_SPECIAL, NO_NAMES, None
        )
    )


def client_response_fields(
    head: ResponseHead, policy: ForwardingPolicy, *, request_method: bytes
) -> tuple[Headers, UnframedFields, bool]:
    """
    :func:`client_response_headers` and the framing fields' removal, in one pass.

    For a response other than a 101 to a WebSocket upgrade: the fields that
    :func:`client_response_headers` returns, but without ``Content-Length``
    (unless it describes the representation: a ``HEAD`` or 304 response to
    ``request_method``), as :func:`~edgeproxy.core.response_framing.frame_response`
    would drop it.

    :return: the new Headers, what ``frame_response(..., unframed=...)``
        needs to know of them, and whether a ``Location``,
        ``Content-Location`` or ``Refresh`` field is among them (whether
        :func:`~edgeproxy.core.rewrite.rewrite_locations` has work).
    """
    dropped = ONLY_CONTENT_LENGTH
    # The usual GET 200 loses its length without a call.
    if (request_method == b"HEAD" or head.status == 304) and (
        length_describes_representation(request_method, head.status)
    ):
        dropped = NO_NAMES
    seen: list[bytes] = []
    kept = _response_fields(head, policy, False, FRAMED_RESPONSE_SPECIAL, dropped, seen)
    has_date = DATE in seen
    has_length = CONTENT_LENGTH in seen
    has_location = len(seen) > has_date + has_length
    return headers_of(kept), UNFRAMED[has_date][has_length], has_location


def _response_fields(
    head: ResponseHead,
    policy: ForwardingPolicy,
    upgrade_passthrough: bool,
    special: frozenset[bytes],
    dropped: frozenset[bytes],
    seen: list[bytes] | None,
) -> list[HeaderPair]:
    """The fields for the client (the rest as ``sort_fields`` says)."""
    kept: list[HeaderPair] = []
    pairs = head.headers.pairs
    found = sort_fields(pairs, kept, special, dropped, policy, False, seen)
    if found is not None and found.options:
        found = sort_without_named(
            pairs, kept, 0, special, found, policy, False, dropped, seen
        )
    if (
        upgrade_passthrough
        and head.status == 101
        and found is not None
        and found.upgrade
    ):
        kept += found.upgrade
        kept.append((b"Connection", b"upgrade"))
    if policy.via:
        version = head.version
        via = policy.via_11 if version == b"1.1" else version + policy.via_suffix
        if found is not None and found.via:
            via = folded(found.via, via)
        kept.append((b"Via", via))
    return kept
