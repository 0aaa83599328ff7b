"""Tests for edgeproxy.core.response_framing: response bodies and their framing."""

from __future__ import annotations

import pytest

from edgeproxy.core.framing import (
    CHUNKED,
    NO_BODY,
    UNTIL_CLOSE,
    BodyFraming,
    FramingError,
    connection_persists,
    fixed_length,
)
from edgeproxy.core.message import Headers, ResponseHead
from edgeproxy.core.response_framing import (
    UNFRAMED,
    frame_response,
    length_describes_representation,
    response_body_framing,
    response_framing,
)

HOST = (b"Host", b"example.com")


RESPONSE_BODIES = [
    (b"HEAD", 200, ((b"Content-Length", b"10"),), NO_BODY),
    (b"GET", 100, (), NO_BODY),
    (b"GET", 101, (), NO_BODY),
    (b"GET", 204, ((b"Content-Length", b"10"),), NO_BODY),
    (b"GET", 304, ((b"Transfer-Encoding", b"chunked"),), NO_BODY),
    (b"GET", 200, ((b"Content-Length", b"10"),), fixed_length(10)),
    (b"GET", 200, ((b"Content-Length", b"0"),), fixed_length(0)),
    (b"GET", 200, ((b"Content-Length", b"007"),), fixed_length(7)),
    (b"GET", 200, ((b"Content-Length", b"5, 5"),), fixed_length(5)),
    (b"GET", 200, ((b"Content-Length", b"0" * 20 + b"9"),), fixed_length(9)),
    (b"GET", 200, ((b"Transfer-Encoding", b"chunked"),), CHUNKED),
    (b"GET", 200, (), UNTIL_CLOSE),
    (b"POST", 500, (), UNTIL_CLOSE),
]
BAD_RESPONSE_FIELDS = [
    ((b"Content-Length", b"1"), (b"Transfer-Encoding", b"chunked")),
    ((b"Content-Length", b"1"), (b"Content-Length", b"2")),
    ((b"Content-Length", b"x"),),
    ((b"Content-Length", b"-1"),),
    ((b"Content-Length", b"9" * 19),),
    ((b"Transfer-Encoding", b"gzip"),),
    ((b"Transfer-Encoding", b"gzip, chunked"),),
]


@pytest.mark.parametrize(("method", "status", "fields", "expected"), RESPONSE_BODIES)
def test_response_body_framing(
    method: bytes,
    status: int,
    fields: tuple[tuple[bytes, bytes], ...],
    expected: BodyFraming,
) -> None:
    """Response bodies follow RFC 9112 6.3, HEAD and 1xx/204/304 having none."""
    assert response_body_framing(method, status, Headers(fields)) == expected


@pytest.mark.parametrize("fields", BAD_RESPONSE_FIELDS)
def test_bad_response_framing_is_a_bad_gateway(
    fields: tuple[tuple[bytes, bytes], ...],
) -> None:
    """An upstream response with unusable framing is refused with a 502."""
    with pytest.raises(FramingError) as raised:
        response_body_framing(b"GET", 200, Headers(fields))
    assert raised.value.status == 502


@pytest.mark.parametrize(("method", "status", "fields", "expected"), RESPONSE_BODIES)
def test_response_framing_body(
    method: bytes,
    status: int,
    fields: tuple[tuple[bytes, bytes], ...],
    expected: BodyFraming,
) -> None:
    """The one-pass response_framing delimits bodies as response_body_framing does."""
    framing, _ = response_framing(method, status, b"1.1", Headers(fields))
    assert framing == expected


@pytest.mark.parametrize("fields", BAD_RESPONSE_FIELDS)
def test_response_framing_refuses_what_response_body_framing_refuses(
    fields: tuple[tuple[bytes, bytes], ...],
) -> None:
    """The one-pass response_framing refuses unusable framing with a 502 too."""
    with pytest.raises(FramingError) as raised:
        response_framing(b"GET", 200, b"1.1", Headers(fields))
    assert raised.value.status == 502


