"""
How an upstream response's body is delimited, and the framing it goes on with.

:func:`response_framing` reads the framing of what arrives from upstream (and
whether its connection persists); :func:`frame_response` writes the framing
fields of what leaves for the client: a body of unknown length is chunked to
an HTTP/1.1 client and delimited by closing the connection to an HTTP/1.0
one.  The values and the request side are in :mod:`edgeproxy.core.framing`.
"""

from __future__ import annotations

from typing import NamedTuple

from edgeproxy.core.framing import (
    CHUNKED,
    EMPTY_BODY,
    MAX_LENGTH_DIGITS,
    NO_BODY,
    UNTIL_CLOSE,
    BodyFraming,
    BodyKind,
    FramingError,
    field_tokens,
    fixed_length,
    persists_with,
    stated_length,
)
from edgeproxy.core.message import HeaderPair, Headers, ResponseHead

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_DATE = b"date"
# The fields each pass looks at; any other field costs one lower() and one lookup.
_FRAMED_FIELDS = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _DATE))
_RESPONSE_FIELDS = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION))


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
            persists = persists_with(http11, connection)
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return NO_BODY, persists
    if len(lengths) == 1 and not codings:
        # The usual single plain length, without the calls of the general case.
        digits = lengths[0]
        if digits.isdigit() and len(digits) <= MAX_LENGTH_DIGITS:
            return fixed_length(int(digits)), persists
    return _response_body(lengths, codings), persists


def _response_body(lengths: list[bytes], codings: list[bytes]) -> BodyFraming:
    """A response body's framing from its length and coding fields' values."""
    if codings:
        if lengths:
            raise FramingError("Content-Length together with Transfer-Encoding", 502)
        if field_tokens(codings) != [b"chunked"]:
            raise FramingError("transfer coding other than chunked", 502)
        return CHUNKED
    if lengths:
        try:
            return fixed_length(stated_length(lengths))
        except FramingError as error:
            raise FramingError(error.reason, 502) from None
    return UNTIL_CLOSE


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
        already (:func:`~edgeproxy.core.response_fields.client_response_fields`
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
                if key == _CONNECTION and b"close" in field_tokens([pair[1]]):
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
        sent = EMPTY_BODY
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
