"""
``sticky``: pin each client to a server with a cookie.

The cookie's value is an opaque id of a server: a hash of its key, not its
address, and the same in every worker process and after restarts.  When a
request's cookie names a candidate, that server is used.  Otherwise (no
cookie, a server that is down, draining or already tried, a server no longer
configured) a server is chosen by smooth weighted round robin and the response
sets the cookie to it (``Path=/; HttpOnly; SameSite=Lax``, for the session).

Option ``cookie``: the cookie's name (default ``EP_STICKY``).
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from edgeproxy.balancing.hash import stable_hash
from edgeproxy.balancing.plugin import (
    StrategyFactory,
    StrategyOptions,
    StrategyWithoutFeedback,
)
from edgeproxy.balancing.request_keys import cookie_value, is_token
from edgeproxy.balancing.weighted import SmoothWeightedRoundRobin
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment

DEFAULT_COOKIE = "EP_STICKY"
_COOKIE_ATTRIBUTES = b"; Path=/; HttpOnly; SameSite=Lax"


def server_id(key: str) -> bytes:
    """The opaque id that the cookie holds for the server with ``key``."""
    return b"%016x" % stable_hash(b"sticky\0" + key.encode("utf-8"))


@implementer(IBalancingStrategy)
class StickyCookie(StrategyWithoutFeedback):
    """
    Use the server the request's cookie names; else choose one and set the cookie.

    :param cookie: the cookie's name.
    :raises ValueError: if ``cookie`` is not a valid cookie name.
    """

    def __init__(self, cookie: str = DEFAULT_COOKIE) -> None:
        if not is_token(cookie):
            raise ValueError(f"{cookie!r} is not a valid cookie name")
        self.cookie = cookie
        self._name = cookie.encode("ascii")
        self._ids: dict[str, bytes] = {}
        self._fallback = SmoothWeightedRoundRobin()

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the pinned candidate, or choose one and ask for a cookie."""
        request = context.request
        if request is not None:
            wanted = cookie_value(request.headers, self._name)
            if wanted:
                for server in candidates:
                    if self._id(server.key) == wanted:
                        return server
        chosen = self._fallback.choose(candidates)
        if request is not None:
            self._set_cookie(context, self._id(chosen.key))
        return chosen

    def _id(self, key: str) -> bytes:
        """The server's cookie value, computed once."""
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = server_id(key)
        return found

    def _set_cookie(self, context: RequestContext, value: bytes) -> None:
        """Ask for the cookie, replacing one asked for by an earlier attempt."""
        prefix = self._name + b"="
        pairs = context.response_headers.pairs
        # A retry on another server must not leave the failed server's cookie.
        pairs[:] = [
            (name, field)
            for name, field in pairs
            if name.lower() != b"set-cookie" or not field.startswith(prefix)
        ]
        context.response_headers.add(b"Set-Cookie", prefix + value + _COOKIE_ATTRIBUTES)


def _make(options: StrategyOptions, environment: PluginEnvironment) -> StickyCookie:
    """Build :class:`StickyCookie` from option ``cookie``."""
    cookie = options.text("cookie", DEFAULT_COOKIE)
    try:
        return StickyCookie(cookie)
    except ValueError as error:
        options.problem("cookie", str(error))
        return StickyCookie()


sticky_factory = StrategyFactory(
    "sticky",
    "Pins each client to a server with a cookie; weighted round robin otherwise.",
    _make,
)
