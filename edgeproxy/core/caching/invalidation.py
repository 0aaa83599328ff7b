"""
What a response to an unsafe method invalidates (RFC 9111 section 4.4).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from edgeproxy.core.caching.keys import authority_key, primary_key
from edgeproxy.core.message import RequestHead, ResponseHead

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
"""Methods that never invalidate (RFC 9110 section 9.2.1); any other may."""


def _same_origin_key(reference: bytes, base: bytes) -> bytes | None:
    """The primary key of ``reference`` resolved against ``base``, if same-origin."""
    try:
        resolved = urlsplit(
            urljoin(base.decode("latin-1"), reference.decode("latin-1").strip())
        )
        origin = urlsplit(base.decode("latin-1"))
    except ValueError:
        return None
    scheme = resolved.scheme.encode("latin-1")
    authority = resolved.netloc.encode("latin-1")
    if scheme != origin.scheme.encode("latin-1") or authority_key(
        authority, scheme
    ) != authority_key(origin.netloc.encode("latin-1"), scheme):
        return None
    target = resolved.path or "/"
    if resolved.query:
        target += "?" + resolved.query
    return primary_key(scheme, authority, target.encode("latin-1"))


def invalidated_keys(
    request: RequestHead, response: ResponseHead, scheme: bytes, host: bytes
) -> list[bytes]:
    """
    The primary keys a response to an unsafe method invalidates (RFC 9111 4.4).

    For a 2xx or 3xx answer to any method but GET, HEAD, OPTIONS and TRACE:
    the target URI, and the ``Location`` and ``Content-Location`` URIs of the
    same origin (others are ignored: that would let one origin purge another).
    The glue removes every variant stored under each key.
    """
    if request.method in SAFE_METHODS or not 200 <= response.status < 400:
        return []
    target_key = primary_key(scheme, host, request.target)
    keys = [target_key]
    for name in (b"location", b"content-location"):
        for value in response.headers.get_all(name):
            key = _same_origin_key(value, target_key)
            if key is not None and key not in keys:
                keys.append(key)
    return keys
