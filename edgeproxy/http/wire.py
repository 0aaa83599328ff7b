"""How message heads are written on the wire (HTTP/1.1, CRLF line ends)."""

from __future__ import annotations

from http import HTTPStatus

from edgeproxy.core.message import RequestHead, ResponseHead

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
# Status lines by (status, reason as given); bounded, as reasons come from upstreams.
_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}
_MAX_STATUS_LINES = 512
# Bound once: a head is one join of its lines, each field line one join.
_CRLF_JOIN = b"\r\n".join
_FIELD_JOIN = b": ".join

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
"""The interim response that tells a client to send its body."""


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status``, or ``b""``."""
    return _REASONS.get(status, b"")


def response_bytes(head: ResponseHead, body: bytes = b"") -> bytes:
    """
    An HTTP/1.1 status line, the head's fields and ``body``, joined.

    An empty reason phrase is replaced by the standard one.
    """
    key = (head.status, head.reason)
    status_line = _STATUS_LINES.get(key)
    if status_line is None:
        reason = head.reason or reason_phrase(head.status)
        status_line = b"HTTP/1.1 %d %s" % (head.status, reason)
        if len(_STATUS_LINES) < _MAX_STATUS_LINES:
            _STATUS_LINES[key] = status_line
    return _CRLF_JOIN([status_line, *map(_FIELD_JOIN, head.headers.pairs), b"", body])


def request_bytes(head: RequestHead) -> bytes:
    """An HTTP/1.1 request line and the head's fields."""
    request_line = b"%s %s HTTP/1.1" % (head.method, head.target)
    return _CRLF_JOIN([request_line, *map(_FIELD_JOIN, head.headers.pairs), b"", b""])
