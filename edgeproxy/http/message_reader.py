"""
Bounded reading of HTTP/1.x messages with httptools (llhttp, strict mode).

llhttp finds the framing and refuses malformed input; it has no size limits.
:class:`MessageReader` adds them: the request target, the head's size and field
count, and the trailer section of a chunked body.  A field that is still being
received is held inside httptools where no callback sees it, so the reader
counts every byte of a read that falls wholly inside a head (or a trailer
section): what is held can exceed the limit by at most the one read that started
the head.  A complete head is measured exactly only when the reads it came in
could exceed the limit, which keeps the usual one-read head cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import httptools

from edgeproxy.core.message import HeaderPair

Parser = TypeVar("Parser", httptools.HttpRequestParser, httptools.HttpResponseParser)

# Bytes a field line adds besides its name and value (": " and CRLF).
_FIELD_LINE_OVERHEAD = 4


class MessageError(Exception):
    """
    A message the reader (or its owner) refuses.

    :ivar status: what the peer is answered (400, 413, 414, 431, 505...).
    :ivar reason: a short reason for the log line and the error body.
    """

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


class MessageReader(Generic[Parser]):
    """
    Feeds bytes to one httptools parser and reports messages to its owner.

    The owner's callbacks run inside the parser: ``begun()`` at the start of
    a message (unless ``begun`` is ``None``), ``head()`` when the head is
    complete (read :attr:`target`, :attr:`reason`, :attr:`headers` and
    :attr:`parser` then), ``body(data)`` per piece of body, and
    ``complete()`` at its end.  A callback may raise
    :class:`MessageError` to stop the parser; :meth:`feed` then raises it.

    Trailer fields of a chunked body are counted against the head limits and
    dropped.

    :ivar parser: the httptools parser (for the method, status, version).
    :ivar headers: the fields of the current head, in a new list for each
        message (the owner may keep it).
    :ivar target: the request target of the current message.
    :ivar reason: the reason phrase of the current response.
    :ivar in_head: whether a head has begun and is not complete.
    :ivar on_message_complete: the owner's ``complete``, which httptools
        calls at the end of a message.
    """

    __slots__ = (
        "_begun",
        "_body",
        "_first_read_size",
        "_head",
        "_marks",
        "_max_field_count",
        "_max_head_size",
        "_max_target_length",
        "_new_parser",
        "_raw_size",
        "_read_marks",
        "_read_size",
        "_trailer_count",
        "_trailer_raw_size",
        "_trailer_size",
        "_watching_trailer",
        "headers",
        "in_head",
        "on_message_complete",
        "parser",
        "reason",
        "target",
    )

    def __init__(
        self,
        new_parser: Callable[[MessageReader[Parser]], Parser],
        begun: Callable[[], None] | None,
        head: Callable[[], None],
        body: Callable[[bytes], None],
        complete: Callable[[], None],
        *,
        max_head_size: int,
        max_field_count: int,
        max_target_length: int = 0,
    ) -> None:
        self._new_parser: Callable[[MessageReader[Parser]], Parser] = new_parser
        self._begun = begun
        self._head = head
        self._body = body
        # llhttp calls the owner at a message's end itself: nothing is left
        # to note here then (the trailer watch ends with on_chunk_complete,
        # which llhttp calls after the trailer section too).
        self.on_message_complete: Callable[[], None] = complete
        self._max_head_size = max_head_size
        self._max_field_count = max_field_count
        self._max_target_length = max_target_length
        self.headers: list[HeaderPair] = []
        self._first_read_size = 0
        self._raw_size = 0
        self._read_size = 0
        self._read_marks = 0
        self._marks = 0
        self._watching_trailer = False
        self._trailer_size = 0
        self._trailer_raw_size = 0
        self._trailer_count = 0
        self.in_head = False
        self.target = b""
        self.reason = b""
        self.parser: Parser = new_parser(self)

    def feed(self, data: bytes) -> None:
        """
        Parse ``data``, calling the owner back.

        :raises MessageError: a limit was passed, or a callback refused.
        :raises httptools.HttpParserUpgrade: the message switches protocols;
            its argument is the offset in ``data`` where the new protocol's
            bytes start.
        :raises httptools.HttpParserError: malformed input (or a callback
            failed unexpectedly: ``HttpParserCallbackError``, whose
            ``__context__`` is the callback's exception).
        """
        in_head = self.in_head
        in_trailer = self._watching_trailer
        self._read_marks = marks = self._marks
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            refusal = error.__context__
            if isinstance(refusal, MessageError):
                raise refusal from None
            raise
        if marks != self._marks:
            return
        # The whole read fell inside one head (or one trailer section).
        if in_head and self.in_head:
            self._raw_size += len(data)
            if self._raw_size > self._max_head_size:
                raise MessageError(431, "header section too large")
        elif in_trailer and self._watching_trailer:
            self._trailer_raw_size += len(data)
            self._check_trailer()

    def restart(self) -> None:
        """Forget any message in progress and parse the next bytes afresh."""
        self.parser = self._new_parser(self)
        self.in_head = False
        self._watching_trailer = False

    def take_headers(self) -> list[HeaderPair]:
        """The current head's fields (the list is the caller's from now on)."""
        headers = self.headers
        self.headers = []
        return headers

    # --- httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        """httptools: a message starts."""
        self._marks += 1
        self.headers = []
        self._first_read_size = self._read_size
        self._raw_size = 0
        self._trailer_count = 0
        self.in_head = True
        self.target = b""
        self.reason = b""
        if self._begun is not None:
            self._begun()

    def on_url(self, url: bytes) -> None:
        """httptools: (a piece of) the request target."""
        self.target += url
        if self._max_target_length and len(self.target) > self._max_target_length:
            raise MessageError(414, "request target too long")

    def on_status(self, reason: bytes) -> None:
        """httptools: (a piece of) the reason phrase."""
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: one complete field line (of the head or the trailer)."""
        if self.in_head:
            # llhttp strips leading whitespace only; a value never ends with OWS.
            self.headers.append((name, value.rstrip(b" \t")))
        else:
            self._trailer_count += 1
            self._trailer_size += len(name) + len(value) + _FIELD_LINE_OVERHEAD
            self._check_trailer()

    def on_headers_complete(self) -> None:
        """httptools: the head is complete."""
        self.in_head = False
        headers = self.headers
        if len(headers) > self._max_field_count:
            raise MessageError(431, "too many header fields")
        # The head is no larger than the reads it came in; only when those
        # could exceed the limit is it measured (most heads come in one read).
        bound = self._first_read_size + self._raw_size
        if self._marks == self._read_marks:
            bound += self._read_size
        if bound > self._max_head_size:
            size = len(self.target) + sum(
                len(name) + len(value) + _FIELD_LINE_OVERHEAD for name, value in headers
            )
            if size > self._max_head_size:
                raise MessageError(431, "header section too large")
        self._head()

    def on_body(self, data: bytes) -> None:
        """httptools: a piece of the body."""
        self._watching_trailer = False
        self._body(data)

    def on_chunk_header(self) -> None:
        """httptools: a chunk-size line was read (the last one opens the trailer)."""
        self._marks += 1
        self._watching_trailer = True
        self._trailer_size = 0
        self._trailer_raw_size = 0

    def on_chunk_complete(self) -> None:
        """httptools: a chunk (or the trailer section) ended."""
        self._watching_trailer = False

    def _check_trailer(self) -> None:
        if (
            self._trailer_size > self._max_head_size
            or self._trailer_raw_size > self._max_head_size
            or self._trailer_count > self._max_field_count
        ):
            raise MessageError(431, "trailer section too large")
