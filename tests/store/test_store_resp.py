"""Tests for edgeproxy.store.resp: the RESP2 wire format."""

from __future__ import annotations

import pytest

from edgeproxy.store.resp import RedisReplyError, RespError, RespParser, encode_command


def test_encode_command() -> None:
    """Commands are arrays of bulk strings; str is UTF-8, int is decimal."""
    assert encode_command("SET", b"k\r\n", 15, "é") == (
        b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n15\r\n$2\r\n\xc3\xa9\r\n"
    )


@pytest.mark.parametrize(
    ("data", "replies"),
    [
        (b"+OK\r\n", [b"OK"]),
        (b":42\r\n:-3\r\n", [42, -3]),
        (b"$5\r\nhe\r\nl\r\n", [b"he\r\nl"]),
        (b"$0\r\n\r\n", [b""]),
        (b"$-1\r\n*-1\r\n", [None, None]),
        (b"*2\r\n:1\r\n:250\r\n", [[1, 250]]),
        (b"*2\r\n*1\r\n+a\r\n$-1\r\n*0\r\n", [[[b"a"], None], []]),
    ],
)
def test_parser_replies(data: bytes, replies: list[object]) -> None:
    """Each RESP2 reply type parses, whole or fed one byte at a time."""
    assert RespParser().feed(data) == replies
    parser = RespParser()
    collected: list[object] = []
    for index in range(len(data)):
        collected += parser.feed(data[index : index + 1])
    assert collected == replies


def test_parser_error_reply_is_a_value() -> None:
    """An error reply comes out as a RedisReplyError carrying the message."""
    [reply] = RespParser().feed(b"-NOSCRIPT No matching script\r\n")
    assert isinstance(reply, RedisReplyError)
    assert str(reply) == "NOSCRIPT No matching script"


def test_parser_waits_for_a_whole_reply() -> None:
    """An incomplete array yields nothing until its last element arrives."""
    parser = RespParser()
    assert parser.feed(b"*2\r\n:1\r\n") == []
    assert parser.feed(b":2\r\n+next") == [[1, 2]]
    assert parser.feed(b"\r\n") == [b"next"]


@pytest.mark.parametrize(
    "data",
    [
        b"?what\r\n",
        b"$abc\r\n",
        b":1.5\r\n",
        b"$-2\r\n",
        b"$2\r\nabcd\r\n",
        b"$99999999\r\n",
    ],
)
def test_parser_rejects_bad_data(data: bytes) -> None:
    """Bytes that are not RESP2, or too large a reply, raise RespError."""
    with pytest.raises(RespError):
        RespParser(max_size=1024).feed(data)


def test_parser_bounds_an_unfinished_reply() -> None:
    """A reply that grows past the bound without ending is refused."""
    parser = RespParser(max_size=16)
    with pytest.raises(RespError):
        parser.feed(b"+" + b"x" * 32)
