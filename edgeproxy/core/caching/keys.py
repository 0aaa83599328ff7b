"""
The keys a response is stored under (RFC 9111 sections 2 and 4.1).

The primary key is the URL (:func:`primary_key`); the variant key
(:func:`variant_key`) is built from the request fields a response's ``Vary``
names, plus a configured field or cookie.  Several variants of one URL are
stored side by side; :func:`select_variants` picks those a request matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.stored_response import StoredResponse, date_value
from edgeproxy.core.message import RequestHead

# Field values compared case-insensitively when matching Vary (RFC 9111 4.1).
_CASE_INSENSITIVE_VALUES = frozenset(
    {b"accept-encoding", b"accept-charset", b"accept-language"}
)
_DEFAULT_PORTS = {b"http": b"80", b"https": b"443"}
_QUOTED = re.compile(rb'("(?:[^"\\]|\\.)*"?)')
_OWS_AROUND_DELIMITER = re.compile(rb"[ \t]*([,;=])[ \t]*")
_WHITESPACE_RUN = re.compile(rb"[ \t]+")
_EMPTY_MEMBERS = re.compile(rb",{2,}")


def authority_key(host: bytes, scheme: bytes) -> bytes:
    """``host`` lower-cased, without the scheme's default port (or an empty one)."""
    lowered = host.lower()
    name, colon, port = lowered.rpartition(b":")
    if not colon or (b":" in name and not name.endswith(b"]")):
        return lowered  # no port, or a bare IPv6 address
    if not port or port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return lowered


def primary_key(scheme: bytes, host: bytes, target: bytes) -> bytes:
    """
    The key every variant of a URL is stored under (RFC 9111 section 2).

    The same for ``GET`` and ``HEAD``: ``scheme://authority`` normalised
    (:func:`authority_key`) and the origin-form target as received.
    """
    scheme = scheme.lower()
    return scheme + b"://" + authority_key(host, scheme) + target


def _normalised(name: bytes, values: list[bytes]) -> bytes:
    """
    A request field's values as Vary compares them (RFC 9111 section 4.1).

    Field lines are combined; whitespace around ``,``, ``;``, ``=`` outside
    quoted-strings is removed and runs of it squeezed; empty list members are
    dropped; values of a field known to be case-insensitive are lower-cased.
    """
    parts = _QUOTED.split(b",".join(values))
    for index in range(0, len(parts), 2):  # the parts outside quoted-strings
        squeezed = _OWS_AROUND_DELIMITER.sub(rb"\1", parts[index])
        parts[index] = _EMPTY_MEMBERS.sub(b",", _WHITESPACE_RUN.sub(b" ", squeezed))
    value = b"".join(parts).strip(b" \t,")
    return value.lower() if name in _CASE_INSENSITIVE_VALUES else value


def _cookie(request: RequestHead, name: bytes) -> bytes | None:
    """The value of the first cookie called ``name``, or ``None``."""
    for line in request.headers.get_all(b"cookie"):
        for pair in line.split(b";"):
            key, equals, value = pair.strip(b" \t").partition(b"=")
            if equals and key == name:
                return value.strip(b'"')
    return None


def _key_part(name: bytes, value: bytes | None) -> bytes:
    """One unambiguous piece of a variant key."""
    if value is None:
        return name + b"!;"
    return b"%s:%d:%s;" % (name, len(value), value)


def variant_key(
    request: RequestHead,
    vary: Iterable[bytes],
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> bytes:
    """
    The secondary key of ``request`` for a response that varies on ``vary``.

    Built from the normalised values of the named request fields (an absent
    field differs from an empty one), plus the configured key field or cookie.
    """
    names = {name.lower() for name in vary}
    if settings.key_header is not None:
        names.add(settings.key_header.lower())
    parts = []
    for name in sorted(names):
        values = request.headers.get_all(name)
        parts.append(_key_part(name, _normalised(name, values) if values else None))
    if settings.key_cookie is not None:
        cookie = _cookie(request, settings.key_cookie)
        parts.append(_key_part(b"cookie=" + settings.key_cookie, cookie))
    return b"".join(parts)


def select_variants(
    request: RequestHead,
    variants: Iterable[StoredResponse],
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> list[StoredResponse]:
    """
    The stored responses whose Vary matches ``request``, most recent first.

    ``Vary: *`` never matches; recency is by ``Date``, then arrival.
    """
    matching = [
        stored
        for stored in variants
        if b"*" not in stored.vary
        and variant_key(request, stored.vary, settings) == stored.variant
    ]
    matching.sort(key=lambda stored: (date_value(stored), stored.response_time))
    matching.reverse()
    return matching
