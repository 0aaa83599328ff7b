"""Tests for edgeproxy.core.caching.invalidation: what unsafe methods invalidate."""

from __future__ import annotations

import pytest

from edgeproxy.core.caching.invalidation import invalidated_keys
from edgeproxy.core.message import Headers, ResponseHead
from tests.core.caching.examples import (
    header_pairs,
    request_head,
)

TARGET = b"https://app.example/a"


@pytest.mark.parametrize(
    ("method", "status", "fields", "keys"),
    [
        pytest.param(b"POST", 200, "", [TARGET], id="POST"),
        pytest.param(b"DELETE", 204, "", [TARGET], id="DELETE"),
        pytest.param(b"PURGE", 302, "", [TARGET], id="unknown method is unsafe"),
        pytest.param(b"POST", 404, "", [], id="client error"),
        pytest.param(b"POST", 500, "", [], id="server error"),
        pytest.param(b"GET", 200, "", [], id="GET"),
        pytest.param(b"OPTIONS", 200, "", [], id="OPTIONS"),
        pytest.param(
            b"PUT", 201, "Location: /items/7#top | Content-Location: https://APP.example:443/a.json?x",
            [TARGET, b"https://app.example/items/7", b"https://app.example/a.json?x"],
            id="same-origin Location and Content-Location",
        ),
        pytest.param(
            b"POST", 303, "Location: b", [TARGET, b"https://app.example/b"],
            id="relative",
        ),
        pytest.param(
            b"POST", 200, "Location: https://other.example/a", [TARGET],
            id="other host",
        ),
        pytest.param(
            b"POST", 200, "Location: http://app.example/x", [TARGET], id="other scheme",
        ),
        pytest.param(
            b"POST", 200, "Location: https://app.example:8443/x", [TARGET],
            id="other port",
        ),
        pytest.param(
            b"POST", 200, "Content-Location: //evil.example/x", [TARGET],
            id="network-path",
        ),
        pytest.param(b"POST", 200, "Location: http://[bad", [TARGET], id="unparsable"),
        pytest.param(b"POST", 200, "Location: /a", [TARGET], id="no duplicates"),
    ],
)  # fmt: skip
def test_invalidated_keys(
    method: bytes, status: int, fields: str, keys: list[bytes]
) -> None:
    """RFC 9111 4.4: unsafe methods invalidate the target and same-origin locations."""
    response = ResponseHead(status, b"", Headers(header_pairs(fields)))
    request = request_head(method=method)
    assert invalidated_keys(request, response, b"https", b"app.example") == keys
