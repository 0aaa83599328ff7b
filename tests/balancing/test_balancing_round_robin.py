"""Tests for edgeproxy.balancing.round_robin."""

from __future__ import annotations

from collections import Counter

from zope.interface.verify import verifyObject

from edgeproxy.balancing.round_robin import RoundRobin
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.testing import FakeServer

CONTEXT = RequestContext("192.0.2.1")
A, B, C = (FakeServer("10.0.0.1", port) for port in (1, 2, 3))


def test_provides_the_interface() -> None:
    """RoundRobin is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, RoundRobin())


def test_takes_each_server_in_turn() -> None:
    """Picks go a, b, c, a, b, c..."""
    strategy = RoundRobin()
    picks = [strategy.pick([A, B, C], CONTEXT, 0.0) for _ in range(6)]
    assert picks == [A, B, C, A, B, C]


def test_ignores_weights() -> None:
    """Every server gets the same share whatever its weight."""
    heavy = FakeServer("10.0.0.9", 1, weight=10)
    strategy = RoundRobin()
    counts = Counter(strategy.pick([heavy, B], CONTEXT, 0.0).key for _ in range(100))
    assert counts == {heavy.key: 50, B.key: 50}


def test_load_stays_even_as_servers_leave_and_return() -> None:
    """Load stays even when a server leaves and when it returns."""
    strategy = RoundRobin()
    assert Counter(strategy.pick([A, C], CONTEXT, 0.0).key for _ in range(10)) == {
        A.key: 5,
        C.key: 5,
    }
    counts = Counter(strategy.pick([A, B, C], CONTEXT, 0.0).key for _ in range(30))
    assert counts == {A.key: 10, B.key: 10, C.key: 10}


def test_a_single_candidate_is_always_picked() -> None:
    """With one candidate, it is the answer every time."""
    strategy = RoundRobin()
    assert {strategy.pick([B], CONTEXT, 0.0) for _ in range(3)} == {B}
