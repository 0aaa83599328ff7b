"""Tests for edgeproxy.core.framing: the framing values and the request side."""

from __future__ import annotations

import pytest

from edgeproxy.core.framing import (
    CHUNKED,
    LAST_CHUNK,
    NO_BODY,
    UNTIL_CLOSE,
    BodyFraming,
    BodyKind,
    FramingError,
    chunk,
    connection_persists,
    connection_tokens,
    fixed_length,
    frame_request,
    inspect_request,
)
from edgeproxy.core.message import Headers, RequestHead

HOST = (b"Host", b"example.com")


def request(*fields: tuple[bytes, bytes], version: bytes = b"1.1") -> RequestHead:
    return RequestHead(b"POST", b"/", Headers([HOST, *fields]), version)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ((), NO_BODY),
        (((b"Content-Length", b"0"),), fixed_length(0)),
        (((b"Content-Length", b"12"),), fixed_length(12)),
        (((b"content-length", b" 12 "),), fixed_length(12)),
        (((b"Content-Length", b"12"), (b"Content-Length", b"12")), fixed_length(12)),
        (((b"Content-Length", b"12, 12"),), fixed_length(12)),
        (((b"Content-Length", b"012"),), fixed_length(12)),
        (((b"Content-Length", b"0" * 30 + b"12"),), fixed_length(12)),
        (((b"Transfer-Encoding", b"chunked"),), CHUNKED),
        (((b"transfer-encoding", b" Chunked "),), CHUNKED),
    ],
)
def test_request_body_framing(
    fields: tuple[tuple[bytes, bytes], ...], expected: BodyFraming
) -> None:
    """A request's body is delimited by its Content-Length or chunked coding."""
    assert inspect_request(request(*fields)).body == expected


