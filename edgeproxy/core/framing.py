"""
How HTTP/1.1 message bodies are delimited: the values, and the request side.

A proxy reads a body framed one way and may send it on framed another way: a
chunked upstream response goes to an HTTP/1.0 client delimited by closing the
connection.  So the framing of what arrives is decided from the received head
(:func:`inspect_request` here, :func:`~edgeproxy.core.response_framing.response_framing`
for responses) and the framing fields of what leaves are derived afresh
(:func:`frame_request`, :func:`~edgeproxy.core.response_framing.frame_response`):
``Content-Length`` and ``Transfer-Encoding`` are never copied from one side to
the other.

Anything that could let two parties disagree about where a request ends
(request smuggling) is refused with a :class:`FramingError`.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import NamedTuple

from edgeproxy.core.message import HeaderPair, Headers, RequestHead
from edgeproxy.errors import EdgeproxyError

MAX_LENGTH_DIGITS = 18
"""The most digits a length may have: longer is beyond any real body, and
refusing it keeps int() cheap."""

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_HOST = b"host"
_EXPECT = b"expect"
# The fields each pass looks at; any other field costs one lower() and one lookup.
_REQUEST_FIELDS = frozenset(
    (_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _HOST, _EXPECT)
)
_BODY_FIELDS = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING))

LAST_CHUNK = b"0\r\n\r\n"
"""The chunk that ends a chunked body (no trailer fields)."""


class FramingError(EdgeproxyError):
    """
    A message whose framing cannot be trusted or accepted.

    :ivar status: the status the peer gets (400 for a bad request, 413 for a
        body over the limit, 502 for an upstream response).
    :ivar reason: a short reason for the log line and the error body.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


class BodyKind(enum.Enum):
    """How a body is delimited."""

    NONE = "none"
    """No body at all (and no framing fields describe one)."""
    LENGTH = "length"
    """Exactly ``length`` bytes (``Content-Length``)."""
    CHUNKED = "chunked"
    """The chunked transfer coding."""
    UNTIL_CLOSE = "until-close"
    """Everything until the connection closes (responses only)."""


class BodyFraming(NamedTuple):
    """
    How one body is delimited on the wire (an immutable value).

    :ivar kind: the delimiting rule.
    :ivar length: the byte count, for :attr:`BodyKind.LENGTH` only.
    """

    kind: BodyKind
    length: int = 0

    @property
    def has_body(self) -> bool:
        """Whether any body bytes can follow the head."""
        if self.kind is BodyKind.LENGTH:
            return self.length > 0
        return self.kind is not BodyKind.NONE


NO_BODY = BodyFraming(BodyKind.NONE)
"""A message without a body."""
CHUNKED = BodyFraming(BodyKind.CHUNKED)
"""A chunked body."""
UNTIL_CLOSE = BodyFraming(BodyKind.UNTIL_CLOSE)
"""A body delimited by the connection closing."""
EMPTY_BODY = BodyFraming(BodyKind.LENGTH, 0)
"""An empty body stated as such (``Content-Length: 0``)."""


# Most bodies have one of a few lengths; a hit costs no Python call.
@lru_cache(maxsize=512)
def fixed_length(length: int) -> BodyFraming:
    """A body of exactly ``length`` bytes (``Content-Length: length``)."""
    return EMPTY_BODY if length == 0 else BodyFraming(BodyKind.LENGTH, length)


class RequestFraming(NamedTuple):
    """
    What a request head says about its body and its connection (a value).

    :ivar body: how the request body is delimited.
    :ivar keep_alive: whether the client wants the connection to persist.
    :ivar expects_continue: whether the client waits for ``100 Continue``
        before sending the body (HTTP/1.1 ``Expect: 100-continue``).
    """

    body: BodyFraming
    keep_alive: bool
    expects_continue: bool


