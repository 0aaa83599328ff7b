"""Tests for edgeproxy.balancing.random_two: the power of two choices."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from edgeproxy.balancing.random_two import PowerOfTwoChoices, random_two_factory
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.testing import FakeServer

CONTEXT = RequestContext("192.0.2.1")
ENVIRONMENT = PluginEnvironment(MemoryReactorClock(), Path("."))
PICKS = 20_000


def test_provides_the_interface() -> None:
    """PowerOfTwoChoices is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, PowerOfTwoChoices(random.Random(1)))


def test_an_idle_pool_shares_by_weight() -> None:
    """With no load, each server's share is its weight's share, within 2 points."""
    servers = [FakeServer("a", 1), FakeServer("b", 1), FakeServer("c", 1, weight=2)]
    strategy = PowerOfTwoChoices(random.Random(7))
    counts = Counter(strategy.pick(servers, CONTEXT, 0.0).host for _ in range(PICKS))
    # Expected 25%, 25%, 50%; one standard deviation is about 0.35 points.
    assert counts["a"] / PICKS == pytest.approx(0.25, abs=0.02)
    assert counts["b"] / PICKS == pytest.approx(0.25, abs=0.02)
    assert counts["c"] / PICKS == pytest.approx(0.50, abs=0.02)


def test_the_most_loaded_server_is_never_picked() -> None:
    """Of two distinct draws the busier loses, so the busiest of all never wins."""
    busy = FakeServer("busy", 1, active=10)
    servers = [FakeServer("a", 1, active=1), busy, FakeServer("b", 1, active=2)]
    strategy = PowerOfTwoChoices(random.Random(3))
    assert all(strategy.pick(servers, CONTEXT, 0.0) is not busy for _ in range(1000))


def test_load_is_compared_per_unit_of_weight() -> None:
    """A heavy server with more requests but less load per weight wins."""
    heavy = FakeServer("heavy", 1, weight=4, active=4)
    light = FakeServer("light", 1, weight=1, active=2)
    strategy = PowerOfTwoChoices(random.Random(5))
    assert {strategy.pick([heavy, light], CONTEXT, 0.0) for _ in range(50)} == {heavy}


def test_load_stays_balanced_under_concurrency() -> None:
    """Simulated requests in flight stay within a few of each other."""
    servers = [FakeServer(str(n), 1) for n in range(5)]
    strategy = PowerOfTwoChoices(random.Random(11))
    for _ in range(500):
        strategy.pick(servers, CONTEXT, 0.0).active += 1
    loads = [server.active for server in servers]
    assert max(loads) - min(loads) <= 3


def test_servers_leaving_and_returning() -> None:
    """Only candidates are picked; a returning server gets its share again."""
    a, b, c = (FakeServer(host, 1) for host in "abc")
    strategy = PowerOfTwoChoices(random.Random(13))
    assert {strategy.pick([a, c], CONTEXT, 0.0) for _ in range(200)} == {a, c}
    assert strategy.pick([b], CONTEXT, 0.0) is b
    counts = Counter(strategy.pick([a, b, c], CONTEXT, 0.0).host for _ in range(3000))
    assert counts["b"] / 3000 == pytest.approx(1 / 3, abs=0.04)


def test_the_seed_option_makes_picks_repeatable() -> None:
    """Two strategies built with the same seed pick the same sequence."""
    servers = [FakeServer(str(n), 1) for n in range(10)]
    first, second = (
        random_two_factory.build({"seed": "42"}, ENVIRONMENT) for _ in "12"
    )
    assert [first.pick(servers, CONTEXT, 0.0) for _ in range(50)] == [
        second.pick(servers, CONTEXT, 0.0) for _ in range(50)
    ]


def test_the_random_source_can_be_replaced() -> None:
    """Tests may inject their own Random through the ``random`` attribute."""
    strategy = PowerOfTwoChoices(random.Random())
    strategy.random = random.Random(99)
    servers = [FakeServer(str(n), 1) for n in range(10)]
    expected = PowerOfTwoChoices(random.Random(99))
    assert [strategy.pick(servers, CONTEXT, 0.0) for _ in range(20)] == [
        expected.pick(servers, CONTEXT, 0.0) for _ in range(20)
    ]
