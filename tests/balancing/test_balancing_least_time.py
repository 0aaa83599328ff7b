"""Tests for edgeproxy.balancing.least_time: peak EWMA with decay."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from edgeproxy.balancing.least_time import PeakEwmaLeastTime, least_time_factory
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.testing import FakeServer

CONTEXT = RequestContext("192.0.2.1")


def respond(
    strategy: PeakEwmaLeastTime,
    server: FakeServer,
    now: float,
    elapsed: float,
    failed: bool = False,
) -> None:
    """Tell the strategy that a request on ``server`` took ``elapsed``."""
    strategy.started(server, now)
    strategy.finished(server, now + elapsed, elapsed, failed)


def test_provides_the_interface() -> None:
    """PeakEwmaLeastTime is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, PeakEwmaLeastTime())


def test_the_decay_option() -> None:
    """Option decay takes a duration; the default is ten seconds."""
    environment = PluginEnvironment(MemoryReactorClock(), Path("."))
    built = least_time_factory.build({"decay": "250ms"}, environment)
    assert isinstance(built, PeakEwmaLeastTime)
    assert built.decay == 0.25
    default = least_time_factory.build({}, environment)
    assert isinstance(default, PeakEwmaLeastTime)
    assert default.decay == 10.0
    with pytest.raises(ValueError, match="decay"):
        PeakEwmaLeastTime(decay=0.0)


def test_the_faster_server_wins() -> None:
    """Of two idle servers, the one with the lower response time is picked."""
    slow, fast = FakeServer("slow", 1), FakeServer("fast", 1)
    strategy = PeakEwmaLeastTime()
    respond(strategy, slow, 0.0, 0.5)
    respond(strategy, fast, 0.0, 0.05)
    assert strategy.pick([slow, fast], CONTEXT, 1.0) is fast


def test_servers_without_samples_are_tried_first() -> None:
    """A server never measured is tried before measured ones, however fast."""
    measured, new = FakeServer("measured", 1), FakeServer("new", 1)
    strategy = PeakEwmaLeastTime()
    respond(strategy, measured, 0.0, 0.001)
    assert strategy.pick([measured, new], CONTEXT, 1.0) is new


def test_an_unmeasured_server_gets_no_second_request_before_its_first_answers() -> None:
    """While its first request is in flight, an unmeasured server is passed over."""
    measured, new = FakeServer("measured", 1), FakeServer("new", 1, active=1)
    strategy = PeakEwmaLeastTime()
    respond(strategy, measured, 0.0, 2.0)
    assert strategy.pick([measured, new], CONTEXT, 3.0) is measured


def test_a_slow_response_counts_at_once_and_fast_ones_bring_it_down_gradually() -> None:
    """The estimate jumps to a slower response but moves slowly toward faster ones."""
    server = FakeServer("a", 1)
    strategy = PeakEwmaLeastTime(decay=10.0)
    respond(strategy, server, 0.0, 0.05)
    respond(strategy, server, 1.0, 2.0)
    assert strategy.estimate(server, 3.0) == pytest.approx(2.0)
    respond(strategy, server, 4.0, 0.05)
    # 1.05s after the slow answer, it still counts e^-0.105 of the estimate.
    kept = math.exp(-0.105)
    assert strategy.estimate(server, 4.05) == pytest.approx(
        2.0 * kept + 0.05 * (1 - kept)
    )


def test_a_slow_server_is_tried_again_as_its_score_decays() -> None:
    """A server slow once is retried when its decayed estimate falls below the rest."""
    steady, spiked = FakeServer("steady", 1), FakeServer("spiked", 1)
    strategy = PeakEwmaLeastTime(decay=10.0)
    respond(strategy, spiked, 0.0, 2.0)
    retried_at = None
    for second in range(1, 60):
        chosen = strategy.pick([steady, spiked], CONTEXT, float(second))
        if chosen is spiked:
            retried_at = second
            break
        respond(strategy, steady, float(second), 0.1)
    # 2s (at t=2) decays to the steady ~0.1s after 10 * ln(20), ~30s more.
    assert retried_at is not None
    assert 30 <= retried_at <= 35


