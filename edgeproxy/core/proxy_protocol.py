"""
The PROXY protocol (versions 1 and 2): parse the header a load balancer puts in
front of a connection's bytes, and build the header edgeproxy sends upstream.

Sans-IO: :func:`parse_proxy_header` is fed the bytes received so far and
answers with the header, with ``None`` (more bytes are needed) or with
:class:`ProxyProtocolError`.  Both versions are bounded, so that a peer cannot
make us buffer without end: a version 1 header has at most 107 bytes with its
CRLF, and a version 2 header at most ``max_v2_size`` bytes.

The format is HAProxy's specification (``doc/proxy-protocol.txt``).  Addresses
come back normalised as :mod:`ipaddress` writes them (``::1``, not
``0:0:0:0:0:0:0:1``).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

from edgeproxy.core.addresses import IPAddress

SocketAddress = tuple[str, int]
"""A host (an IP address as text) and a port."""

V1_MAX_SIZE = 107
"""The longest version 1 header, CRLF included (the specification's bound)."""

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
"""The twelve bytes that start every version 2 header."""

V2_DEFAULT_MAX_SIZE = 4096
"""The longest version 2 header accepted by default, TLVs included."""

_V1_PREFIX = b"PROXY "
_V2_FIXED = 16
_V2_VERSION = 0x20
_V2_LOCAL = 0x0
_V2_PROXY = 0x1
# (family << 4) -> (name prefix, address block layout)
_V2_FAMILIES = {
    0x1: ("4", struct.Struct("!4s4sHH")),
    0x2: ("6", struct.Struct("!16s16sHH")),
}
_V2_UNIX = 0x3
_V2_UNIX_BLOCK = 216
_V2_TRANSPORTS = {0x1: "TCP", 0x2: "UDP"}
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")


class ProxyProtocolError(ValueError):
    """The bytes are not a valid PROXY protocol header (the message says why)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """
    A parsed PROXY protocol header.

    :ivar version: 1 or 2.
    :ivar command: ``"PROXY"`` (the addresses are those of the proxied
        connection) or ``"LOCAL"`` (version 2 only: the proxy's own connection,
        such as a health check; use the real connection's addresses).
    :ivar family: ``"TCP4"``, ``"TCP6"``, ``"UDP4"``, ``"UDP6"``, ``"UNIX"``
        or ``"UNKNOWN"``; ``source`` and ``destination`` are given for the
        first four only.
    :ivar source: the original client's address, or ``None``.
    :ivar destination: the address the client connected to, or ``None``.
    :ivar size: how many bytes the header took from the start of the stream.
    """

    version: int
    command: str
    family: str
    source: SocketAddress | None
    destination: SocketAddress | None
    size: int


def parse_proxy_header(
    data: bytes, *, max_v2_size: int = V2_DEFAULT_MAX_SIZE
) -> ProxyHeader | None:
    """
    Parse the PROXY header at the start of ``data`` (version 1 or 2).

    :param data: every byte received on the connection so far.
    :param max_v2_size: the longest version 2 header accepted, in bytes.
    :return: the header (its :attr:`~ProxyHeader.size` says where the
        connection's own bytes start), or ``None`` when ``data`` is a valid
        beginning that needs more bytes.
    :raises ProxyProtocolError: if ``data`` does not start with a valid
        header, or its header is longer than the bound.
    """
    if data.startswith(V2_SIGNATURE):
        return _parse_v2(data, max_v2_size)
    if data.startswith(_V1_PREFIX):
        return _parse_v1(data)
    if V2_SIGNATURE.startswith(data) or _V1_PREFIX.startswith(data):
        return None
    raise ProxyProtocolError("the connection does not start with a PROXY header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_SIZE)
    if end < 0:
        if b"\n" in data[:V1_MAX_SIZE]:
            raise ProxyProtocolError("PROXY v1 header has a bare LF")
        if len(data) >= V1_MAX_SIZE:
            raise ProxyProtocolError(
                f"PROXY v1 header has no CRLF within {V1_MAX_SIZE} bytes"
            )
        return None
    size = end + 2
    fields = data[:end].split(b" ")
    family = fields[1].decode("ascii", "replace")
    if family == "UNKNOWN":
        # The specification lets the sender put anything before the CRLF.
        return ProxyHeader(1, "PROXY", "UNKNOWN", None, None, size)
    if family not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"PROXY v1 header has unknown family {family!r}")
    if len(fields) != 6:
        raise ProxyProtocolError(
            "PROXY v1 header needs source, destination and two ports, "
            "each after one space"
        )
    source_host = _v1_host(fields[2], family)
    destination_host = _v1_host(fields[3], family)
    source = (source_host, _v1_port(fields[4]))
    destination = (destination_host, _v1_port(fields[5]))
    return ProxyHeader(1, "PROXY", family, source, destination, size)


def _v1_host(text: bytes, family: str) -> str:
    kind = ipaddress.IPv4Address if family == "TCP4" else ipaddress.IPv6Address
    try:
        if b"%" in text:
            raise ValueError("zone")
        return str(kind(text.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError(
            f"PROXY v1 header: {text!r} is not a {family} address"
        ) from None


def _v1_port(text: bytes) -> int:
    if _PORT.fullmatch(text) is None or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY v1 header: {text!r} is not a port")
    return int(text)


def _parse_v2(data: bytes, max_size: int) -> ProxyHeader | None:
    if len(data) < _V2_FIXED:
        return None
    version_command, family_transport, length = struct.unpack_from("!BBH", data, 12)
    size = _V2_FIXED + length
    if size > max_size:
        raise ProxyProtocolError(
            f"PROXY v2 header of {size} bytes is longer than {max_size} bytes"
        )
    if version_command & 0xF0 != _V2_VERSION:
        raise ProxyProtocolError(
            f"PROXY v2 header has version {version_command >> 4}, not 2"
        )
    command = version_command & 0x0F
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyProtocolError(f"PROXY v2 header has unknown command {command}")
    family = family_transport >> 4
    transport = family_transport & 0x0F
    if family not in (0, *_V2_FAMILIES, _V2_UNIX) or transport not in (
        0,
        *_V2_TRANSPORTS,
    ):
        raise ProxyProtocolError(
            f"PROXY v2 header has unknown address family {family_transport:#04x}"
        )
    if len(data) < size:
        return None
    if command == _V2_LOCAL:
        # The receiver ignores the address block of a LOCAL connection.
        return ProxyHeader(2, "LOCAL", "UNKNOWN", None, None, size)
    if family == 0 or transport == 0:
        return ProxyHeader(2, "PROXY", "UNKNOWN", None, None, size)
    if family == _V2_UNIX:
        if length < _V2_UNIX_BLOCK:
            raise ProxyProtocolError("PROXY v2 header is too short for its addresses")
        return ProxyHeader(2, "PROXY", "UNIX", None, None, size)
    suffix, layout = _V2_FAMILIES[family]
    if length < layout.size:
        raise ProxyProtocolError("PROXY v2 header is too short for its addresses")
    source, destination, source_port, destination_port = layout.unpack_from(
        data, _V2_FIXED
    )
    return ProxyHeader(
        2,
        "PROXY",
        _V2_TRANSPORTS[transport] + suffix,
        (str(ipaddress.ip_address(source)), source_port),
        (str(ipaddress.ip_address(destination)), destination_port),
        size,
    )


def build_v1(source: SocketAddress | None, destination: SocketAddress | None) -> bytes:
    """
    Build a version 1 header for a TCP connection from ``source`` to ``destination``.

    When either address is ``None``, or the two are of different IP families,
    the header says ``UNKNOWN`` (the receiver then uses the connection's own
    addresses).  IPv4-mapped IPv6 addresses are sent as IPv4.

    :raises ValueError: if a host is not an IP address or a port is out of range.
    """
    pair = _address_pair(source, destination)
    if pair is None:
        return b"PROXY UNKNOWN\r\n"
    (source_ip, source_port), (destination_ip, destination_port) = pair
    family = "TCP4" if source_ip.version == 4 else "TCP6"
    line = (
        f"PROXY {family} {source_ip} {destination_ip} "
        f"{source_port} {destination_port}\r\n"
    )
    return line.encode("ascii")


def build_v2(
    source: SocketAddress | None,
    destination: SocketAddress | None,
    *,
    local: bool = False,
) -> bytes:
    """
    Build a version 2 header for a TCP connection from ``source`` to ``destination``.

    With ``local``, the header is a ``LOCAL`` command (the proxy's own
    connection) and carries no addresses.  When either address is ``None``, or
    the two are of different IP families, the addresses are left unspecified
    (``AF_UNSPEC``).  IPv4-mapped IPv6 addresses are sent as IPv4.

    :raises ValueError: if a host is not an IP address or a port is out of range.
    """
    if local:
        return V2_SIGNATURE + struct.pack("!BBH", _V2_VERSION | _V2_LOCAL, 0, 0)
    pair = _address_pair(source, destination)
    if pair is None:
        return V2_SIGNATURE + struct.pack("!BBH", _V2_VERSION | _V2_PROXY, 0, 0)
    (source_ip, source_port), (destination_ip, destination_port) = pair
    family = 0x1 if source_ip.version == 4 else 0x2
    layout = _V2_FAMILIES[family][1]
    block = layout.pack(
        source_ip.packed, destination_ip.packed, source_port, destination_port
    )
    head = struct.pack("!BBH", _V2_VERSION | _V2_PROXY, family << 4 | 0x1, len(block))
    return V2_SIGNATURE + head + block


def _address_pair(
    source: SocketAddress | None, destination: SocketAddress | None
) -> tuple[tuple[IPAddress, int], tuple[IPAddress, int]] | None:
    """Both addresses parsed, or ``None`` when one is missing or families differ."""
    if source is None or destination is None:
        return None
    parsed_source = _ip(source)
    parsed_destination = _ip(destination)
    if parsed_source[0].version != parsed_destination[0].version:
        return None
    return parsed_source, parsed_destination


def _ip(address: SocketAddress) -> tuple[IPAddress, int]:
    host, port = address
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port")
    # A zone (fe80::1%eth0) means nothing to the receiver, and v1 cannot carry it.
    ip = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, port
    return ip, port