@pytest.mark.parametrize(
    ("fields", "version", "reason"),
    [
        (
            ((b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")),
            b"1.1",
            "Content-Length together with Transfer-Encoding",
        ),
        (
            ((b"Content-Length", b"3"), (b"Content-Length", b"4")),
            b"1.1",
            "differing Content-Length values",
        ),
        (((b"Content-Length", b"3, 4"),), b"1.1", "differing Content-Length values"),
        (((b"Content-Length", b"+3"),), b"1.1", "malformed Content-Length"),
        (((b"Content-Length", b"-3"),), b"1.1", "malformed Content-Length"),
        (((b"Content-Length", b"0x10"),), b"1.1", "malformed Content-Length"),
        (((b"Content-Length", b""),), b"1.1", "malformed Content-Length"),
        (((b"Content-Length", b"1" * 19),), b"1.1", "malformed Content-Length"),
        (
            ((b"Transfer-Encoding", b"gzip"),),
            b"1.1",
            "Transfer-Encoding other than chunked",
        ),
        (
            ((b"Transfer-Encoding", b"chunked, gzip"),),
            b"1.1",
            "Transfer-Encoding other than chunked",
        ),
        (
            ((b"Transfer-Encoding", b"gzip, chunked"),),
            b"1.1",
            "Transfer-Encoding other than chunked",
        ),
        (
            ((b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")),
            b"1.1",
            "Transfer-Encoding other than chunked",
        ),
        (
            ((b"Transfer-Encoding", b""),),
            b"1.1",
            "Transfer-Encoding other than chunked",
        ),
        (
            ((b"Transfer-Encoding", b"chunked"),),
            b"1.0",
            "Transfer-Encoding in an HTTP/1.0 request",
        ),
        ((HOST,), b"1.1", "an HTTP/1.1 request needs exactly one Host field"),
    ],
)
def test_ambiguous_request_framing_is_refused(
    fields: tuple[tuple[bytes, bytes], ...], version: bytes, reason: str
) -> None:
    """Heads that could be read two ways are refused with a 400 and a reason."""
    with pytest.raises(FramingError) as raised:
        inspect_request(request(*fields, version=version))
    assert (raised.value.status, raised.value.reason) == (400, reason)


@pytest.mark.parametrize(
    ("version", "host_count", "refused"),
    [(b"1.1", 0, True), (b"1.1", 1, False), (b"1.0", 0, False), (b"1.0", 2, True)],
)
def test_host_field_count(version: bytes, host_count: int, refused: bool) -> None:
    """HTTP/1.1 needs exactly one Host; no version may carry two (RFC 9112 3.2)."""
    head = RequestHead(b"GET", b"/", Headers([HOST] * host_count), version)
    if refused:
        with pytest.raises(FramingError):
            inspect_request(head)
    else:
        assert inspect_request(head).body == NO_BODY


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", (), True),
        (b"1.1", ((b"Connection", b"close"),), False),
        (b"1.1", ((b"Connection", b"Keep-Alive, CLOSE"),), False),
        (b"1.1", ((b"Connection", b"upgrade"),), True),
        (b"1.0", (), False),
        (b"1.0", ((b"Connection", b"keep-alive"),), True),
        (b"1.0", ((b"connection", b"Keep-Alive"),), True),
    ],
)
def test_request_persistence(
    version: bytes, connection: tuple[tuple[bytes, bytes], ...], keep_alive: bool
) -> None:
    """HTTP/1.1 persists unless closed; HTTP/1.0 only with keep-alive."""
    assert inspect_request(request(*connection, version=version)).keep_alive is (
        keep_alive
    )
    assert connection_persists(version, Headers(connection)) is keep_alive


@pytest.mark.parametrize(
    ("version", "expect", "expects_continue"),
    [
        (b"1.1", b"100-continue", True),
        (b"1.1", b"100-Continue", True),
        (b"1.1", b"something-else", False),
        (b"1.0", b"100-continue", False),
    ],
)
def test_expect_continue(version: bytes, expect: bytes, expects_continue: bool) -> None:
    """Only an HTTP/1.1 client waits for 100 Continue (RFC 9110 10.1.1)."""
    head = request((b"Expect", expect), version=version)
    assert inspect_request(head).expects_continue is expects_continue


def test_connection_tokens() -> None:
    """Connection tokens are split, trimmed and lower-cased across fields."""
    headers = Headers([(b"Connection", b"Keep-Alive, Upgrade"), (b"connection", b"x")])
    assert connection_tokens(headers) == [b"keep-alive", b"upgrade", b"x"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (NO_BODY, []),
        (fixed_length(0), [(b"Content-Length", b"0")]),
        (fixed_length(42), [(b"Content-Length", b"42")]),
        (CHUNKED, [(b"Transfer-Encoding", b"chunked")]),
    ],
)
def test_frame_request(body: BodyFraming, expected: list[tuple[bytes, bytes]]) -> None:
    """The framing fields sent upstream are re-derived, never copied."""
    head = request(
        (b"Content-Length", b"7"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Other", b"kept"),
    )
    frame_request(head, body)
    assert head.headers.pairs == [HOST, (b"X-Other", b"kept"), *expected]


def test_frame_request_returns_the_connection_tokens() -> None:
    """frame_request finds the Connection tokens in the same pass."""
    head = request((b"Connection", b"Keep-Alive, Upgrade"), (b"X-Other", b"kept"))
    assert frame_request(head, NO_BODY) == [b"keep-alive", b"upgrade"]
    assert frame_request(request(), NO_BODY) == []


@pytest.mark.parametrize(
    "fields",
    [[HOST], [HOST, (b"Content-Length", b"7")]],
)
def test_frame_request_leaves_a_held_list_alone(
    fields: list[tuple[bytes, bytes]],
) -> None:
    """Changing the framing fields gives the head a new list; a held one is kept."""
    held = list(fields)
    head = RequestHead(b"POST", b"/", Headers())
    head.headers.pairs = held
    frame_request(head, fixed_length(3))
    assert held == fields
    assert head.headers.pairs == [HOST, (b"Content-Length", b"3")]


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"", b""),
        (b"a", b"1\r\na\r\n"),
        (b"x" * 26, b"1a\r\n" + b"x" * 26 + b"\r\n"),
    ],
)
def test_chunk(data: bytes, encoded: bytes) -> None:
    """Chunks are hex-sized; empty data never becomes the last chunk."""
    assert chunk(data) == encoded
    assert LAST_CHUNK == b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("framing", "has_body"),
    [
        (NO_BODY, False),
        (fixed_length(0), False),
        (fixed_length(1), True),
        (CHUNKED, True),
        (UNTIL_CLOSE, True),
    ],
)
def test_has_body(framing: BodyFraming, has_body: bool) -> None:
    """Only a framing that can carry bytes has a body."""
    assert framing.has_body is has_body
    assert (framing.kind is BodyKind.NONE) is (framing == NO_BODY)
