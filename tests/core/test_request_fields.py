"""Tests for edgeproxy.core.request_fields: the header fields sent upstream."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.forwarding import ForwardingPolicy
from edgeproxy.core.framing import (
    CHUNKED,
    NO_BODY,
    BodyFraming,
    fixed_length,
    frame_request,
)
from edgeproxy.core.message import HeaderPair, Headers, RequestHead
from edgeproxy.core.request_fields import upstream_request_headers

Pairs = list[HeaderPair]

_TRUSTED = AddressSet(["10.0.0.0/8", "::1"])
# A policy that writes no forwarding field, to look at stripping alone.
_BARE: dict[str, Any] = {
    "x_forwarded_for": False,
    "x_real_ip": False,
    "x_forwarded_proto": False,
    "x_forwarded_host": False,
    "forwarded": False,
    "via": False,
}
_HOST = (b"Host", b"app.example")


def _upstream(
    pairs: Pairs,
    *,
    policy: dict[str, Any] | None = None,
    peer: str = "203.0.113.7",
    peer_port: int | None = 5555,
    request_host: bytes | None = b"app.example",
    websocket: bool = False,
    version: bytes = b"1.1",
) -> Pairs:
    """The pairs sent upstream for a GET with ``pairs``."""
    head = RequestHead(b"GET", b"/", Headers(pairs), version)
    result = upstream_request_headers(
        head,
        ForwardingPolicy(trusted_proxies=_TRUSTED, **(policy or {})),
        peer_host=peer,
        peer_port=peer_port,
        scheme=b"https",
        request_host=request_host,
        upstream_authority=b"10.0.0.1:9001",
        websocket=websocket,
    )
    assert head.headers.pairs == pairs, "the request head must not change"
    return result.pairs


@pytest.mark.parametrize(
    ("received", "options", "expected"),
    [
        pytest.param(
            [_HOST, (b"Accept", b"a"), (b"Cookie", b"c=1"), (b"accept", b"b")],
            {},
            [_HOST, (b"Accept", b"a"), (b"Cookie", b"c=1"), (b"accept", b"b")],
            id="end-to-end fields kept in order with repeats",
        ),
        pytest.param(
            [
                _HOST,
                (b"CONNECTION", b"keep-alive"),
                (b"Keep-Alive", b"timeout=5"),
                (b"proxy-connection", b"keep-alive"),
                (b"Proxy-Authorization", b"Basic eDp5"),
                (b"te", b"trailers"),
                (b"Trailer", b"X-Sum"),
                (b"Transfer-Encoding", b"chunked"),
                (b"UPGRADE", b"h2c"),
                (b"X-Kept", b"1"),
            ],
            {},
            [_HOST, (b"X-Kept", b"1")],
            id="hop-by-hop fields dropped in any case",
        ),
        pytest.param(
            [
                _HOST,
                (b"Connection", b"close, X-Foo"),
                (b"X-Foo", b"1"),
                (b"X-Bar", b"2"),
            ],
            {},
            [_HOST, (b"X-Bar", b"2")],
            id="Connection option removes the field it names",
        ),
        pytest.param(
            [_HOST, (b"x-foo", b"1"), (b"X-FOO", b"2"), (b"Connection", b"X-Foo")],
            {},
            [_HOST],
            id="named field removed in every case and before Connection",
        ),
        pytest.param(
            [
                _HOST,
                (b"Connection", b"keep-alive ,  X-Foo ,, \tX-Bar\t"),
                (b"X-Foo", b"1"),
                (b"X-Bar", b"2"),
                (b"X-Baz", b"3"),
            ],
            {},
            [_HOST, (b"X-Baz", b"3")],
            id="options with spaces, tabs and empty items",
        ),
        pytest.param(
            [
                _HOST,
                (b"Connection", b"X-A"),
                (b"Connection", b"x-b"),
                (b"X-A", b"1"),
                (b"X-B", b"2"),
                (b"X-C", b"3"),
            ],
            {},
            [_HOST, (b"X-C", b"3")],
            id="options from several Connection fields",
        ),
        pytest.param(
            [
                (b"Host", b"app.example"),
                (b"Connection", b"Host, Content-Length"),
                (b"Content-Length", b"5"),
            ],
            {},
            [_HOST, (b"Content-Length", b"5")],
            id="Connection cannot remove Host or Content-Length",
        ),
        pytest.param(
            [(b"Host", b"ignored.example"), (b"host", b"other.example")],
            {},
            [_HOST],
            id="one Host, from request_host, first",
        ),
        pytest.param(
            [(b"Accept", b"*/*"), _HOST],
            {"policy": dict(_BARE, preserve_host=False)},
            [(b"Host", b"10.0.0.1:9001"), (b"Accept", b"*/*")],
            id="preserve_host off sends the upstream authority",
        ),
        pytest.param(
            [(b"Accept", b"*/*")],
            {"request_host": None},
            [(b"Host", b"10.0.0.1:9001"), (b"Accept", b"*/*")],
            id="no client host sends the upstream authority",
        ),
        pytest.param(
            [
                _HOST,
                (b"Connection", b"Upgrade"),
                (b"Upgrade", b"websocket"),
                (b"Sec-WebSocket-Key", b"k"),
            ],
            {"websocket": True},
            [
                _HOST,
                (b"Sec-WebSocket-Key", b"k"),
                (b"Upgrade", b"websocket"),
                (b"Connection", b"upgrade"),
            ],
            id="WebSocket passthrough keeps Upgrade",
        ),
        pytest.param(
            [_HOST, (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
            {},
            [_HOST],
            id="Upgrade dropped when not a passthrough",
        ),
        pytest.param(
            [_HOST, (b"Connection", b"keep-alive")],
            {"websocket": True},
            [_HOST],
            id="no Connection upgrade without an Upgrade field",
        ),
    ],
)
def test_request_fields_stripped(
    received: Pairs, options: dict[str, Any], expected: Pairs
) -> None:
    """Hop-by-hop fields and those Connection names do not go upstream."""
    options = {"policy": _BARE, **options}
    assert _upstream(received, **options) == expected


def _added(
    xff: bytes = b"203.0.113.7",
    real_ip: bytes = b"203.0.113.7",
    forwarded: bytes = b"for=203.0.113.7;proto=https;host=app.example",
    via: bytes = b"1.1 edgeproxy",
) -> Pairs:
    """The forwarding fields appended for a request, in their order."""
    return [
        (b"X-Forwarded-For", xff),
        (b"X-Real-IP", real_ip),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"app.example"),
        (b"Forwarded", forwarded),
        (b"Via", via),
    ]


_SPOOFED: Pairs = [
    (b"X-Forwarded-For", b"6.6.6.6"),
    (b"X-Real-IP", b"6.6.6.6"),
    (b"x-forwarded-proto", b"gopher"),
    (b"X-Forwarded-Host", b"evil.example"),
    (b"Forwarded", b"for=6.6.6.6"),
]


@pytest.mark.parametrize(
    ("received", "options", "expected"),
    [
        pytest.param(
            [_HOST],
            {},
            [_HOST, *_added()],
            id="untrusted peer gets every field",
        ),
        pytest.param(
            [_HOST, *_SPOOFED, (b"Accept", b"*/*")],
            {},
            [_HOST, (b"Accept", b"*/*"), *_added()],
            id="untrusted peer's forwarding fields replaced",
        ),
        pytest.param(
            [_HOST, (b"X-Forwarded-For", b"198.51.100.1"), (b"Forwarded", b"for=x")],
            {"peer": "10.0.0.2"},
            [
                _HOST,
                *_added(
                    xff=b"198.51.100.1, 10.0.0.2",
                    real_ip=b"198.51.100.1",
                    forwarded=b"for=x, for=10.0.0.2;proto=https;host=app.example",
                ),
            ],
            id="trusted peer's lists extended",
        ),
        pytest.param(
            [
                _HOST,
                (b"X-Forwarded-For", b"198.51.100.1, 10.0.0.9"),
                (b"x-forwarded-for", b"10.0.0.8"),
            ],
            {"peer": "10.0.0.2", "policy": {"forwarded": False}},
            [
                _HOST,
                (b"X-Forwarded-For", b"198.51.100.1, 10.0.0.9, 10.0.0.8, 10.0.0.2"),
                (b"X-Real-IP", b"198.51.100.1"),
                (b"X-Forwarded-Proto", b"https"),
                (b"X-Forwarded-Host", b"app.example"),
                (b"Via", b"1.1 edgeproxy"),
            ],
            id="trusted peer's repeated X-Forwarded-For folded",
        ),
        pytest.param(
            [
                _HOST,
                (b"X-Real-IP", b"198.51.100.1"),
                (b"X-Forwarded-Proto", b"http"),
                (b"X-Forwarded-Host", b"public.example"),
            ],
            {"peer": "10.0.0.2", "policy": {"forwarded": False, "via": False}},
            [
                _HOST,
                (b"X-Real-IP", b"198.51.100.1"),
                (b"X-Forwarded-Proto", b"http"),
                (b"X-Forwarded-Host", b"public.example"),
                (b"X-Forwarded-For", b"10.0.0.2"),
            ],
            id="trusted peer's single-valued fields kept in place",
        ),
        pytest.param(
            [
                _HOST,
                (b"Connection", b"X-Forwarded-For"),
                (b"X-Forwarded-For", b"198.51.100.1"),
            ],
            {"peer": "10.0.0.2", "policy": {"forwarded": False, "via": False}},
            [
                _HOST,
                (b"X-Forwarded-For", b"10.0.0.2"),
                (b"X-Real-IP", b"10.0.0.2"),
                (b"X-Forwarded-Proto", b"https"),
                (b"X-Forwarded-Host", b"app.example"),
            ],
            id="trusted peer's field named by Connection is removed",
        ),
        pytest.param(
            [_HOST, (b"X-Forwarded-For", b"a, b")],
            {"peer": "::1", "policy": {"forwarded": False, "via": False}},
            [
                _HOST,
                (b"X-Forwarded-For", b"a, b, ::1"),
                (b"X-Real-IP", b"::1"),
                (b"X-Forwarded-Proto", b"https"),
                (b"X-Forwarded-Host", b"app.example"),
            ],
            id="unreadable X-Forwarded-For makes the peer the real IP",
        ),
        pytest.param(
            [_HOST],
            {"peer": "2001:db8::7"},
            [
                _HOST,
                *_added(
                    xff=b"2001:db8::7",
                    real_ip=b"2001:db8::7",
                    forwarded=b'for="[2001:db8::7]";proto=https;host=app.example',
                ),
            ],
            id="IPv6 peer quoted and bracketed in Forwarded only",
        ),
        pytest.param(
            [_HOST],
            {"peer": "::ffff:203.0.113.7"},
            [_HOST, *_added()],
            id="IPv4-mapped peer written as IPv4",
        ),
        pytest.param(
            [_HOST],
            {"peer": "/run/edge.sock", "policy": {"x_real_ip": False}},
            [
                _HOST,
                (b"X-Forwarded-For", b"/run/edge.sock"),
                (b"X-Forwarded-Proto", b"https"),
                (b"X-Forwarded-Host", b"app.example"),
                (b"Forwarded", b"for=unknown;proto=https;host=app.example"),
                (b"Via", b"1.1 edgeproxy"),
            ],
            id="non-IP peer is unknown in Forwarded",
        ),
        pytest.param(
            [(b"Host", b"app.example:8443")],
            {
                "request_host": b"app.example:8443",
                "policy": dict(_BARE, forwarded=True),
            },
            [
                (b"Host", b"app.example:8443"),
                (b"Forwarded", b'for=203.0.113.7;proto=https;host="app.example:8443"'),
            ],
            id="Forwarded host with a port is quoted",
        ),
        pytest.param(
            [],
            {"request_host": None, "policy": {"via": False}},
            [
                (b"Host", b"10.0.0.1:9001"),
                (b"X-Forwarded-For", b"203.0.113.7"),
                (b"X-Real-IP", b"203.0.113.7"),
                (b"X-Forwarded-Proto", b"https"),
                (b"Forwarded", b"for=203.0.113.7;proto=https"),
            ],
            id="no client host: no X-Forwarded-Host nor host=",
        ),
        pytest.param(
            [_HOST, (b"Via", b"1.0 fred, 1.1 p.example"), (b"via", b"2 x")],
            {"version": b"1.0", "policy": dict(_BARE, via=True)},
            [_HOST, (b"Via", b"1.0 fred, 1.1 p.example, 2 x, 1.0 edgeproxy")],
            id="Via appended with the client's version",
        ),
        pytest.param(
            [_HOST],
            {"policy": dict(_BARE, via=True, via_pseudonym="edge-7")},
            [_HOST, (b"Via", b"1.1 edge-7")],
            id="Via pseudonym",
        ),
    ],
)
def test_forwarding_fields(
    received: Pairs, options: dict[str, Any], expected: Pairs
) -> None:
    """Forwarding fields are added, extended for trusted peers, else replaced."""
    assert _upstream(received, **options) == expected


@pytest.mark.parametrize(
    ("peer", "host", "expected"),
    [
        (
            "10.1.2.3",
            b"a.example",
            [
                (b"X-Forwarded-For", b"10.1.2.3"),
                (b"X-Real-IP", b"10.1.2.3"),
                (b"X-Forwarded-Proto", b"http"),
                (b"X-Forwarded-Host", b"a.example"),
                (b"Forwarded", b"for=10.1.2.3;proto=http;host=a.example"),
            ],
        ),
        (
            "::ffff:192.0.2.1",
            b"b.example:8080",
            [
                (b"X-Forwarded-For", b"192.0.2.1"),
                (b"X-Real-IP", b"192.0.2.1"),
                (b"X-Forwarded-Proto", b"http"),
                (b"X-Forwarded-Host", b"b.example:8080"),
                (b"Forwarded", b'for=192.0.2.1;proto=http;host="b.example:8080"'),
            ],
        ),
        (
            "2001:db8::1",
            b"a.example",
            [
                (b"X-Forwarded-For", b"2001:db8::1"),
                (b"X-Real-IP", b"2001:db8::1"),
                (b"X-Forwarded-Proto", b"http"),
                (b"X-Forwarded-Host", b"a.example"),
                (b"Forwarded", b'for="[2001:db8::1]";proto=http;host=a.example'),
            ],
        ),
    ],
)
def test_default_policy_trusts_no_peer(peer: str, host: bytes, expected: Pairs) -> None:
    """With the default policy, any peer's forwarding fields are replaced by ours."""
    received = [
        (b"Host", host),
        (b"X-Forwarded-For", b"6.6.6.6"),
        (b"Forwarded", b"for=6.6.6.6"),
        (b"X-Real-IP", b"6.6.6.6"),
    ]
    for _ in range(2):  # the second time from what is remembered of the peer
        head = RequestHead(b"GET", b"/", Headers(received), b"1.0")
        result = upstream_request_headers(
            head,
            ForwardingPolicy(),
            peer_host=peer,
            scheme=b"http",
            request_host=host,
            upstream_authority=b"10.0.0.1:9001",
        )
        assert result.pairs == [(b"Host", host), *expected, (b"Via", b"1.0 edgeproxy")]


