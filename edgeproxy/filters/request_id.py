"""
The ``request_id`` filter: give every request an identity that the logs share.

Options (each optional)::

    [filter:ids]
    plugin = request_id
    header = X-Request-ID      ; the field that carries the identity
    trust_incoming = yes       ; keep a valid identity the client (or a proxy
                               ; in front) sent

An incoming identity is kept when ``trust_incoming`` is on and the request has
exactly one such field whose value is 1 to :data:`MAX_LENGTH` visible ASCII
characters; otherwise a new one replaces it: a random UUID (version 4) as 32
hex digits.  The identity goes upstream in the request, comes back to the
client in the response (an upstream's own value of the field is replaced, and
local answers get it too), and is kept in ``context.notes["request_id"]`` (a
``str``) for the access log and later filters.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.config.values import parse_bool
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_header_name, parse_options
from edgeproxy.plugin_environment import PluginEnvironment

MAX_LENGTH = 200
"""The longest incoming identity kept, in characters."""

NOTE = "request_id"
"""The key of the identity in ``context.notes``."""

RandomBytes = Callable[[int], bytes]


def new_request_id(random_bytes: RandomBytes = os.urandom) -> str:
    """A random version 4 UUID as 32 hex digits, from ``random_bytes(16)``."""
    return uuid.UUID(bytes=random_bytes(16), version=4).hex


def is_valid_request_id(value: bytes) -> bool:
    """Whether ``value`` is 1 to :data:`MAX_LENGTH` visible ASCII characters."""
    return 0 < len(value) <= MAX_LENGTH and all(0x21 <= byte <= 0x7E for byte in value)


@implementer(IFilter)
class RequestIdFilter:
    """
    Keeps or makes each request's identity and sends it both ways.

    :param header: the field's name.
    :param trust_incoming: whether a valid incoming identity is kept.
    :param random_bytes: the source of new identities (``os.urandom``).
    """

    def __init__(
        self,
        header: bytes = b"X-Request-ID",
        trust_incoming: bool = True,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.header = header
        self.trust_incoming = trust_incoming
        self._random_bytes = random_bytes

    def __repr__(self) -> str:
        return f"<RequestIdFilter {self.header.decode()}>"

    def on_request(self, context: RequestContext, request: RequestHead) -> None:
        """Keep a valid incoming identity or set a new one; note it."""
        incoming = request.headers.get_all(self.header)
        if (
            self.trust_incoming
            and len(incoming) == 1
            and is_valid_request_id(incoming[0])
        ):
            context.notes[NOTE] = incoming[0].decode("ascii")
            return
        request_id = new_request_id(self._random_bytes)
        request.headers.set(self.header, request_id)
        context.notes[NOTE] = request_id

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Return the request's identity to the client."""
        request_id = context.notes.get(NOTE)
        if isinstance(request_id, str):
            response.headers.set(self.header, request_id)


_PARSERS: dict[str, Callable[[str], object]] = {
    "header": parse_header_name,
    "trust_incoming": parse_bool,
}


@implementer(IPlugin, IFilterFactory)
class RequestIdFilterFactory:
    """
    Builds :class:`RequestIdFilter` from its options.

    :param random_bytes: the source of new identities given to every filter built.
    """

    name = "request_id"
    description = "Keep or make an X-Request-ID and send it upstream and back."

    def __init__(self, random_bytes: RandomBytes = os.urandom) -> None:
        self.random_bytes = random_bytes

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> RequestIdFilter:
        """Parse the options; every bad one is reported."""
        values, problems = parse_options(options, _PARSERS, keep_order=True)
        if problems:
            raise OptionError(problems)
        return RequestIdFilter(
            values.get("header", b"X-Request-ID"),
            values.get("trust_incoming", True),
            self.random_bytes,
        )


request_id_factory = RequestIdFilterFactory()
