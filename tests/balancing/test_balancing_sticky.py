"""Tests for edgeproxy.balancing.sticky: cookie pinning."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from edgeproxy.balancing.sticky import StickyCookie, server_id, sticky_factory
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers, RequestHead
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.testing import FakeServer

A, B, C = (FakeServer(f"10.0.0.{n}", 8080) for n in (1, 2, 3))
SERVERS = [A, B, C]


def context_with(cookie: bytes | None = None) -> RequestContext:
    """A request context whose request carries ``cookie`` as its Cookie field."""
    headers = Headers() if cookie is None else Headers([(b"Cookie", cookie)])
    return RequestContext("192.0.2.1", request=RequestHead(b"GET", b"/", headers))


def set_cookies(context: RequestContext) -> list[bytes]:
    """The Set-Cookie fields the strategy asked for."""
    return context.response_headers.get_all(b"set-cookie")


def test_provides_the_interface() -> None:
    """StickyCookie is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, StickyCookie())


def test_a_cookie_naming_a_candidate_pins_the_request() -> None:
    """A request whose cookie names a candidate goes there, and no cookie is set."""
    strategy = StickyCookie()
    for server in SERVERS:
        context = context_with(b"theme=dark; EP_STICKY=" + server_id(server.key))
        assert strategy.pick(SERVERS, context, 0.0) is server
        assert set_cookies(context) == []


def test_without_a_cookie_a_server_is_chosen_and_pinned() -> None:
    """A first request gets a server and a Set-Cookie naming it."""
    strategy = StickyCookie()
    context = context_with()
    chosen = strategy.pick(SERVERS, context, 0.0)
    assert set_cookies(context) == [
        b"EP_STICKY=" + server_id(chosen.key) + b"; Path=/; HttpOnly; SameSite=Lax"
    ]
    follow_up = context_with(b"EP_STICKY=" + server_id(chosen.key))
    assert {strategy.pick(SERVERS, follow_up, 0.0) for _ in range(5)} == {chosen}


def test_new_clients_are_spread_by_weight() -> None:
    """Clients without a cookie are spread by smooth weighted round robin."""
    heavy = FakeServer("10.0.0.9", 8080, weight=2)
    strategy = StickyCookie()
    counts = Counter(
        strategy.pick([heavy, A], context_with(), 0.0).key for _ in range(30)
    )
    assert counts == {heavy.key: 20, A.key: 10}


def test_a_pinned_server_that_is_out_is_replaced_and_the_cookie_updated() -> None:
    """If the pinned server is not a candidate, another is chosen and pinned."""
    strategy = StickyCookie()
    context = context_with(b"EP_STICKY=" + server_id(B.key))
    chosen = strategy.pick([A, C], context, 0.0)
    assert chosen in (A, C)
    assert set_cookies(context)[0].startswith(b"EP_STICKY=" + server_id(chosen.key))
    # When B is back, clients pinned to it return to it.
    assert (
        strategy.pick(SERVERS, context_with(b"EP_STICKY=" + server_id(B.key)), 0.0) is B
    )


@pytest.mark.parametrize("value", [b"", b"nonsense", b"10.0.0.1:8080"])
def test_unknown_cookie_values_are_ignored(value: bytes) -> None:
    """A cookie naming no server (or an address) is treated as no cookie."""
    strategy = StickyCookie()
    context = context_with(b"EP_STICKY=" + value)
    strategy.pick(SERVERS, context, 0.0)
    assert len(set_cookies(context)) == 1


def test_a_retry_replaces_only_its_own_cookie() -> None:
    """A second pick for the same request replaces its Set-Cookie, not others."""
    strategy = StickyCookie()
    context = context_with()
    context.response_headers.add(b"Set-Cookie", b"session=abc")
    first = strategy.pick(SERVERS, context, 0.0)
    others = [server for server in SERVERS if server is not first]
    second = strategy.pick(others, context, 0.0)
    assert set_cookies(context) == [
        b"session=abc",
        b"EP_STICKY=" + server_id(second.key) + b"; Path=/; HttpOnly; SameSite=Lax",
    ]


def test_server_ids_are_opaque_and_stable() -> None:
    """The cookie holds a fixed hash of the key, not the address itself."""
    assert server_id(A.key) == server_id("10.0.0.1:8080")
    assert b"10.0.0.1" not in server_id(A.key)
    assert len({server_id(server.key) for server in SERVERS}) == 3
    # Pinned: changing it would unpin every client on upgrade.
    assert server_id("10.0.0.1:8080") == b"2addb2fd9755fce3"


def test_tcp_connections_get_no_cookie() -> None:
    """A connection without an HTTP request is balanced but nothing is set."""
    strategy = StickyCookie()
    context = RequestContext("192.0.2.1")
    assert strategy.pick(SERVERS, context, 0.0) in SERVERS
    assert set_cookies(context) == []


def test_the_cookie_option_names_the_cookie() -> None:
    """Option cookie changes the cookie's name."""
    environment = PluginEnvironment(MemoryReactorClock(), Path("."))
    built = sticky_factory.build({"cookie": "SRV"}, environment)
    assert built.pick(SERVERS, context_with(b"SRV=" + server_id(C.key)), 0.0) is C
    context = context_with(b"EP_STICKY=" + server_id(C.key))
    built.pick(SERVERS, context, 0.0)
    assert set_cookies(context)[0].startswith(b"SRV=")