@pytest.mark.parametrize(
    ("method", "status", "version", "connection", "persists"),
    [
        (b"GET", 200, b"1.1", (), True),
        (b"GET", 200, b"1.1", (b"close",), False),
        (b"GET", 200, b"1.1", (b"Keep-Alive", b"x, Close"), False),
        (b"GET", 200, b"1.0", (), False),
        (b"GET", 200, b"1.0", (b"keep-alive",), True),
        (b"HEAD", 200, b"1.1", (b"close",), False),
        (b"GET", 204, b"1.0", (b"Keep-Alive",), True),
        (b"GET", 200, b"1.0", (b"CLOSE",), False),
        (b"GET", 200, b"1.0", (b"keep-alive, Upgrade",), True),
        (b"GET", 200, b"1.1", (b"upgrade",), True),
        (b"GET", 200, b"1.0", (b"upgrade",), False),
    ],
)
def test_response_framing_persistence(
    method: bytes,
    status: int,
    version: bytes,
    connection: tuple[bytes, ...],
    persists: bool,
) -> None:
    """response_framing says whether the response lets its connection persist."""
    fields = [(b"Content-Length", b"0")]
    fields += [(b"Connection", value) for value in connection]
    headers = Headers(fields)
    assert response_framing(method, status, version, headers)[1] is persists
    assert connection_persists(version, headers) is persists


def test_frame_response_leaves_a_held_list_alone() -> None:
    """A response head's own list (a cached one, shared) is never changed."""
    for fields in ([HOST], [HOST, (b"Content-Length", b"7")]):
        held = list(fields)
        head = ResponseHead(200, b"OK", Headers())
        head.headers.pairs = held
        frame_response(head, b"GET", b"1.1", fixed_length(3), keep_alive=False)
        assert held == fields
        assert head.headers.pairs == [
            HOST,
            (b"Content-Length", b"3"),
            (b"Connection", b"close"),
        ]


@pytest.mark.parametrize(
    ("has_date", "has_length", "added"),
    [
        (True, False, [(b"Content-Length", b"3")]),
        (False, False, [(b"Content-Length", b"3"), (b"Date", b"now")]),
    ],
)
def test_frame_response_of_unframed_fields(
    has_date: bool, has_length: bool, added: list[tuple[bytes, bytes]]
) -> None:
    """With unframed=, the head's own list is only extended, as the note says."""
    fields = [HOST, (b"Date", b"then")] if has_date else [HOST]
    held = list(fields)
    head = ResponseHead(200, b"OK", Headers())
    head.headers.pairs = held
    sent = frame_response(
        head,
        b"GET",
        b"1.1",
        fixed_length(3),
        keep_alive=True,
        date=b"now",
        unframed=UNFRAMED[has_date][has_length],
    )
    assert sent == (fixed_length(3), True)
    assert head.headers.pairs is held
    assert held == [*fields, *added]


@pytest.mark.parametrize(
    ("method", "status", "kept"),
    [
        (b"HEAD", 200, True),
        (b"GET", 304, True),
        (b"HEAD", 304, True),
        (b"GET", 200, False),
        (b"HEAD", 204, False),
        (b"HEAD", 101, False),
        (b"POST", 404, False),
    ],
)
def test_length_describes_representation(
    method: bytes, status: int, kept: bool
) -> None:
    """Only HEAD and 304 answers keep the Content-Length they came with."""
    assert length_describes_representation(method, status) is kept


_RECEIVED = [
    (b"Content-Length", b"99"),
    (b"Transfer-Encoding", b"chunked"),
    (b"Connection", b"keep-alive"),
    (b"Date", b"Mon"),
]
_DATE = (b"Date", b"Mon")


