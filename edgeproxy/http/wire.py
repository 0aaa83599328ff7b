"""How message heads are written on the wire (HTTP/1.1, CRLF line ends)."""

from __future__ import annotations

from http import HTTPStatus

from edgeproxy.core.message import RequestHead, ResponseHead

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
# Status lines by (status, reason as given); bounded, as reasons come from upstreams.
_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}
_MAX_STATUS_LINES = 512

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
    return _join(status_line, head, body)


def request_bytes(head: RequestHead) -> bytes:
    """An HTTP/1.1 request line and the head's fields."""
    return _join(b"%s %s HTTP/1.1" % (head.method, head.target), head, b"")


def _join(start_line: bytes, head: RequestHead | ResponseHead, body: bytes) -> bytes:
    return b"\r\n".join([start_line, *map(b": ".join, head.headers.pairs), b"", body])
