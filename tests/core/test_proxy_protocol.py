"""Tests for edgeproxy.core.proxy_protocol, checked against Twisted's own parsers."""

from __future__ import annotations

import ipaddress
import struct
from typing import cast

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser

from edgeproxy.core.proxy_protocol import (
    V1_MAX_SIZE,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    SocketAddress,
    build_v1,
    build_v2,
    parse_proxy_header,
)

V4 = (("192.0.2.7", 51234), ("198.51.100.1", 5432))
V6 = (("2001:db8::7", 1), ("2001:db8:0:1::", 65535))
MAPPED = (("::ffff:192.0.2.7", 40000), ("198.51.100.1", 443))
MIXED = (("192.0.2.7", 40000), ("2001:db8::1", 443))


def twisted_view(data: bytes) -> tuple[str | None, object, object, bytes]:
    """What Twisted's parser for the header's version makes of ``data``."""
    parser = V2Parser() if data.startswith(V2_SIGNATURE) else V1Parser()
    info, rest = parser.feed(data)
    assert info is not None and rest is not None
    source = cast(IPv4Address | IPv6Address | None, info.source)
    return (
        None if source is None else source.type,
        _address(info.source),
        _address(info.destination),
        rest,
    )


def our_view(data: bytes) -> tuple[str | None, object, object, bytes]:
    """The same view of our parse of ``data``."""
    header = parse_proxy_header(data)
    assert header is not None
    kind = None if header.source is None else header.family[:3]
    return (kind, header.source, header.destination, data[header.size :])


def _address(address: object) -> SocketAddress | None:
    """A Twisted address as (normalised host, port), or None."""
    if address is None:
        return None
    assert isinstance(address, IPv4Address | IPv6Address)
    return (str(ipaddress.ip_address(address.host)), address.port)


def v2(command: int, family: int, block: bytes) -> bytes:
    """A raw version 2 header."""
    return (
        V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(block)) + block
    )


V4_BLOCK = ipaddress.ip_address("10.1.2.3").packed + bytes(4) + struct.pack("!HH", 7, 8)
V6_BLOCK = (
    ipaddress.ip_address("fe80::1").packed
    + ipaddress.ip_address("::").packed
    + struct.pack("!HH", 9, 10)
)
TLV = b"\x04\x00\x03abc"  # PP2_TYPE_NOOP with three bytes


@pytest.mark.parametrize(
    ("build", "addresses", "family"),
    [
        (build_v1, V4, "TCP4"),
        (build_v1, V6, "TCP6"),
        (build_v1, MAPPED, "TCP4"),
        (build_v2, V4, "TCP4"),
        (build_v2, V6, "TCP6"),
        (build_v2, MAPPED, "TCP4"),
    ],
)
def test_built_headers_parse_the_same_in_twisted(
    build: object, addresses: tuple[SocketAddress, SocketAddress], family: str
) -> None:
    """A header we build carries the addresses, as Twisted and we both read it."""
    assert callable(build)
    data = build(*addresses) + b"payload"
    source, destination = (
        (str(ipaddress.ip_address(h.replace("::ffff:", ""))), p) for h, p in addresses
    )
    assert twisted_view(data) == ("TCP", source, destination, b"payload")
    header = parse_proxy_header(data)
    assert header is not None
    assert (header.family, header.source, header.destination) == (
        family,
        source,
        destination,
    )


@pytest.mark.parametrize(
    ("data", "command"),
    [
        (build_v2(None, None), "PROXY"),
        (build_v2(*MIXED), "PROXY"),
        (build_v2(*V4, local=True), "LOCAL"),
    ],
)
def test_v2_headers_without_addresses(data: bytes, command: str) -> None:
    """Missing or mixed-family addresses build AF_UNSPEC; LOCAL carries none."""
    assert twisted_view(data + b"x") == (None, None, None, b"x")
    assert parse_proxy_header(data + b"x") == ProxyHeader(
        2, command, "UNKNOWN", None, None, len(data)
    )


@pytest.mark.parametrize("addresses", [(None, V4[1]), (V4[0], None), MIXED])
def test_v1_headers_without_addresses(
    addresses: tuple[SocketAddress | None, SocketAddress | None],
) -> None:
    """Missing or mixed-family addresses build the canonical UNKNOWN line."""
    # HAProxy's own form; Twisted's V1Parser wants a space after UNKNOWN and
    # refuses it, so this one is checked against the specification only.
    assert build_v1(*addresses) == b"PROXY UNKNOWN\r\n"
    assert parse_proxy_header(b"PROXY UNKNOWN\r\nx") == ProxyHeader(
        1, "PROXY", "UNKNOWN", None, None, 15
    )


