"""Tests for edgeproxy.core.response_fields: the header fields sent to the client."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.forwarding import ForwardingPolicy
from edgeproxy.core.framing import CHUNKED, NO_BODY, BodyFraming, fixed_length
from edgeproxy.core.message import HeaderPair, Headers, ResponseHead
from edgeproxy.core.response_fields import (
    client_response_fields,
    client_response_headers,
)
from edgeproxy.core.response_framing import frame_response

Pairs = list[HeaderPair]


@pytest.mark.parametrize(
    ("status", "received", "options", "expected"),
    [
        pytest.param(
            200,
            [
                (b"Content-Type", b"text/html"),
                (b"Set-Cookie", b"a=1"),
                (b"Set-Cookie", b"b=2"),
            ],
            {},
            [
                (b"Content-Type", b"text/html"),
                (b"Set-Cookie", b"a=1"),
                (b"Set-Cookie", b"b=2"),
                (b"Via", b"1.1 edgeproxy"),
            ],
            id="end-to-end fields kept with repeats, Via added",
        ),
        pytest.param(
            200,
            [
                (b"connection", b"close, X-Internal"),
                (b"X-INTERNAL", b"secret"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Proxy-Connection", b"close"),
                (b"TE", b"trailers"),
                (b"Trailer", b"X-Sum"),
                (b"Transfer-Encoding", b"chunked"),
                (b"Upgrade", b"h2c"),
                (b"Content-Length", b"3"),
            ],
            {"policy": {"via": False}},
            [(b"Content-Length", b"3")],
            id="hop-by-hop and named fields dropped",
        ),
        pytest.param(
            200,
            [(b"Connection", b"Content-Length"), (b"Content-Length", b"3")],
            {"policy": {"via": False}},
            [(b"Content-Length", b"3")],
            id="Connection cannot remove Content-Length",
        ),
        pytest.param(
            200,
            [(b"Via", b"1.1 backend"), (b"Proxy-Authenticate", b"Basic")],
            {"version": b"1.0"},
            [
                (b"Proxy-Authenticate", b"Basic"),
                (b"Via", b"1.1 backend, 1.0 edgeproxy"),
            ],
            id="Via appended with the upstream's version",
        ),
        pytest.param(
            200,
            [(b"Via", b"1.1 backend")],
            {"policy": {"via": False}},
            [(b"Via", b"1.1 backend")],
            id="via off passes Via",
        ),
        pytest.param(
            101,
            [
                (b"Upgrade", b"websocket"),
                (b"Connection", b"Upgrade"),
                (b"Sec-WebSocket-Accept", b"x"),
            ],
            {"upgrade_passthrough": True, "policy": {"via": False}},
            [
                (b"Sec-WebSocket-Accept", b"x"),
                (b"Upgrade", b"websocket"),
                (b"Connection", b"upgrade"),
            ],
            id="101 passthrough keeps Upgrade",
        ),
        pytest.param(
            101,
            [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
            {"policy": {"via": False}},
            [],
            id="101 without passthrough drops Upgrade",
        ),
        pytest.param(
            200,
            [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
            {"upgrade_passthrough": True, "policy": {"via": False}},
            [],
            id="passthrough without 101 drops Upgrade",
        ),
        pytest.param(
            200,
            [(b"X-Forwarded-For", b"1.2.3.4"), (b"Forwarded", b"for=x")],
            {"policy": {"via": False}},
            [(b"X-Forwarded-For", b"1.2.3.4"), (b"Forwarded", b"for=x")],
            id="forwarding fields of a response are not ours to touch",
        ),
    ],
)
def test_response_fields(
    status: int, received: Pairs, options: dict[str, Any], expected: Pairs
) -> None:
    """The client gets end-to-end response fields, plus Via when on."""
    head = ResponseHead(status, b"", Headers(received), options.get("version", b"1.1"))
    result = client_response_headers(
        head,
        ForwardingPolicy(**options.get("policy", {})),
        upgrade_passthrough=options.get("upgrade_passthrough", False),
    )
    assert result.pairs == expected
    assert head.headers.pairs == received, "the response head must not change"


_RESPONSE_CASES = [
    pytest.param(
        [
            (b"Server", b"nginx"),
            (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
            (b"Content-Length", b"12"),
            (b"Connection", b"keep-alive"),
        ],
        id="nginx",
    ),
    pytest.param([(b"X-A", b"1")], id="no Date"),
    pytest.param(
        [(b"Transfer-Encoding", b"chunked"), (b"Via", b"1.0 backend")], id="chunked"
    ),
    pytest.param(
        [
            (b"Connection", b"close, X-Internal, Date"),
            (b"X-Internal", b"1"),
            (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
            (b"content-length", b"12"),
            (b"Location", b"/next"),
        ],
        id="Connection names Date",
    ),
    pytest.param(
        [(b"Content-Location", b"/a"), (b"Content-Length", b"3")],
        id="Content-Location",
    ),
    pytest.param([(b"refresh", b"0; url=/b")], id="Refresh"),
]


@pytest.mark.parametrize("received", _RESPONSE_CASES)
@pytest.mark.parametrize(
    ("method", "status", "body"),
    [
        (b"GET", 200, fixed_length(12)),
        (b"GET", 200, CHUNKED),
        (b"HEAD", 200, NO_BODY),
        (b"GET", 304, NO_BODY),
        (b"GET", 204, NO_BODY),
    ],
)
def test_framing_of_a_response_in_the_same_pass(
    received: Pairs, method: bytes, status: int, body: BodyFraming
) -> None:
    """One pass and a framing without a scan send what the two passes sent."""
    policy = ForwardingPolicy()
    head = ResponseHead(status, b"", Headers(received))
    plain = ResponseHead(status, b"", client_response_headers(head, policy))
    expected = frame_response(plain, method, b"1.1", body, keep_alive=True, date=b"now")
    fields, unframed, locations = client_response_fields(
        head, policy, request_method=method
    )
    framed = ResponseHead(status, b"", fields)
    result = frame_response(
        framed, method, b"1.1", body, keep_alive=True, date=b"now", unframed=unframed
    )
    assert (result, framed.headers.pairs) == (expected, plain.headers.pairs)
    named = {name.lower() for name, _ in plain.headers.pairs}
    assert locations == bool(named & {b"location", b"content-location", b"refresh"})
    assert head.headers.pairs == received, "the response head must not change"
