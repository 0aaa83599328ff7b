"""Tests for edgeproxy.balancing.least_conn."""

from __future__ import annotations

from collections import Counter

from zope.interface.verify import verifyObject

from edgeproxy.balancing.least_conn import LeastConnections
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.testing import FakeServer

CONTEXT = RequestContext("192.0.2.1")


def test_provides_the_interface() -> None:
    """LeastConnections is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, LeastConnections())


def test_picks_the_server_with_fewest_active() -> None:
    """The server with the fewest requests in flight wins, whatever its weight."""
    busy = FakeServer("busy", 1, weight=10, active=3)
    quiet = FakeServer("quiet", 1, weight=1, active=1)
    assert LeastConnections().pick([busy, quiet], CONTEXT, 0.0) is quiet


def test_equal_active_prefers_the_heavier_server() -> None:
    """Among equally busy servers, the lowest active/weight (heaviest) wins."""
    light = FakeServer("light", 1, weight=1, active=2)
    heavy = FakeServer("heavy", 1, weight=3, active=2)
    strategy = LeastConnections()
    assert {strategy.pick([light, heavy], CONTEXT, 0.0) for _ in range(5)} == {heavy}


def test_ties_take_turns() -> None:
    """Equally loaded servers of equal weight take turns, not always the first."""
    x, y, z = (FakeServer(host, 1, active=1) for host in "xyz")
    strategy = LeastConnections()
    picks = "".join(strategy.pick([x, y, z], CONTEXT, 0.0).host for _ in range(6))
    assert picks == "xyzxyz"


def test_an_idle_pool_shares_by_weight() -> None:
    """When all are idle (the tie at zero) picks follow the weights."""
    heavy = FakeServer("h", 1, weight=3)
    light = FakeServer("l", 1, weight=1)
    strategy = LeastConnections()
    counts = Counter(
        strategy.pick([heavy, light], CONTEXT, 0.0).host for _ in range(400)
    )
    assert counts == {"h": 300, "l": 100}


def test_load_follows_requests_in_flight() -> None:
    """Simulated concurrent requests spread so that no server runs ahead by two."""
    servers = [FakeServer(host, 1) for host in "abc"]
    strategy = LeastConnections()
    for _ in range(30):
        strategy.pick(servers, CONTEXT, 0.0).active += 1
        assert max(s.active for s in servers) - min(s.active for s in servers) <= 1
    # One server's requests finish: it takes the next ones.
    servers[1].active = 0
    assert strategy.pick(servers, CONTEXT, 0.0) is servers[1]


def test_servers_leaving_and_returning() -> None:
    """A returning idle server takes requests until it has caught up."""
    a, b = FakeServer("a", 1, active=5), FakeServer("b", 1, active=5)
    strategy = LeastConnections()
    assert strategy.pick([a], CONTEXT, 0.0) is a
    returning = FakeServer("c", 1)
    picks = []
    for _ in range(5):
        chosen = strategy.pick([a, b, returning], CONTEXT, 0.0)
        chosen.active += 1
        picks.append(chosen.host)
    assert picks == ["c"] * 5
