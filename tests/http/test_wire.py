"""Tests for edgeproxy.http.wire: heads as bytes."""

from __future__ import annotations

from edgeproxy.core.message import Headers, RequestHead, ResponseHead
from edgeproxy.http.wire import reason_phrase, request_bytes, response_bytes


def test_response_bytes() -> None:
    """A status line, fields in order with repeats, a blank line, the body."""
    head = ResponseHead(
        404, b"Gone Fishing", Headers([(b"A", b"1"), (b"a", b"2")]), b"1.0"
    )
    assert response_bytes(head, b"body") == (
        b"HTTP/1.1 404 Gone Fishing\r\nA: 1\r\na: 2\r\n\r\nbody"
    )


def test_missing_reason_gets_the_standard_phrase() -> None:
    """An upstream's empty reason phrase is replaced, an unknown status has none."""
    unavailable = b"HTTP/1.1 503 Service Unavailable\r\n\r\n"
    assert response_bytes(ResponseHead(503)) == unavailable
    assert response_bytes(ResponseHead(599)) == b"HTTP/1.1 599 \r\n\r\n"
    assert reason_phrase(200) == b"OK"


def test_request_bytes_always_speak_http11() -> None:
    """Requests go upstream as HTTP/1.1 whatever the client spoke."""
    head = RequestHead(b"GET", b"/a?b", Headers([(b"Host", b"h")]), b"1.0")
    assert request_bytes(head) == b"GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n"