@pytest.mark.parametrize(
    ("toggle", "trusted_kept", "absent"),
    [
        ("x_forwarded_for", (b"X-Forwarded-For", b"6.6.6.6"), b"x-forwarded-for"),
        ("x_real_ip", (b"X-Real-IP", b"6.6.6.6"), b"x-real-ip"),
        ("x_forwarded_proto", (b"x-forwarded-proto", b"gopher"), b"x-forwarded-proto"),
        (
            "x_forwarded_host",
            (b"X-Forwarded-Host", b"evil.example"),
            b"x-forwarded-host",
        ),
        ("forwarded", (b"Forwarded", b"for=6.6.6.6"), b"forwarded"),
    ],
)
def test_each_toggle_off(toggle: str, trusted_kept: HeaderPair, absent: bytes) -> None:
    """A field turned off is not written: a trusted peer's passes, else none."""
    received = [_HOST, *_SPOOFED]
    untrusted = _upstream(received, policy={toggle: False})
    assert absent not in [name.lower() for name, _ in untrusted]
    trusted = _upstream(received, policy={toggle: False}, peer="10.0.0.2")
    assert [pair for pair in trusted if pair[0].lower() == absent] == [trusted_kept]


def test_via_off_passes_received_via() -> None:
    """With via off, a received Via passes unchanged and none is added."""
    received = [_HOST, (b"Via", b"1.1 cdn")]
    assert _upstream(received, policy=_BARE) == received


