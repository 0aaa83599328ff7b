"""
The parts of a request that strategies key on: client address, URL, a header, a cookie.

``hash`` names its key as ``client_ip``, ``url``, ``header:NAME`` or
``cookie:NAME``; :func:`parse_request_key` turns that text into a function
from a request context to the key's bytes (``None`` when the request has none).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers

RequestKey = Callable[[RequestContext], bytes | None]

# RFC 9110 token: what header names and cookie names are made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_token(text: str) -> bool:
    """Whether ``text`` may be a header name or a cookie name."""
    return _TOKEN.fullmatch(text) is not None


def cookie_value(headers: Headers, name: bytes) -> bytes | None:
    """
    Return the value of cookie ``name`` from the ``Cookie`` fields, or ``None``.

    Cookie names are compared exactly (they are case-sensitive); the first
    cookie of that name wins.
    """
    for field in headers.get_all(b"cookie"):
        for pair in field.split(b";"):
            key, equals, value = pair.strip().partition(b"=")
            if equals and key == name:
                return value.strip(b'"')
    return None


def parse_request_key(text: str) -> RequestKey:
    """
    Turn ``client_ip``, ``url``, ``header:NAME`` or ``cookie:NAME`` into a function.

    :raises ValueError: if ``text`` is none of these.
    """
    kind, colon, name = text.partition(":")
    if not colon:
        if kind == "client_ip":
            return _client_ip
        if kind == "url":
            return _url
    elif kind in {"header", "cookie"} and is_token(name):
        wanted = name.encode("ascii")
        if kind == "header":
            return lambda context: _header(context, wanted)
        return lambda context: _cookie(context, wanted)
    raise ValueError(f"{text!r} is not client_ip, url, header:NAME or cookie:NAME")


def _client_ip(context: RequestContext) -> bytes | None:
    """The client's address."""
    return context.client_host.encode("ascii", "replace") or None


def _url(context: RequestContext) -> bytes | None:
    """The request target: path and query."""
    if context.request is None:
        return None
    return context.request.target or None


def _header(context: RequestContext, name: bytes) -> bytes | None:
    """The first value of header ``name``; an empty value counts as missing."""
    if context.request is None:
        return None
    return context.request.headers.get(name) or None


def _cookie(context: RequestContext, name: bytes) -> bytes | None:
    """The value of cookie ``name``; an empty value counts as missing."""
    if context.request is None:
        return None
    return cookie_value(context.request.headers, name) or None
