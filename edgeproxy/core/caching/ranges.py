"""
Single byte ranges answered from a stored 200 (RFC 9110 section 14).

The cache stores whole responses only; a request for one ``bytes=`` range of
a stored 200 is answered by cutting it (:func:`single_range`,
:func:`byte_span`).  Anything else with a ``Range`` (several ranges,
``If-Range``, other units) is forwarded as it is.
"""

from __future__ import annotations

import re

from edgeproxy.core.message import Headers, RequestHead

_SINGLE_RANGE = re.compile(rb"^bytes=(\d*)-(\d*)$")


def single_range(request: RequestHead) -> tuple[int, int] | None:
    """``(first, last)`` of a one-range ``bytes=`` request (``last`` -1: open)."""
    values = request.headers.get_all(b"range")
    if len(values) != 1 or b"if-range" in request.headers:
        return None
    match = _SINGLE_RANGE.match(values[0].strip())
    if match is None or match.group(1) + match.group(2) == b"":
        return None
    first = int(match.group(1)) if match.group(1) else -1
    last = int(match.group(2)) if match.group(2) else -1
    if first >= 0 and 0 <= last < first:
        return None
    return first, last


def without_range(request: RequestHead) -> RequestHead:
    """A copy of ``request`` without its ``Range``."""
    pairs = [pair for pair in request.headers.pairs if pair[0].lower() != b"range"]
    return RequestHead(request.method, request.target, Headers(pairs), request.version)


def byte_span(wanted: tuple[int, int], size: int) -> tuple[int, int] | None:
    """
    The first and last byte that ``wanted`` selects of a ``size``-byte body.

    ``wanted`` is what :func:`single_range` read: a first byte of -1 asks for
    the last ``last`` bytes (a suffix), a last byte of -1 or past the end
    stops at the end.  ``None`` when no byte is selected (answer 416).
    """
    first, last = wanted
    if first < 0:
        first, last = max(0, size - last), size - 1
    elif last < 0 or last >= size:
        last = size - 1
    if first >= size or last < first:
        return None
    return first, last
