"""
How forwarding header fields are written: the policy and the value syntax.

:class:`ForwardingPolicy` is a route's choice of forwarding fields
(``X-Forwarded-*``, ``X-Real-IP``, ``Forwarded``, ``Via``) and trusted
proxies; :func:`forwarded_node` writes a node of ``Forwarded`` (RFC 7239).
The passes that apply the policy live beside this module:
:mod:`edgeproxy.core.request_fields` (the fields sent upstream),
:mod:`edgeproxy.core.response_fields` (the fields sent to the client), both
built on :mod:`edgeproxy.core.field_sorting`; the client behind trusted
proxies is found by :mod:`edgeproxy.core.client_address`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeproxy.core.addresses import AddressSet, parse_address

# RFC 9110 tchar: a Forwarded value made only of these needs no quotes.
_TCHARS = (
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_OBFUSCATED_CHARS = b"._-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_IPV6_CHARS = b"0123456789abcdefABCDEF:."


def is_token(value: bytes) -> bool:
    """Whether ``value`` is a non-empty RFC 9110 token."""
    return bool(value) and not value.translate(None, _TCHARS)


def forwarded_value(value: bytes) -> bytes:
    """A Forwarded parameter value: a token, or a quoted-string (RFC 7239 sec 4)."""
    if is_token(value):
        return value
    escaped = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + escaped + b'"'


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

    Derived once, for the passes that run on every request:

    :ivar by_param: the ``;by=...`` parameter of ``Forwarded`` (or empty).
    :ivar via_suffix: `` pseudonym``, to follow a protocol version in ``Via``.
    :ivar via_11: ``1.1 pseudonym``, our usual ``Via`` element.
    :ivar any_trusted: whether ``trusted_proxies`` has any entry.
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
    by_param: bytes = field(init=False, repr=False, compare=False)
    via_suffix: bytes = field(init=False, repr=False, compare=False)
    via_11: bytes = field(init=False, repr=False, compare=False)
    any_trusted: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pseudonym = self.via_pseudonym.encode("latin-1", "replace")
        if not is_token(pseudonym):
            raise ValueError(
                f"via_pseudonym {self.via_pseudonym!r} must be a single token"
            )
        object.__setattr__(self, "via_suffix", b" " + pseudonym)
        object.__setattr__(self, "via_11", b"1.1 " + pseudonym)
        object.__setattr__(self, "by_param", _by_param(self.forwarded_by))
        object.__setattr__(self, "any_trusted", bool(self.trusted_proxies.entries))


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