def chunk(data: bytes) -> bytes:
    """Encode ``data`` as one chunk; empty data encodes to nothing."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def inspect_request(head: RequestHead) -> RequestFraming:
    """
    Decide a request's body framing and persistence, refusing ambiguous heads.

    One pass over the fields.  Refused with a :class:`FramingError` (status
    400): ``Content-Length`` together with ``Transfer-Encoding``; several
    differing ``Content-Length`` values (identical repeats are folded); a
    ``Content-Length`` that is not digits; a ``Transfer-Encoding`` other than
    ``chunked`` (whose final coding is not chunked, or which has other
    codings we could not pass on faithfully); ``Transfer-Encoding`` in an
    HTTP/1.0 request; an HTTP/1.1 request without exactly one ``Host``.
    """
    lengths: list[bytes] = []
    codings: list[bytes] = []
    connection: list[bytes] = []
    hosts = 0
    expects_continue = False
    for name, value in head.headers.pairs:
        key = name.lower()
        if key not in _REQUEST_FIELDS:
            continue
        if key == _HOST:
            hosts += 1
        elif key == _CONNECTION:
            connection.append(value)
        elif key == _CONTENT_LENGTH:
            lengths.append(value)
        elif key == _TRANSFER_ENCODING:
            codings.append(value)
        elif value.strip(b" \t").lower() == b"100-continue":
            expects_continue = True
    http11 = head.version == b"1.1"
    if hosts > 1 or (http11 and hosts == 0):
        raise FramingError("an HTTP/1.1 request needs exactly one Host field")
    if codings:
        if lengths:
            raise FramingError("Content-Length together with Transfer-Encoding")
        if not http11:
            raise FramingError("Transfer-Encoding in an HTTP/1.0 request")
        if field_tokens(codings) != [b"chunked"]:
            raise FramingError("Transfer-Encoding other than chunked")
        body = CHUNKED
    elif lengths:
        body = fixed_length(stated_length(lengths))
    else:
        body = NO_BODY
    keep_alive = persists_with(http11, connection) if connection else http11
    expects_continue = expects_continue and http11
    if body is NO_BODY and not expects_continue:
        return _PLAIN_PERSISTENT if keep_alive else _PLAIN_CLOSING
    return RequestFraming(body, keep_alive, expects_continue)


def connection_tokens(headers: Headers) -> list[bytes]:
    """The lower-cased tokens of a head's ``Connection`` fields, in order."""
    return field_tokens(headers.get_all(_CONNECTION))


def connection_persists(version: bytes, headers: Headers) -> bool:
    """
    Whether a message lets its connection persist after it.

    HTTP/1.1 persists unless ``Connection`` has ``close``; HTTP/1.0 only with
    ``Connection: keep-alive``.
    """
    return persists_with(version == b"1.1", headers.get_all(_CONNECTION))


def frame_request(head: RequestHead, body: BodyFraming) -> list[bytes]:
    """
    Rewrite a request head's framing fields for an HTTP/1.1 upstream.

    Any ``Content-Length`` and ``Transfer-Encoding`` are replaced by the ones
    ``body`` needs: ``Content-Length`` for a fixed length (``0`` included, so
    a ``POST`` with an empty body keeps saying so), ``Transfer-Encoding:
    chunked`` for a body of unknown length, nothing when there is no body.

    :return: the head's :func:`connection_tokens`, found in the same pass.
    """
    headers = head.headers
    pairs = headers.pairs
    kept: list[HeaderPair] | None = None
    connection: list[bytes] = []
    for index, pair in enumerate(pairs):
        key = pair[0].lower()
        if key in _BODY_FIELDS:
            if kept is None:
                kept = pairs[:index]
            continue
        if key == _CONNECTION:
            connection.append(pair[1])
        if kept is not None:
            kept.append(pair)
    if body.kind is not BodyKind.NONE:
        if kept is None:
            kept = pairs[:]
        if body.kind is BodyKind.LENGTH:
            kept.append((b"Content-Length", b"%d" % body.length))
        else:
            kept.append((b"Transfer-Encoding", b"chunked"))
    if kept is not None:
        # A new list: one that the caller may still hold is left as it was.
        headers.pairs = kept
    return field_tokens(connection) if connection else connection


def field_tokens(values: list[bytes]) -> list[bytes]:
    """The comma-separated tokens of field values, trimmed and lower-cased."""
    tokens = []
    for value in values:
        for part in value.split(b","):
            token = part.strip(b" \t")
            if token:
                tokens.append(token.lower())
    return tokens


_PLAIN_PERSISTENT = RequestFraming(NO_BODY, True, False)
_PLAIN_CLOSING = RequestFraming(NO_BODY, False, False)


def persists_with(http11: bool, connection: list[bytes]) -> bool:
    """
    Whether a connection persists, given the values of its ``Connection`` fields.

    :param http11: whether the message is HTTP/1.1 (which persists by default).
    """
    if not connection:
        return http11
    tokens = field_tokens(connection)
    if b"close" in tokens:
        return False
    return http11 or b"keep-alive" in tokens


def stated_length(values: list[bytes]) -> int:
    """The one length that (non-empty) ``Content-Length`` values state."""
    found = -1
    for value in values:
        for part in value.split(b","):
            digits = part.strip(b" \t")
            if not digits.isdigit() or len(digits.lstrip(b"0")) > MAX_LENGTH_DIGITS:
                raise FramingError("malformed Content-Length")
            length = int(digits)
            if found not in (-1, length):
                raise FramingError("differing Content-Length values")
            found = length
    return found
