"""
Which header fields cross the proxy, in each direction.

:func:`upstream_request_headers` decides the fields sent upstream for a request
and :func:`client_response_headers` the fields sent to the client for a
response: hop-by-hop fields (RFC 9110 section 7.6.1) are removed, forwarding
fields (``X-Forwarded-*``, ``X-Real-IP``, ``Forwarded``, ``Via``) are added.
:func:`real_client_address` finds the address of the client behind trusted
proxies.

These run on every request: each makes one pass over the fields, lowers each
name once and tests it against precomputed sets.  A second pass happens only
when ``Connection`` names a field other than the usual hop-by-hop ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import lru_cache

from edgeproxy.core.addresses import AddressSet, parse_address
from edgeproxy.core.framing import (
    UNFRAMED,
    BodyFraming,
    BodyKind,
    UnframedFields,
    length_describes_representation,
)
from edgeproxy.core.message import (
    HeaderPair,
    Headers,
    RequestHead,
    ResponseHead,
    headers_of,
)
from edgeproxy.core.rewrite import LOCATION_FIELDS

_CONNECTION = b"connection"
_UPGRADE = b"upgrade"
_VIA = b"via"
_X_FORWARDED_FOR = b"x-forwarded-for"
_X_REAL_IP = b"x-real-ip"
_X_FORWARDED_PROTO = b"x-forwarded-proto"
_X_FORWARDED_HOST = b"x-forwarded-host"
_FORWARDED = b"forwarded"

_RESPONSE_HOP_BY_HOP = frozenset(
    {
        _CONNECTION,
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        _UPGRADE,
    }
)
_REQUEST_HOP_BY_HOP = _RESPONSE_HOP_BY_HOP | {b"proxy-authorization"}
_FORWARDING = frozenset(
    {_X_FORWARDED_FOR, _X_REAL_IP, _X_FORWARDED_PROTO, _X_FORWARDED_HOST, _FORWARDED}
)
# Every name the passes must look at; any other field is copied as it is.
# Host is rebuilt (exactly one, first), so the received ones are skipped.
_REQUEST_SPECIAL = _REQUEST_HOP_BY_HOP | _FORWARDING | {b"host", _VIA}
# The same when the framing fields are written here too (Content-Length goes;
# Transfer-Encoding is hop-by-hop already).
_CONTENT_LENGTH = frozenset({b"content-length"})
_FRAMED_REQUEST_SPECIAL = _REQUEST_SPECIAL | _CONTENT_LENGTH
_RESPONSE_SPECIAL = _RESPONSE_HOP_BY_HOP | {_VIA}
# The same when the framing fields go here too: Content-Length is dropped (or
# noted, where it stays), Date and the fields with URLs to rewrite are noted.
_DATE = b"date"
_NOTED = frozenset({_DATE, b"content-length"}) | LOCATION_FIELDS
_FRAMED_RESPONSE_SPECIAL = _RESPONSE_SPECIAL | _NOTED
# Connection options that name no other field to remove.
_PLAIN_OPTIONS = _REQUEST_HOP_BY_HOP | {b"close"}
# Fields that a Connection option may not remove: dropping them would change the
# framing or the target of what we send (a request smuggling lever).
_PROTECTED = frozenset({b"host", b"content-length"})
_NONE: frozenset[bytes] = frozenset()

# RFC 9110 tchar: a Forwarded value made only of these needs no quotes.
_TCHARS = (
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_OBFUSCATED_CHARS = b"._-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_IPV6_CHARS = b"0123456789abcdefABCDEF:."


def _is_token(value: bytes) -> bool:
    """Whether ``value`` is a non-empty RFC 9110 token."""
    return bool(value) and not value.translate(None, _TCHARS)


def _forwarded_value(value: bytes) -> bytes:
    """A Forwarded parameter value: a token, or a quoted-string (RFC 7239 sec 4)."""
    if _is_token(value):
        return value
    escaped = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + escaped + b'"'


def _unmapped(host: str) -> str:
    """``host`` with an IPv4-mapped IPv6 address written as plain IPv4."""
    if ":" in host and "." in host:
        address = parse_address(host)
        if address is not None:
            return str(address)
    return host


def _node_name(host: str) -> bytes:
    """The nodename of RFC 7239 section 6 for ``host``, without quotes."""
    try:
        name = host.encode("ascii")
    except UnicodeEncodeError:
        return b"unknown"
    if b":" in name:
        address = name.partition(b"%")[0]
        if address.translate(None, _IPV6_CHARS):
            return b"unknown"
        return b"[" + address + b"]"
    is_ipv4 = bool(name) and not name.translate(None, b"0123456789.")
    is_obfuscated = name[:1] == b"_" and not name.translate(None, _OBFUSCATED_CHARS)
    if is_ipv4 or is_obfuscated or name == b"unknown":
        return name
    return b"unknown"


def forwarded_node(host: str, port: int | None = None) -> bytes:
    """
    A ``for=`` or ``by=`` value of ``Forwarded``, per RFC 7239 section 6.

    IPv6 is bracketed (its zone dropped); a port is appended as
    ``:port``; the value is quoted whenever it is not a token (IPv6, any port).
    ``host`` may also be ``unknown`` or an obfuscated identifier (``_edge1``);
    anything else that is not an IP address (a UNIX socket path) is written
    as ``unknown``.
    """
    node = _node_name(host)
    if port is not None:
        return b'"' + node + b":%d" % port + b'"'
    # IPv4, "unknown" and obfuscated names are tokens; only IPv6 needs quotes.
    return b'"' + node + b'"' if node[:1] == b"[" else node


def _split_port(text: str) -> str:
    """An address from ``X-Forwarded-For`` without its port, if it has one."""
    if text[:1] == "[":
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def _client_from_forwarded_for(
    values: Iterable[bytes], peer_host: str, trusted_proxies: AddressSet
) -> str:
    """Walk ``X-Forwarded-For`` from the right, skipping trusted addresses."""
    client = peer_host
    for raw in reversed(b",".join(values).split(b",")):
        text = raw.strip().decode("latin-1")
        if not text:
            continue
        address = parse_address(_split_port(text))
        if address is None:
            # Like nginx: a hop we cannot read makes the whole header worthless.
            return peer_host
        client = str(address)
        if not trusted_proxies.contains(client):
            return client
    return client


def real_client_address(
    peer_host: str, headers: Headers, trusted_proxies: AddressSet
) -> str:
    """
    The address of the client, as far as trusted proxies vouch for it.

    When the direct peer ``peer_host`` is in ``trusted_proxies``,
    ``X-Forwarded-For`` (all its fields, in order) is walked from the right,
    skipping trusted addresses, as nginx's ``real_ip_recursive`` does: the
    first untrusted address is the client; if every address is trusted, the
    leftmost one is.  An entry that is not an IP address (ports are allowed:
    ``1.2.3.4:5678``, ``[::1]:80``) makes the header worthless and the peer is
    the client.  Otherwise (untrusted peer, no header) the peer is the client.
    IPv4-mapped IPv6 addresses come back as IPv4.
    """
    peer_host = _peer_view(peer_host)[0]
    if not trusted_proxies.entries or not trusted_proxies.contains(peer_host):
        return peer_host
    return _client_from_forwarded_for(
        headers.get_all(_X_FORWARDED_FOR), peer_host, trusted_proxies
    )


@dataclass(frozen=True)
class ForwardingPolicy:
    """
    How forwarding header fields are written.

    Each field is filled by the config key of the same name, in the
    ``[route:NAME]`` section:

    - ``trusted_proxies`` (list of addresses/CIDRs, default none): peers
      whose ``X-Forwarded-*``, ``X-Real-IP`` and ``Forwarded`` are believed.
      From any other peer those fields are dropped and replaced.
    - ``preserve_host`` (bool, default yes): send the client's Host upstream;
      when off, send the upstream server's ``host[:port]``.
    - ``x_forwarded_for``, ``x_real_ip``, ``x_forwarded_proto``,
      ``x_forwarded_host``, ``forwarded``, ``via`` (bools, default yes): write
      that field.  When one is off, a trusted peer's field passes unchanged
      and an untrusted peer's is still dropped (``Via`` always passes).
    - ``forwarded_by`` (default empty): the ``by=`` node of ``Forwarded``
      (an address with an optional port, ``unknown`` or ``_obfuscated``);
      empty leaves ``by=`` out.
    - ``forwarded_for_port`` (bool, default no): add the client's port to
      ``Forwarded: for=``.
    - ``via_pseudonym`` (default ``edgeproxy``): the name edgeproxy gives
      itself in ``Via``; a token.

    Raises ``ValueError`` for a bad ``forwarded_by`` or ``via_pseudonym``.
    """

    trusted_proxies: AddressSet = field(default_factory=AddressSet)
    preserve_host: bool = True
    x_forwarded_for: bool = True
    x_real_ip: bool = True
    x_forwarded_proto: bool = True
    x_forwarded_host: bool = True
    forwarded: bool = True
    forwarded_by: str = ""
    forwarded_for_port: bool = False
    via: bool = True
    via_pseudonym: str = "edgeproxy"
    _by_param: bytes = field(init=False, repr=False, compare=False)
    _via_suffix: bytes = field(init=False, repr=False, compare=False)
    _via_11: bytes = field(init=False, repr=False, compare=False)
    _any_trusted: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pseudonym = self.via_pseudonym.encode("latin-1", "replace")
        if not _is_token(pseudonym):
            raise ValueError(
                f"via_pseudonym {self.via_pseudonym!r} must be a single token"
            )
        object.__setattr__(self, "_via_suffix", b" " + pseudonym)
        object.__setattr__(self, "_via_11", b"1.1 " + pseudonym)
        object.__setattr__(self, "_by_param", _by_param(self.forwarded_by))
        object.__setattr__(self, "_any_trusted", bool(self.trusted_proxies.entries))


def _by_param(by: str) -> bytes:
    """The ``;by=...`` parameter for a configured ``forwarded_by`` node."""
    if not by:
        return b""
    host, port = by, None
    if by.startswith("["):
        host, _, rest = by[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"forwarded_by {by!r} has a bad port")
            port = int(rest[1:])
    elif by.count(":") == 1:
        host, _, port_text = by.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"forwarded_by {by!r} has a bad port")
        port = int(port_text)
    if port is not None and port > 65535:
        raise ValueError(f"forwarded_by {by!r} has a bad port")
    is_obfuscated = host.startswith("_") and _node_name(host) != b"unknown"
    if not (is_obfuscated or host == "unknown" or parse_address(host) is not None):
        raise ValueError(
            f"forwarded_by {by!r} must be an IP address (with an optional port),"
            " 'unknown' or an obfuscated identifier like '_edge1'"
        )
    node = forwarded_node(host, port)
    return b";by=" + node


def _add_options(value: bytes, options: set[bytes]) -> None:
    """Add the options listed in a lowered ``Connection`` value."""
    for item in value.split(b","):
        token = item.strip()
        if token:
            options.add(token)


def _folded(values: list[bytes], ours: bytes) -> bytes:
    """A list-valued field: the received values, then ours, as one value."""
    return b", ".join([*values, ours])


class _SortedFields:
    """What one pass over a message's fields set aside from the copied ones."""

    __slots__ = ("forwarded", "options", "present", "upgrade", "via", "xff")

    def __init__(self) -> None:
        self.options: set[bytes] = set()
        self.upgrade: list[HeaderPair] = []
        self.via: list[bytes] = []
        self.xff: list[bytes] = []
        self.forwarded: list[bytes] = []
        self.present: set[bytes] = set()