@pytest.mark.parametrize(
    ("policy", "peer", "forwarded"),
    [
        (
            {"forwarded_for_port": True},
            "203.0.113.7",
            b'for="203.0.113.7:5555";proto=https',
        ),
        (
            {"forwarded_for_port": True},
            "2001:db8::7",
            b'for="[2001:db8::7]:5555";proto=https',
        ),
        (
            {"forwarded_by": "192.0.2.1"},
            "203.0.113.7",
            b"for=203.0.113.7;proto=https;by=192.0.2.1",
        ),
        (
            {"forwarded_by": "192.0.2.1:80"},
            "10.9.9.9",
            b'for=10.9.9.9;proto=https;by="192.0.2.1:80"',
        ),
        (
            {"forwarded_by": "[2001:db8::2]:8443"},
            "::1",
            b'for="[::1]";proto=https;by="[2001:db8::2]:8443"',
        ),
        (
            {"forwarded_by": "2001:db8::2"},
            "::1",
            b'for="[::1]";proto=https;by="[2001:db8::2]"',
        ),
        ({"forwarded_by": "_edge-1"}, "::1", b'for="[::1]";proto=https;by=_edge-1'),
        ({"forwarded_by": "unknown"}, "::1", b'for="[::1]";proto=https;by=unknown'),
    ],
)
def test_forwarded_nodes(policy: dict[str, Any], peer: str, forwarded: bytes) -> None:
    """for= and by= follow RFC 7239 section 6: brackets, ports, quotes."""
    policy = {**_BARE, "forwarded": True, **policy}
    pairs = _upstream([], policy=policy, peer=peer, request_host=None)
    assert pairs[-1] == (b"Forwarded", forwarded)


