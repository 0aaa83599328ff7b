"""Tests for edgeproxy.balancing.weighted: smooth weighted round robin."""

from __future__ import annotations

from collections import Counter

from zope.interface.verify import verifyObject

from edgeproxy.balancing.weighted import SmoothWeightedRoundRobin
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.testing import FakeServer

CONTEXT = RequestContext("192.0.2.1")
A = FakeServer("a", 1, weight=5)
B = FakeServer("b", 1, weight=1)
C = FakeServer("c", 1, weight=1)


def test_provides_the_interface() -> None:
    """SmoothWeightedRoundRobin is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, SmoothWeightedRoundRobin())


def test_weights_five_one_one_give_nginx_order() -> None:
    """Weights 5, 1, 1 give a a b a c a a: the heavy server's turns are spread out."""
    strategy = SmoothWeightedRoundRobin()
    picks = [strategy.pick([A, B, C], CONTEXT, 0.0).host for _ in range(14)]
    assert picks == list("aabacaa" * 2)


def test_shares_follow_weights_exactly_per_cycle() -> None:
    """Over whole cycles of the total weight, each server gets exactly its weight."""
    heavy, light = FakeServer("h", 1, weight=3), FakeServer("l", 1, weight=2)
    strategy = SmoothWeightedRoundRobin()
    counts = Counter(
        strategy.pick([heavy, light], CONTEXT, 0.0).host for _ in range(500)
    )
    assert counts == {"h": 300, "l": 200}


def test_no_bursts() -> None:
    """With weights 2 and 1 the heavy server is never picked three times running."""
    heavy, light = FakeServer("h", 1, weight=2), FakeServer("l", 1, weight=1)
    strategy = SmoothWeightedRoundRobin()
    picks = "".join(
        strategy.pick([heavy, light], CONTEXT, 0.0).host for _ in range(300)
    )
    assert "hhh" not in picks
    assert "ll" not in picks


def test_servers_leaving_and_returning() -> None:
    """While a server is out the others share by weight; back, it gets its share."""
    strategy = SmoothWeightedRoundRobin()
    during = Counter(strategy.pick([B, C], CONTEXT, 0.0).host for _ in range(100))
    assert during == {"b": 50, "c": 50}
    # After a transient of at most one cycle, the full shares return.
    for _ in range(7):
        strategy.pick([A, B, C], CONTEXT, 0.0)
    after = Counter(strategy.pick([A, B, C], CONTEXT, 0.0).host for _ in range(700))
    assert after == {"a": 500, "b": 100, "c": 100}


def test_equal_weights_are_plain_rotation() -> None:
    """With equal weights the order is a plain rotation."""
    x, y, z = (FakeServer(host, 1) for host in "xyz")
    strategy = SmoothWeightedRoundRobin()
    picks = "".join(strategy.pick([x, y, z], CONTEXT, 0.0).host for _ in range(6))
    assert picks == "xyzxyz"