def _sort_fields(
    pairs: Sequence[HeaderPair],
    kept: list[HeaderPair],
    special: frozenset[bytes],
    dropped: frozenset[bytes],
    policy: ForwardingPolicy,
    trusted: bool,
    seen: list[bytes] | None = None,
) -> _SortedFields | None:
    """
    Copy the ordinary fields of ``pairs`` to ``kept``; sort out the others.

    Hop-by-hop fields, Host, and the names in ``dropped`` are skipped;
    forwarding fields are skipped unless ``trusted``, in which case the ones
    the policy rewrites are collected and the others kept in place (a
    trusted ``X-Forwarded-For`` is always collected, to find the client).
    With a ``seen`` list, the (lowered) names of the kept fields of
    ``_NOTED`` (those in ``special``) are added to it.
    Returns ``None`` when nothing was set aside (most messages).
    """
    found: _SortedFields | None = None
    for pair in pairs:
        lname = pair[0].lower()
        if lname not in special:
            kept.append(pair)
        elif lname in dropped:
            continue
        elif seen is not None and lname in _NOTED:
            kept.append(pair)
            seen.append(lname)
        elif lname == _CONNECTION:
            # Nearly always a lone "keep-alive", "close" or "upgrade".
            option = pair[1].lower()
            if option not in _PLAIN_OPTIONS:
                found = found or _SortedFields()
                _add_options(option, found.options)
        elif lname == _UPGRADE:
            found = found or _SortedFields()
            found.upgrade.append(pair)
        elif lname == _VIA:
            if policy.via:
                found = found or _SortedFields()
                found.via.append(pair[1])
            else:
                kept.append(pair)
        elif lname in _FORWARDING and trusted:
            found = found or _SortedFields()
            if lname == _X_FORWARDED_FOR:
                found.xff.append(pair[1])
                if not policy.x_forwarded_for:
                    kept.append(pair)
            elif lname == _FORWARDED and policy.forwarded:
                found.forwarded.append(pair[1])
            else:
                kept.append(pair)
                found.present.add(lname)
    return found


