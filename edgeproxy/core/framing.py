"""
How HTTP/1.1 message bodies are delimited, and the framing fields each side gets.

A proxy reads a body framed one way and may send it on framed another way: a
chunked upstream response goes to an HTTP/1.0 client delimited by closing the
connection.  So the framing of what arrives is decided here from the received
head (:func:`inspect_request`, :func:`response_body_framing`) and the framing
fields of what leaves are derived afresh (:func:`frame_request`,
:func:`frame_response`): ``Content-Length`` and ``Transfer-Encoding`` are never
copied from one side to the other.

Anything that could let two parties disagree about where a request ends
(request smuggling) is refused with a :class:`FramingError`.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import NamedTuple

from edgeproxy.core.message import HeaderPair, Headers, RequestHead, ResponseHead
from edgeproxy.errors import EdgeproxyError

# Longer than this is beyond any real body; refusing it keeps int() cheap.
_MAX_LENGTH_DIGITS = 18

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_HOST = b"host"
_EXPECT = b"expect"
_DATE = b"date"
# The fields each pass looks at; any other field costs one lower() and one lookup.
_REQUEST_FIELDS = frozenset(
    (_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _HOST, _EXPECT)
)
_FRAMED_FIELDS = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _DATE))
_RESPONSE_FIELDS = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION))
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
_EMPTY = BodyFraming(BodyKind.LENGTH, 0)


# Most bodies have one of a few lengths; a hit costs no Python call.
@lru_cache(maxsize=512)
def fixed_length(length: int) -> BodyFraming:
    """A body of exactly ``length`` bytes (``Content-Length: length``)."""
    return _EMPTY if length == 0 else BodyFraming(BodyKind.LENGTH, length)


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
        if _tokens(codings) != [b"chunked"]:
            raise FramingError("Transfer-Encoding other than chunked")
        body = CHUNKED
    elif lengths:
        body = fixed_length(_content_length(lengths))
    else:
        body = NO_BODY
    keep_alive = _persists(http11, connection) if connection else http11
    expects_continue = expects_continue and http11
    if body is NO_BODY and not expects_continue:
        return _PLAIN_PERSISTENT if keep_alive else _PLAIN_CLOSING
    return RequestFraming(body, keep_alive, expects_continue)


def response_body_framing(
    request_method: bytes, status: int, headers: Headers
) -> BodyFraming:
    """
    Decide how a response body is delimited (RFC 9112, section 6.3).

    No body for a response to ``HEAD`` and for 1xx, 204 and 304; otherwise
    chunked, ``Content-Length``, or until the connection closes when the
    response has neither.  Refused with a :class:`FramingError` (status 502):
    both fields, differing or malformed lengths, and transfer codings other
    than ``chunked`` (they could not be passed on faithfully).
    """
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return NO_BODY
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for name, value in headers.pairs:
        key = name.lower()
        if key == _CONTENT_LENGTH:
            lengths.append(value)
        elif key == _TRANSFER_ENCODING:
            codings.append(value)
    return _response_body(lengths, codings)


def response_framing(
    request_method: bytes, status: int, version: bytes, headers: Headers
) -> tuple[BodyFraming, bool]:
    """
    :func:`response_body_framing` and :func:`connection_persists` in one pass.

    :return: how the body is delimited, and whether the response's own
        fields let its connection persist (``version`` is the response's).
    :raises FramingError: as :func:`response_body_framing` does.
    """
    lengths: list[bytes] = []
    codings: list[bytes] = []
    connection: list[bytes] = []
    for name, value in headers.pairs:
        key = name.lower()
        if key not in _RESPONSE_FIELDS:
            continue
        if key == _CONTENT_LENGTH:
            lengths.append(value)
        elif key == _TRANSFER_ENCODING:
            codings.append(value)
        else:
            connection.append(value)
    http11 = version == b"1.1"
    persists = http11
    if connection:
        # A lone "keep-alive" or "close" needs none of the general case's calls.
        token = connection[0].lower() if len(connection) == 1 else b""
        if token == b"keep-alive":
            persists = True
        elif token == b"close":
            persists = False
        else:
            persists = _persists(http11, connection)
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return NO_BODY, persists
    if len(lengths) == 1 and not codings:
        # The usual single plain length, without the calls of the general case.
        digits = lengths[0]
        if digits.isdigit() and len(digits) <= _MAX_LENGTH_DIGITS:
            return fixed_length(int(digits)), persists
    return _response_body(lengths, codings), persists


def _response_body(lengths: list[bytes], codings: list[bytes]) -> BodyFraming:
    """A response body's framing from its length and coding fields' values."""
    if codings:
        if lengths:
            raise FramingError("Content-Length together with Transfer-Encoding", 502)
        if _tokens(codings) != [b"chunked"]:
            raise FramingError("transfer coding other than chunked", 502)
        return CHUNKED
    if lengths:
        try:
            return fixed_length(_content_length(lengths))
        except FramingError as error:
            raise FramingError(error.reason, 502) from None
    return UNTIL_CLOSE


def connection_tokens(headers: Headers) -> list[bytes]:
    """The lower-cased tokens of a head's ``Connection`` fields, in order."""
    return _tokens(headers.get_all(_CONNECTION))


def connection_persists(version: bytes, headers: Headers) -> bool:
    """
    Whether a message lets its connection persist after it.

    HTTP/1.1 persists unless ``Connection`` has ``close``; HTTP/1.0 only with
    ``Connection: keep-alive``.
    """
    return _persists(version == b"1.1", headers.get_all(_CONNECTION))


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
    return _tokens(connection) if connection else connection


class UnframedFields(NamedTuple):
    """
    What is left in a response head that a pass stripped of its framing fields.

    Such a head has no ``Transfer-Encoding`` or ``Connection`` field, and a
    ``Content-Length`` only where :func:`length_describes_representation`;
    :func:`frame_response` given this only adds fields to it.

    :ivar has_date: whether a ``Date`` field is among its fields.
    :ivar has_length: whether a ``Content-Length`` field was kept.
    """

    has_date: bool
    has_length: bool


UNFRAMED = (
    (UnframedFields(False, False), UnframedFields(False, True)),
    (UnframedFields(True, False), UnframedFields(True, True)),
)
"""The four :class:`UnframedFields`, as ``UNFRAMED[has_date][has_length]``."""


def length_describes_representation(request_method: bytes, status: int) -> bool:
    """
    Whether a response's ``Content-Length`` goes to the client as it is.

    So for a response without a body whose length field describes the
    representation instead: the answer to ``HEAD`` and a 304 (RFC 9110 8.6).
    """
    return (
        status >= 200 and status != 204 and (request_method == b"HEAD" or status == 304)
    )


def frame_response(
    head: ResponseHead,
    request_method: bytes,
    client_version: bytes,
    body: BodyFraming,
    *,
    keep_alive: bool,
    date: bytes = b"",
    unframed: UnframedFields | None = None,
) -> tuple[BodyFraming, bool]:
    """
    Rewrite a response head's framing fields for the client.

    :param body: how the body that will be sent is delimited where it comes
        from (the upstream's framing, or a fixed length for a local answer).
    :param keep_alive: whether the connection may persist as far as the
        request and the server are concerned.
    :param date: an HTTP-date added as ``Date`` when the head has none.
    :param unframed: the head's fields were stripped of framing fields
        already (:func:`~edgeproxy.core.forwarding.client_response_fields`
        does it in its pass) and hold what this says: they are not looked at
        again, and the framing fields are added to the head's own list.
    :return: how the body goes to the client, and whether the connection
        persists after it.

    The head loses its ``Content-Length``, ``Transfer-Encoding`` and
    ``Connection`` fields and gets the ones that match what is sent: a body
    of unknown length is chunked to an HTTP/1.1 client and delimited by
    closing the connection to an HTTP/1.0 client.  A response without a
    body (to ``HEAD``; 1xx, 204, 304) keeps the ``Content-Length`` it came
    with for ``HEAD`` and 304, where it describes the representation (a
    ``HEAD`` without one gets ``body``'s length, if known).  A
    ``close`` token in the head's ``Connection`` field closes the connection.
    """
    status = head.status
    no_body = request_method == b"HEAD" or status < 200 or status in (204, 304)
    keep_length = no_body and length_describes_representation(request_method, status)
    received = head.headers.pairs
    pairs: list[HeaderPair] | None = None
    if unframed is not None:
        pairs = received
        has_date, has_length = unframed
    else:
        # The fields are copied from the first one dropped on (or all of them
        # at the end): the head's own list may be shared (a cached response's).
        has_date = has_length = False
        for index, pair in enumerate(received):
            key = pair[0].lower()
            if key not in _FRAMED_FIELDS:
                if pairs is not None:
                    pairs.append(pair)
            elif key == _DATE or (key == _CONTENT_LENGTH and keep_length):
                has_date = has_date or key == _DATE
                has_length = has_length or key == _CONTENT_LENGTH
                if pairs is not None:
                    pairs.append(pair)
            else:
                if key == _CONNECTION and b"close" in _tokens([pair[1]]):
                    keep_alive = False
                if pairs is None:
                    pairs = received[:index]
        if pairs is None:
            pairs = received[:]
    if no_body:
        sent = NO_BODY
        # A HEAD answered here states the length a GET would get.
        if keep_length and status != 304 and not has_length and body.length:
            pairs.append((b"Content-Length", b"%d" % body.length))
    elif body.kind is BodyKind.LENGTH:
        sent = body
    elif body.kind is BodyKind.NONE:
        sent = _EMPTY
    elif client_version == b"1.1":
        sent = CHUNKED
    else:
        sent = UNTIL_CLOSE
        keep_alive = False
    if sent.kind is BodyKind.LENGTH:
        pairs.append((b"Content-Length", b"%d" % sent.length))
    elif sent.kind is BodyKind.CHUNKED:
        pairs.append((b"Transfer-Encoding", b"chunked"))
    if date and not has_date:
        pairs.append((b"Date", date))
    if not keep_alive:
        pairs.append((b"Connection", b"close"))
    elif client_version != b"1.1":
        pairs.append((b"Connection", b"keep-alive"))
    head.headers.pairs = pairs
    return sent, keep_alive


def _tokens(values: list[bytes]) -> list[bytes]:
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


def _persists(http11: bool, connection: list[bytes]) -> bool:
    if not connection:
        return http11
    tokens = _tokens(connection)
    if b"close" in tokens:
        return False
    return http11 or b"keep-alive" in tokens


def _content_length(values: list[bytes]) -> int:
    """The one length that (non-empty) ``Content-Length`` values state."""
    found = -1
    for value in values:
        for part in value.split(b","):
            digits = part.strip(b" \t")
            if not digits.isdigit() or len(digits.lstrip(b"0")) > _MAX_LENGTH_DIGITS:
                raise FramingError("malformed Content-Length")
            length = int(digits)
            if found not in (-1, length):
                raise FramingError("differing Content-Length values")
            found = length
    return found