@pytest.mark.parametrize(
    ("message", "body", "expected"),
    [
        (
            (b"GET", 200, b"1.1"),
            fixed_length(5),
            (fixed_length(5), [_DATE, (b"Content-Length", b"5")], True),
        ),
        (
            (b"GET", 200, b"1.1"),
            CHUNKED,
            (CHUNKED, [_DATE, (b"Transfer-Encoding", b"chunked")], True),
        ),
        (
            (b"GET", 200, b"1.1"),
            UNTIL_CLOSE,
            (CHUNKED, [_DATE, (b"Transfer-Encoding", b"chunked")], True),
        ),
        (
            (b"GET", 200, b"1.0"),
            CHUNKED,
            (UNTIL_CLOSE, [_DATE, (b"Connection", b"close")], False),
        ),
        (
            (b"GET", 200, b"1.0"),
            fixed_length(5),
            (
                fixed_length(5),
                [_DATE, (b"Content-Length", b"5"), (b"Connection", b"keep-alive")],
                True,
            ),
        ),
        (
            (b"GET", 200, b"1.1"),
            NO_BODY,
            (fixed_length(0), [_DATE, (b"Content-Length", b"0")], True),
        ),
        (
            (b"HEAD", 200, b"1.1"),
            NO_BODY,
            (NO_BODY, [(b"Content-Length", b"99"), _DATE], True),
        ),
        (
            (b"GET", 304, b"1.1"),
            NO_BODY,
            (NO_BODY, [(b"Content-Length", b"99"), _DATE], True),
        ),
        ((b"GET", 204, b"1.1"), NO_BODY, (NO_BODY, [_DATE], True)),
        ((b"GET", 204, b"1.1"), fixed_length(3), (NO_BODY, [_DATE], True)),
    ],
)
def test_frame_response(
    message: tuple[bytes, int, bytes],
    body: BodyFraming,
    expected: tuple[BodyFraming, list[tuple[bytes, bytes]], bool],
) -> None:
    """Framing fields to the client match how the body is actually sent."""
    method, status, version = message
    sent, fields, keep_alive = expected
    head = ResponseHead(status, headers=Headers(_RECEIVED))
    result = frame_response(head, method, version, body, keep_alive=True, date=b"now")
    assert result == (sent, keep_alive)
    assert head.headers.pairs == fields


@pytest.mark.parametrize(
    ("fields", "keep_alive", "expected"),
    [
        ([], False, [(b"Date", b"now"), (b"Connection", b"close")]),
        (
            [(b"Connection", b"close")],
            True,
            [(b"Date", b"now"), (b"Connection", b"close")],
        ),
        ([(b"Date", b"then")], True, [(b"Date", b"then")]),
    ],
)
def test_frame_response_connection_and_date(
    fields: list[tuple[bytes, bytes]],
    keep_alive: bool,
    expected: list[tuple[bytes, bytes]],
) -> None:
    """A close from either side is announced; Date is added only when missing."""
    head = ResponseHead(200, headers=Headers(fields))
    sent, persists = frame_response(
        head, b"HEAD", b"1.1", NO_BODY, keep_alive=keep_alive, date=b"now"
    )
    assert persists is (expected[-1] != (b"Connection", b"close"))
    assert head.headers.pairs == expected
    assert sent == NO_BODY


@pytest.mark.parametrize(
    ("status", "fields", "expected"),
    [
        (200, [], [(b"Content-Length", b"4")]),
        (200, [(b"Content-Length", b"9")], [(b"Content-Length", b"9")]),
        (204, [], []),
        (304, [], []),
    ],
)
def test_local_head_response_states_the_length(
    status: int,
    fields: list[tuple[bytes, bytes]],
    expected: list[tuple[bytes, bytes]],
) -> None:
    """A HEAD answered with a known body length says it, without the body."""
    head = ResponseHead(status, headers=Headers(fields))
    sent, _ = frame_response(head, b"HEAD", b"1.1", fixed_length(4), keep_alive=True)
    assert sent == NO_BODY
    assert head.headers.pairs == expected