def _sort_without_named(
    pairs: Sequence[HeaderPair],
    kept: list[HeaderPair],
    start: int,
    special: frozenset[bytes],
    found: _SortedFields,
    policy: ForwardingPolicy,
    trusted: bool,
    also_dropped: frozenset[bytes] = _NONE,
    seen: list[bytes] | None = None,
) -> _SortedFields | None:
    """
    Sort ``pairs`` again without the fields that ``Connection`` names.

    ``found`` is what the first pass, which copied to ``kept`` from
    ``start`` on (dropping ``also_dropped``, noting names in ``seen``), set
    aside.
    """
    named = found.options - _PLAIN_OPTIONS - _PROTECTED
    if not named:
        return found
    dropped = frozenset(named) | also_dropped
    del kept[start:]
    if seen is not None:
        del seen[:]
    return _sort_fields(pairs, kept, special | dropped, dropped, policy, trusted, seen)


@lru_cache(maxsize=1024)
def _peer_view(peer_host: str) -> tuple[str, bytes, bytes]:
    """
    The peer as forwarding fields write it (cached: few peers, many requests).

    :return: the address (an IPv4-mapped IPv6 one as IPv4), the same as
        bytes, and its ``Forwarded`` node without a port.
    """
    host = _unmapped(peer_host)
    return host, host.encode("latin-1"), forwarded_node(host)


