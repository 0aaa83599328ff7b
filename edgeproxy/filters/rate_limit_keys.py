"""
The keys of the ``rate_limit`` filter: what a request is counted under.

A key is one part or several joined by ``+``: ``client_ip``, ``header:NAME``,
``consumer``, ``route``, ``path``.  A request lacking a part (no such header,
no consumer) is counted under a shared ``-`` value for that part: leaving a
header out must not be a way around the limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from edgeproxy.balancing.request_keys import is_token
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import RequestHead

MISSING = "-"
"""The value of a key part the request does not have."""

# Longer keys (a header value can be kilobytes) are stored as their digest.
_MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class KeyPart:
    """
    One part of a rate-limit key.

    :ivar kind: ``client_ip``, ``header``, ``consumer``, ``route`` or ``path``.
    :ivar header: the header's name, for ``header``.
    """

    kind: str
    header: bytes = b""

    @property
    def label(self) -> str:
        """The part as the configuration writes it."""
        if self.kind == "header":
            return "header:" + self.header.decode("ascii")
        return self.kind

    def value(self, context: RequestContext, request: RequestHead) -> str | None:
        """This part's value for one request, or ``None`` if it has none."""
        if self.kind == "client_ip":
            return context.client_host
        if self.kind == "consumer":
            return context.consumer
        if self.kind == "route":
            return context.route
        if self.kind == "path":
            return request.path.decode("latin-1")
        found = request.headers.get(self.header)
        return None if found is None else found.decode("latin-1")


def parse_key(text: str) -> tuple[KeyPart, ...]:
    """
    Parse ``client_ip``, ``header:NAME``, ``consumer``, ``route``, ``path`` or
    a ``+``-joined combination of them.

    :raises ValueError: naming the bad part.
    """
    parts = []
    for item in text.split("+"):
        word = item.strip()
        kind, colon, name = word.partition(":")
        if kind == "header" and colon and is_token(name.strip()):
            parts.append(KeyPart("header", name.strip().encode("ascii")))
        elif word in ("client_ip", "consumer", "route", "path"):
            parts.append(KeyPart(word))
        else:
            raise ValueError(
                f"{word!r} is not a key (use client_ip, header:NAME, consumer, "
                "route, path, or several joined by +)"
            )
    if len(set(parts)) != len(parts):
        raise ValueError(f"{text.strip()!r} names a part twice")
    return tuple(parts)


def request_key(
    parts: tuple[KeyPart, ...], context: RequestContext, request: RequestHead
) -> str:
    """
    The key a request is counted under, e.g. ``client_ip=10.0.0.1``.

    Values are percent-encoded so that no value can pass for another part.
    """
    pieces = []
    for part in parts:
        value = part.value(context, request)
        encoded = MISSING if value is None else quote(value, safe=":@")
        pieces.append(f"{part.label}={encoded}")
    key = "+".join(pieces)
    if len(key) > _MAX_KEY_LENGTH:
        return "sha256=" + hashlib.sha256(key.encode()).hexdigest()
    return key
