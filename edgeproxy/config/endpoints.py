"""Checking Twisted endpoint strings without listening on them."""

from __future__ import annotations

from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor


def check_server_endpoint(description: str) -> str | None:
    """
    Return why ``description`` is not a usable server endpoint, or ``None``.

    The endpoint is built against a reactor that never listens, so this finds
    syntax errors, unknown endpoint types and unreadable certificate files.
    """
    try:
        serverFromString(MemoryReactor(), description)
    except Exception as error:
        # Endpoint parsers raise ValueError, KeyError, OSError and OpenSSL's
        # errors alike for bad input; every one of them is the user's to fix.
        detail = str(error) or type(error).__name__
        return f"{description!r} is not a server endpoint: {detail}"
    return None
