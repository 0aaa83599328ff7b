"""
RESP2, the Redis wire format, without I/O: commands encoded, replies parsed.

:func:`encode_command` makes the bytes of a command; :class:`RespParser` is fed
the bytes of the reply stream as they come and returns each reply completed,
with a bound on what it buffers.
"""

from __future__ import annotations

from typing import TypeAlias

from edgeproxy.store import StoreUnavailable

MAX_REPLY_SIZE = 1024 * 1024
"""The most bytes a reply may take; replies here are a few dozen bytes."""


class RedisReplyError(StoreUnavailable):
    """Redis answered a command with an error reply (``-ERR ...``)."""


class RespError(StoreUnavailable):
    """The bytes from the server are not RESP2, or are too large."""


Reply: TypeAlias = "bytes | int | list[Reply] | RedisReplyError | None"
"""A RESP2 reply: simple or bulk string, integer, nil, array, or error."""


def encode_command(*arguments: bytes | str | int) -> bytes:
    """A command as a RESP2 array of bulk strings; ``str`` is UTF-8."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        if isinstance(argument, int):
            data = b"%d" % argument
        elif isinstance(argument, str):
            data = argument.encode("utf-8")
        else:
            data = argument
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespParser:
    """Turns the bytes of a RESP2 reply stream into replies, fed piece by piece."""

    def __init__(self, max_size: int = MAX_REPLY_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    def feed(self, data: bytes) -> list[Reply]:
        """
        Add ``data``; return the replies it completed, in order.

        :raises RespError: for bytes that are not RESP2, or a reply larger
            than the bound.
        """
        self._buffer += data
        replies: list[Reply] = []
        position = 0
        while position < len(self._buffer):
            parsed = self._parse(position)
            if parsed is None:
                break
            reply, position = parsed
            replies.append(reply)
        del self._buffer[:position]
        if len(self._buffer) > self._max_size:
            raise RespError("a reply from Redis exceeds the size bound")
        return replies

    def _line(self, position: int) -> tuple[bytes, int] | None:
        end = self._buffer.find(b"\r\n", position)
        if end < 0:
            return None
        return bytes(self._buffer[position:end]), end + 2

    def _parse(self, position: int) -> tuple[Reply, int] | None:
        line = self._line(position + 1)
        if line is None:
            return None
        text, after = line
        kind = bytes(self._buffer[position : position + 1])
        if kind == b"+":
            return text, after
        if kind == b"-":
            return RedisReplyError(text.decode("utf-8", "replace")), after
        if kind in (b":", b"$", b"*"):
            try:
                number = int(text)
            except ValueError:
                raise RespError(f"bad length or integer {text!r}") from None
            if kind == b":":
                return number, after
            if number < -1:
                raise RespError(f"bad length {number}")
            if number == -1:
                return None, after
            if kind == b"$":
                return self._bulk(number, after)
            return self._array(number, after)
        raise RespError(f"unknown reply type {kind!r}")

    def _bulk(self, length: int, position: int) -> tuple[Reply, int] | None:
        if length > self._max_size:
            raise RespError("a reply from Redis exceeds the size bound")
        end = position + length
        if len(self._buffer) < end + 2:
            return None
        if self._buffer[end : end + 2] != b"\r\n":
            raise RespError("a bulk string does not end with CRLF")
        return bytes(self._buffer[position:end]), end + 2

    def _array(self, count: int, position: int) -> tuple[Reply, int] | None:
        items: list[Reply] = []
        for _ in range(count):
            parsed = self._parse(position) if position < len(self._buffer) else None
            if parsed is None:
                return None
            item, position = parsed
            items.append(item)
        return items, position
