"""
The header fields sent upstream for a request.

:func:`upstream_request_headers` makes one pass over the received fields
(:func:`~edgeproxy.core.field_sorting.sort_fields`): hop-by-hop fields
(RFC 9110 section 7.6.1) and the fields ``Connection`` names go, Host is
rebuilt, the forwarding fields (``X-Forwarded-*``, ``X-Real-IP``,
``Forwarded``, ``Via``) are added as the route's
:class:`~edgeproxy.core.forwarding.ForwardingPolicy` says, and the framing
fields can be written in the same pass.  A second pass happens only when
``Connection`` names a field other than the usual hop-by-hop ones.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from functools import lru_cache

from edgeproxy.core.client_address import client_from_forwarded_for, peer_view
from edgeproxy.core.field_sorting import (
    FRAMED_REQUEST_SPECIAL,
    NO_NAMES,
    ONLY_CONTENT_LENGTH,
    REQUEST_SPECIAL,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    X_REAL_IP,
    folded,
    sort_fields,
    sort_without_named,
)
from edgeproxy.core.forwarding import (
    ForwardingPolicy,
    forwarded_node,
    forwarded_value,
)
from edgeproxy.core.framing import BodyFraming, BodyKind
from edgeproxy.core.message import HeaderPair, Headers, RequestHead, headers_of


@lru_cache(maxsize=1024)
def _forwarded_tail(scheme: bytes, request_host: bytes | None, by: bytes) -> bytes:
    """What follows ``for=`` in our ``Forwarded`` element."""
    tail = b";proto=" + scheme
    if request_host:
        tail += b";host=" + forwarded_value(request_host)
    return tail + by


def upstream_request_headers(
    head: RequestHead,
    policy: ForwardingPolicy,
    *,
    peer_host: str,
    scheme: bytes,
    request_host: bytes | None,
    upstream_authority: bytes,
    peer_port: int | None = None,
    websocket: bool = False,
    body: BodyFraming | None = None,
) -> Headers:
    """
    The header fields to send upstream for the request ``head``.

    :param peer_host: the address of the direct peer (the TCP connection's).
    :param scheme: how the client reached us, ``b"http"`` or ``b"https"``.
    :param request_host: the host the client asked for (its Host, or the
        authority of an absolute-form target), or ``None``; see
        :func:`edgeproxy.core.routing.effective_host_and_target`.
    :param upstream_authority: the upstream server's ``host[:port]``, sent as
        Host when ``policy.preserve_host`` is off or the client sent none.
    :param peer_port: the peer's port, for ``Forwarded: for=`` when
        ``policy.forwarded_for_port`` is on.
    :param websocket: the request is a WebSocket upgrade being passed through:
        keep ``Upgrade`` and send ``Connection: upgrade``.
    :param body: how the request body is delimited where it comes from; when
        given, the framing fields are written here as
        :func:`~edgeproxy.core.framing.frame_request` writes them (the
        received ``Content-Length`` goes, the one ``body`` needs comes last),
        so that the head needs no other pass before it is sent.

    Returns new Headers: Host first, then the received end-to-end fields in
    their order (repeats kept), then the forwarding fields.  Hop-by-hop fields
    and every field named by ``Connection`` go, except Host and
    Content-Length, which a ``Connection`` option cannot remove.  From a
    trusted peer, ``X-Forwarded-For``, ``Forwarded`` and ``Via`` are extended
    (folded into one field each) and ``X-Real-IP``, ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` kept when present; from an untrusted peer all
    forwarding fields are replaced by ours.
    """
    peer_host, peer, node = peer_view(peer_host)
    trusted = policy.any_trusted and policy.trusted_proxies.contains(peer_host)
    host = request_host if policy.preserve_host and request_host else None
    kept: list[HeaderPair] = [(b"Host", host or upstream_authority)]
    pairs = head.headers.pairs
    special, dropped = REQUEST_SPECIAL, NO_NAMES
    if body is not None:
        special, dropped = FRAMED_REQUEST_SPECIAL, ONLY_CONTENT_LENGTH
    found = sort_fields(pairs, kept, special, dropped, policy, trusted)
    if found is not None and found.options:
        found = sort_without_named(
            pairs, kept, 1, special, found, policy, trusted, dropped
        )
    present: AbstractSet[bytes] = NO_NAMES
    xff: list[bytes] = []
    if found is not None:
        present = found.present
        xff = found.xff
        if websocket and found.upgrade:
            kept += found.upgrade
            kept.append((b"Connection", b"upgrade"))
    if policy.x_forwarded_for:
        kept.append((b"X-Forwarded-For", folded(xff, peer) if xff else peer))
    if policy.x_real_ip and X_REAL_IP not in present:
        client = peer
        if trusted:
            client = client_from_forwarded_for(
                xff, peer_host, policy.trusted_proxies
            ).encode("latin-1")
        kept.append((b"X-Real-IP", client))
    if policy.x_forwarded_proto and X_FORWARDED_PROTO not in present:
        kept.append((b"X-Forwarded-Proto", scheme))
    if policy.x_forwarded_host and request_host and X_FORWARDED_HOST not in present:
        kept.append((b"X-Forwarded-Host", request_host))
    if policy.forwarded:
        if policy.forwarded_for_port and peer_port is not None:
            node = forwarded_node(peer_host, peer_port)
        element = (
            b"for=" + node + _forwarded_tail(scheme, request_host, policy.by_param)
        )
        if found is not None and found.forwarded:
            element = folded(found.forwarded, element)
        kept.append((b"Forwarded", element))
    if policy.via:
        version = head.version
        via = policy.via_11 if version == b"1.1" else version + policy.via_suffix
        if found is not None and found.via:
            via = folded(found.via, via)
        kept.append((b"Via", via))
    if body is not None:
        kind = body.kind
        if kind is BodyKind.LENGTH:
            kept.append((b"Content-Length", b"%d" % body.length))
        elif kind is not BodyKind.NONE:
            kept.append((b"Transfer-Encoding", b"chunked"))
    return headers_of(kept)