def test_fast_failures_do_not_look_fast() -> None:
    """A failure counts as a response of at least one second."""
    failing, working = FakeServer("failing", 1), FakeServer("working", 1)
    strategy = PeakEwmaLeastTime()
    respond(strategy, working, 0.0, 0.3)
    respond(strategy, failing, 0.0, 0.001, failed=True)
    assert strategy.estimate(failing, 0.001) == pytest.approx(1.0)
    assert strategy.pick([failing, working], CONTEXT, 0.5) is working


def test_load_and_weight_scale_the_score() -> None:
    """Equal response times: the score grows with requests in flight, per weight."""
    heavy = FakeServer("heavy", 1, weight=2, active=2)
    light = FakeServer("light", 1, weight=1, active=1)
    strategy = PeakEwmaLeastTime()
    for server in (heavy, light):
        respond(strategy, server, 0.0, 0.1)
    # heavy: 0.1 * 3 / 2 = 0.15 < light: 0.1 * 2 / 1 = 0.2
    assert strategy.pick([heavy, light], CONTEXT, 0.1) is heavy
    heavy.active = 3
    # heavy: 0.1 * 4 / 2 = 0.2 = light: then the lower active/weight wins.
    assert strategy.pick([heavy, light], CONTEXT, 0.1) is light


def test_ties_take_turns() -> None:
    """Servers with the same score are picked in turn."""
    servers = [FakeServer(host, 1) for host in "xyz"]
    strategy = PeakEwmaLeastTime()
    picks = "".join(strategy.pick(servers, CONTEXT, 0.0).host for _ in range(6))
    assert picks == "xyzxyz"


def test_shares_favour_the_faster_servers() -> None:
    """Under steady load the fastest server takes most requests; all get some."""
    latency = {"fast": 0.01, "medium": 0.02, "slow": 0.04}
    servers = [FakeServer(name, 1) for name in latency]
    strategy = PeakEwmaLeastTime(decay=1.0)
    counts: Counter[str] = Counter()
    # Ten concurrent clients, each sending its next request when one ends.
    in_flight: list[tuple[float, FakeServer]] = []
    now = 0.0
    for _ in range(6000):
        while len(in_flight) >= 10:
            in_flight.sort(key=lambda item: item[0])
            ends, done = in_flight.pop(0)
            now = ends
            done.active -= 1
            strategy.finished(done, now, latency[done.host], False)
        chosen = strategy.pick(servers, CONTEXT, now)
        assert isinstance(chosen, FakeServer)
        chosen.active += 1
        strategy.started(chosen, now)
        counts[chosen.host] += 1
        in_flight.append((now + latency[chosen.host], chosen))
    # Scores even out when 0.01(a+1) = 0.02(m+1) = 0.04(s+1) with a+m+s = 10
    # requests in flight: a = 6.4, m = 2.7, s = 0.9, i.e. 640, 135 and 21
    # requests per second: shares of 80%, 17% and 3%.  Allow 6 points.
    assert counts["fast"] / 6000 == pytest.approx(0.80, abs=0.06)
    assert counts["medium"] / 6000 == pytest.approx(0.17, abs=0.06)
    assert 0.01 < counts["slow"] / 6000 < 0.08


def test_servers_leaving_and_returning() -> None:
    """A server that was out comes back with its estimate decayed, and is used."""
    a, b = FakeServer("a", 1), FakeServer("b", 1)
    strategy = PeakEwmaLeastTime(decay=10.0)
    respond(strategy, a, 0.0, 0.1)
    respond(strategy, b, 0.0, 0.2)
    for second in range(1, 100):
        assert strategy.pick([a], CONTEXT, float(second)) is a
        respond(strategy, a, float(second), 0.1)
    # b's 0.2s has decayed to almost nothing while it was out.
    assert strategy.pick([a, b], CONTEXT, 100.0) is b
