"""Tests for edgeproxy.core.client_address: the client behind trusted proxies."""

from __future__ import annotations

import pytest

from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.client_address import real_client_address
from edgeproxy.core.message import Headers

_TRUSTED = AddressSet(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "received", "expected"),
    [
        ("203.0.113.7", [], "203.0.113.7"),
        ("203.0.113.7", [b"198.51.100.1"], "203.0.113.7"),
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", [b"198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", [b"6.6.6.6, 198.51.100.1, 10.0.0.5"], "198.51.100.1"),
        ("10.0.0.2", [b"6.6.6.6, 198.51.100.1", b"10.0.0.5"], "198.51.100.1"),
        ("10.0.0.2", [b"10.0.0.9, 10.0.0.5"], "10.0.0.9"),
        ("10.0.0.2", [b" 198.51.100.1 ,, "], "198.51.100.1"),
        ("10.0.0.2", [b"198.51.100.1:5678"], "198.51.100.1"),
        ("10.0.0.2", [b"[2001:db8::1]:80"], "2001:db8::1"),
        ("10.0.0.2", [b"2001:DB8::1"], "2001:db8::1"),
        ("10.0.0.2", [b"::ffff:198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", [b"198.51.100.1, unknown, 10.0.0.5"], "10.0.0.2"),
        ("10.0.0.2", [b"garbage"], "10.0.0.2"),
        ("::1", [b"198.51.100.1, ::1"], "198.51.100.1"),
        ("::ffff:10.0.0.2", [b"198.51.100.1"], "198.51.100.1"),
        ("::ffff:203.0.113.7", [b"198.51.100.1"], "203.0.113.7"),
    ],
)
def test_real_client_address(peer: str, received: list[bytes], expected: str) -> None:
    """Behind trusted peers the client is the rightmost untrusted hop."""
    headers = Headers([(b"X-Forwarded-For", value) for value in received])
    assert real_client_address(peer, headers, _TRUSTED) == expected