@pytest.mark.parametrize(
    "body",
    [NO_BODY, fixed_length(0), fixed_length(12), CHUNKED],
    ids=["none", "empty", "length", "chunked"],
)
@pytest.mark.parametrize(
    "received",
    [
        pytest.param([_HOST, (b"Accept", b"*/*")], id="plain"),
        pytest.param([_HOST, (b"content-length", b"12"), (b"X-A", b"1")], id="length"),
        pytest.param(
            [_HOST, (b"Transfer-Encoding", b"chunked"), (b"X-A", b"1")], id="chunked"
        ),
        pytest.param(
            [_HOST, (b"Connection", b"X-A"), (b"X-A", b"1"), (b"Content-Length", b"0")],
            id="Connection names a field",
        ),
    ],
)
def test_framing_in_the_same_pass(received: Pairs, body: BodyFraming) -> None:
    """With body=, the fields are what frame_request would make of them after."""
    head = RequestHead(b"POST", b"/", Headers(received))
    options: dict[str, Any] = {
        "peer_host": "203.0.113.7",
        "scheme": b"http",
        "request_host": b"app.example",
        "upstream_authority": b"10.0.0.1:9001",
    }
    policy = ForwardingPolicy()
    framed = upstream_request_headers(head, policy, body=body, **options)
    plain = upstream_request_headers(head, policy, **options)
    tokens = frame_request(RequestHead(b"POST", b"/", plain), body)
    assert framed.pairs == plain.pairs
    assert tokens == []