@lru_cache(maxsize=1024)
def _forwarded_tail(scheme: bytes, request_host: bytes | None, by: bytes) -> bytes:
    """What follows ``for=`` in our ``Forwarded`` element."""
    tail = b";proto=" + scheme
    if request_host:
        tail += b";host=" + _forwarded_value(request_host)
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
    peer_host, peer, node = _peer_view(peer_host)
    trusted = policy._any_trusted and policy.trusted_proxies.contains(peer_host)
    host = request_host if policy.preserve_host and request_host else None
    kept: list[HeaderPair] = [(b"Host", host or upstream_authority)]
    pairs = head.headers.pairs
    special, dropped = _REQUEST_SPECIAL, _NONE
    if body is not None:
        special, dropped = _FRAMED_REQUEST_SPECIAL, _CONTENT_LENGTH
    found = _sort_fields(pairs, kept, special, dropped, policy, trusted)
    if found is not None and found.options:
        found = _sort_without_named(
            pairs, kept, 1, special, found, policy, trusted, dropped
        )
    present: AbstractSet[bytes] = _NONE
    xff: list[bytes] = []
    if found is not None:
        present = found.present
        xff = found.xff
        if websocket and found.upgrade:
            kept += found.upgrade
            kept.append((b"Connection", b"upgrade"))
    if policy.x_forwarded_for:
        kept.append((b"X-Forwarded-For", _folded(xff, peer) if xff else peer))
    if policy.x_real_ip and _X_REAL_IP not in present:
        client = peer
        if trusted:
            client = _client_from_forwarded_for(
                xff, peer_host, policy.trusted_proxies
            ).encode("latin-1")
        kept.append((b"X-Real-IP", client))
    if policy.x_forwarded_proto and _X_FORWARDED_PROTO not in present:
        kept.append((b"X-Forwarded-Proto", scheme))
    if policy.x_forwarded_host and request_host and _X_FORWARDED_HOST not in present:
        kept.append((b"X-Forwarded-Host", request_host))
    if policy.forwarded:
        if policy.forwarded_for_port and peer_port is not None:
            node = forwarded_node(peer_host, peer_port)
        element = (
            b"for=" + node + _forwarded_tail(scheme, request_host, policy._by_param)
        )
        if found is not None and found.forwarded:
            element = _folded(found.forwarded, element)
        kept.append((b"Forwarded", element))
    if policy.via:
        version = head.version
        via = policy._via_11 if version == b"1.1" else version + policy._via_suffix
        if found is not None and found.via:
            via = _folded(found.via, via)
        kept.append((b"Via", via))
    if body is not None:
        kind = body.kind
        if kind is BodyKind.LENGTH:
            kept.append((b"Content-Length", b"%d" % body.length))
        elif kind is not BodyKind.NONE:
            kept.append((b"Transfer-Encoding", b"chunked"))
    return headers_of(kept)


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
            head, policy, upgrade_passthrough, _RESPONSE_SPECIAL, _NONE, None
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
    ``request_method``), as :func:`~edgeproxy.core.framing.frame_response`
    would drop it.

    :return: the new Headers, what ``frame_response(..., unframed=...)``
        needs to know of them, and whether a ``Location``,
        ``Content-Location`` or ``Refresh`` field is among them (whether
        :func:`~edgeproxy.core.rewrite.rewrite_locations` has work).
    """
    dropped = _CONTENT_LENGTH
    # The usual GET 200 loses its length without a call.
    if (request_method == b"HEAD" or head.status == 304) and (
        length_describes_representation(request_method, head.status)
    ):
        dropped = _NONE
    seen: list[bytes] = []
    kept = _response_fields(
        head, policy, False, _FRAMED_RESPONSE_SPECIAL, dropped, seen
    )
    has_date = _DATE in seen
    has_length = b"content-length" in seen
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
    """The fields for the client (see :func:`_sort_fields` for the rest)."""
    kept: list[HeaderPair] = []
    pairs = head.headers.pairs
    found = _sort_fields(pairs, kept, special, dropped, policy, False, seen)
    if found is not None and found.options:
        found = _sort_without_named(
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
        via = policy._via_11 if version == b"1.1" else version + policy._via_suffix
        if found is not None and found.via:
            via = _folded(found.via, via)
        kept.append((b"Via", via))
    return kept
