"""Tests for edgeproxy.core.forwarding: the policy and the Forwarded node syntax."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.forwarding import ForwardingPolicy, forwarded_node


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("192.0.2.43", None, b"192.0.2.43"),
        ("192.0.2.43", 4711, b'"192.0.2.43:4711"'),
        ("2001:db8:cafe::17", None, b'"[2001:db8:cafe::17]"'),
        ("2001:db8:cafe::17", 4711, b'"[2001:db8:cafe::17]:4711"'),
        ("fe80::1%eth0", None, b'"[fe80::1]"'),
        ("unknown", None, b"unknown"),
        ("_hidden", None, b"_hidden"),
        ("_hid den", None, b"unknown"),
        ("/tmp/a:b", None, b"unknown"),
        ("", None, b"unknown"),
        ("h\u00e9", None, b"unknown"),
    ],
)
def test_forwarded_node(host: str, port: int | None, expected: bytes) -> None:
    """A node is an IPv4, a bracketed IPv6, unknown or _obfuscated, quoted as due."""
    assert forwarded_node(host, port) == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"via_pseudonym": "edge proxy"}, "via_pseudonym 'edge proxy'"),
        ({"via_pseudonym": ""}, "via_pseudonym ''"),
        ({"forwarded_by": "proxy.example"}, "forwarded_by 'proxy.example' must be"),
        ({"forwarded_by": "_a b"}, "forwarded_by '_a b' must be"),
        ({"forwarded_by": "192.0.2.1:http"}, "bad port"),
        ({"forwarded_by": "192.0.2.1:70000"}, "bad port"),
        ({"forwarded_by": "[::1]x"}, "bad port"),
    ],
)
def test_bad_policy(settings: dict[str, Any], message: str) -> None:
    """Bad policy values raise ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        ForwardingPolicy(**settings)
