"""Tests for edgeproxy.http.message_reader: llhttp with limits."""

from __future__ import annotations

import httptools
import pytest

from edgeproxy.http.message_reader import MessageError, MessageReader


class Recorder:
    """Keeps the reader's events."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.reader: MessageReader[httptools.HttpRequestParser] | None = None

    def begun(self) -> None:
        self.events.append("begun")

    def head(self) -> None:
        assert self.reader is not None
        self.events.append(
            (self.reader.target, self.reader.take_headers(), self.reader.in_head)
        )

    def body(self, data: bytes) -> None:
        self.events.append(data)

    def complete(self) -> None:
        self.events.append("complete")


def make_reader(
    max_head_size: int = 200, max_field_count: int = 5, max_target_length: int = 50
) -> tuple[MessageReader[httptools.HttpRequestParser], Recorder]:
    recorder = Recorder()
    reader = MessageReader(
        httptools.HttpRequestParser,
        recorder.begun,
        recorder.head,
        recorder.body,
        recorder.complete,
        max_head_size=max_head_size,
        max_field_count=max_field_count,
        max_target_length=max_target_length,
    )
    recorder.reader = reader
    return reader, recorder


def test_events_of_a_chunked_request() -> None:
    """Head, body pieces and end arrive in order; trailer fields are dropped."""
    reader, recorder = make_reader()
    reader.feed(b"POST /up HTTP/1.1\r\nHost: h \r\nTransfer-Encoding: chunked\r\n\r\n")
    reader.feed(b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert recorder.events == [
        "begun",
        (b"/up", [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")], False),
        b"abc",
        "complete",
    ]


def test_target_split_across_reads_is_joined() -> None:
    """A target that spans reads is one target."""
    reader, recorder = make_reader()
    reader.feed(b"GET /ab")
    reader.feed(b"cd HTTP/1.1\r\nHost: h\r\n\r\n")
    assert recorder.events[1] == (b"/abcd", [(b"Host", b"h")], False)


@pytest.mark.parametrize(
    ("reads", "status"),
    [
        ([b"GET /" + b"a" * 60 + b" HTTP/1.1\r\n"], 414),
        ([b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 6 + b"\r\n"], 431),
        ([b"GET / HTTP/1.1\r\nA: " + b"b" * 200 + b"\r\n\r\n"], 431),
        # A field that never ends, one byte per read: caught by counting reads.
        ([b"GET / HTTP/1.1\r\nA: ", *[b"b"] * 201], 431),
    ],
)
def test_head_limits(reads: list[bytes], status: int) -> None:
    """Over-long targets and over-large or over-full heads are refused."""
    reader, recorder = make_reader()
    with pytest.raises(MessageError) as raised:
        for data in reads:
            reader.feed(data)
    assert raised.value.status == status
    assert len(recorder.events) <= 1


def test_endless_trailer_is_refused() -> None:
    """A trailer section that keeps coming is bounded like a head."""
    reader, _ = make_reader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    reader.feed(b"0\r\nX: ")
    with pytest.raises(MessageError) as raised:
        for _ in range(201):
            reader.feed(b"t")
    assert raised.value.status == 431


def test_many_trailer_fields_are_refused() -> None:
    """A trailer section has the head's field-count limit."""
    reader, _ = make_reader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(MessageError):
        reader.feed(b"0\r\n" + b"X: t\r\n" * 6 + b"\r\n")


def test_a_slow_chunked_body_is_not_a_trailer() -> None:
    """Chunk data arriving a byte at a time is body, not trailer."""
    reader, recorder = make_reader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    reader.feed(b"1f4\r\n")
    for _ in range(500):
        reader.feed(b"x")
    reader.feed(b"\r\n0\r\n\r\n")
    assert recorder.events[-1] == "complete"
    assert b"".join(e for e in recorder.events if isinstance(e, bytes)) == b"x" * 500


def test_what_follows_a_trailer_is_not_a_trailer() -> None:
    """The trailer watch ends with its section: line ends after it are not counted."""
    reader, recorder = make_reader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    reader.feed(b"0\r\nX: t\r\n\r\n")
    for _ in range(200):
        reader.feed(b"\r\n")
    reader.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert recorder.events.count("complete") == 2


def test_callback_refusal_surfaces_from_feed() -> None:
    """An owner callback's MessageError stops the parser and reaches the caller."""
    recorder = Recorder()

    def refuse() -> None:
        raise MessageError(405, "no")

    reader = MessageReader(
        httptools.HttpRequestParser,
        recorder.begun,
        refuse,
        recorder.body,
        recorder.complete,
        max_head_size=100,
        max_field_count=5,
    )
    with pytest.raises(MessageError) as raised:
        reader.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (raised.value.status, raised.value.reason) == (405, "no")


def test_restart_forgets_the_message_in_progress() -> None:
    """After restart the next bytes start a fresh message."""
    reader, recorder = make_reader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n")
    reader.restart()
    reader.feed(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert recorder.events[-2:] == [(b"/next", [(b"Host", b"h")], False), "complete"]


def test_each_message_has_its_own_header_list() -> None:
    """Without begun, heads still come; each head's fields are a new list."""
    heads: list[list[tuple[bytes, bytes]]] = []
    reader: MessageReader[httptools.HttpRequestParser] = MessageReader(
        httptools.HttpRequestParser,
        None,
        lambda: heads.append(reader.headers),
        lambda data: None,
        lambda: None,
        max_head_size=200,
        max_field_count=5,
    )
    reader.feed(
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\nX: 1\r\n\r\n"
    )
    assert heads == [[(b"Host", b"a")], [(b"Host", b"b"), (b"X", b"1")]]