@pytest.mark.parametrize(
    "data",
    [
        b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 5432\r\nGET",
        b"PROXY TCP6 ::1 2001:0db8:0000::1 0 65535\r\n",
        b"PROXY TCP6 0:0:0:0:0:0:0:1 ::ffff:10.0.0.1 1 2\r\n\r\n",
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest",
        v2(1, 0x11, V4_BLOCK) + b"tail",
        v2(1, 0x11, V4_BLOCK + TLV) + b"tail",
        v2(1, 0x12, V4_BLOCK),
        v2(1, 0x21, V6_BLOCK + TLV),
        v2(1, 0x22, V6_BLOCK),
        v2(1, 0x00, b""),
        v2(1, 0x10, V4_BLOCK),
        v2(0, 0x11, V4_BLOCK) + b"tail",
        v2(0, 0x00, b""),
    ],
)
def test_twisted_compatible_headers_parse_identically(data: bytes) -> None:
    """Headers Twisted accepts give us the same addresses and the same rest."""
    assert our_view(data) == twisted_view(data)


@pytest.mark.parametrize(
    "data",
    [
        b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 5432\r\n",
        build_v1(*V6),
        v2(1, 0x21, V6_BLOCK + TLV),
        v2(0, 0x00, b""),
    ],
)
def test_every_prefix_needs_more(data: bytes) -> None:
    """Any beginning of a valid header asks for more bytes; the whole parses."""
    for end in range(len(data)):
        assert parse_proxy_header(data[:end]) is None
    header = parse_proxy_header(data)
    assert header is not None and header.size == len(data)


def test_unknown_v1_may_fill_the_bound() -> None:
    """A v1 header of exactly 107 bytes is accepted; the specification's bound."""
    data = b"PROXY UNKNOWN " + b"x" * (V1_MAX_SIZE - 16) + b"\r\n"
    assert len(data) == V1_MAX_SIZE
    header = parse_proxy_header(data)
    assert header is not None and header.size == V1_MAX_SIZE


def test_v2_may_be_bounded_lower() -> None:
    """max_v2_size refuses a longer header as soon as its length is known."""
    data = v2(1, 0x11, V4_BLOCK + TLV)
    assert parse_proxy_header(data, max_v2_size=len(data)) is not None
    with pytest.raises(ProxyProtocolError, match="longer than"):
        parse_proxy_header(data[:16], max_v2_size=len(data) - 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "does not start"),
        (b"PROXX", "does not start"),
        (b"\r\n\r\n\x00\r\nQUIX", "does not start"),
        (b"PROXY UNKNOWN " + b"x" * 100, "no CRLF within 107"),
        (b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "no CRLF within 107"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown family"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown family"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "two ports"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "two ports"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "two ports"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not a TCP4 address"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not a TCP6 address"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "not a TCP6 address"),
        (b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "not a TCP4 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n", "not a port"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c", "version 1, not 2"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c", "unknown command"),
        (V2_SIGNATURE + b"\x21\x41\x00\x0c", "unknown address family"),
        (V2_SIGNATURE + b"\x21\x13\x00\x0c", "unknown address family"),
        (v2(1, 0x11, V4_BLOCK[:11]), "too short"),
        (v2(1, 0x21, V4_BLOCK), "too short"),
        (v2(1, 0x31, V6_BLOCK), "too short"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "longer than"),
    ],
)
def test_malformed_headers_are_refused(data: bytes, message: str) -> None:
    """Malformed or oversized headers raise ProxyProtocolError saying why."""
    with pytest.raises(ProxyProtocolError, match=message):
        parse_proxy_header(data)


def test_v2_unix_addresses_are_not_passed_on() -> None:
    """A UNIX-socket v2 header parses, without an IP source to use."""
    header = parse_proxy_header(v2(1, 0x31, bytes(216)))
    assert header == ProxyHeader(2, "PROXY", "UNIX", None, None, 16 + 216)


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        (("example.com", 1), ("192.0.2.1", 2)),
        (("192.0.2.7", 65536), ("192.0.2.1", 2)),
        (("192.0.2.7", 1), ("192.0.2.1", -1)),
    ],
)
@pytest.mark.parametrize("build", [build_v1, build_v2])
def test_builders_refuse_what_is_not_an_address(
    build: object, source: SocketAddress, destination: SocketAddress
) -> None:
    """A host that is not an IP address, or a bad port, is a ValueError."""
    assert callable(build)
    with pytest.raises(ValueError, match=r"address|port"):
        build(source, destination)


def test_builders_drop_ipv6_zones() -> None:
    """A zone on a link-local address is not sent (the receiver cannot use it)."""
    addresses = (("fe80::1%eth0", 1), ("fe80::2", 2))
    assert build_v1(*addresses) == b"PROXY TCP6 fe80::1 fe80::2 1 2\r\n"
    header = parse_proxy_header(build_v2(*addresses))
    assert header is not None and header.source == ("fe80::1", 1)
