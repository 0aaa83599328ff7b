"""Tests for edgeproxy.upstream.monitor: the health-check schedule on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest
from twisted.application.service import IService
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from zope.interface import implementer
from zope.interface.verify import verifyObject

from edgeproxy.balancing.round_robin import RoundRobin
from edgeproxy.core.health import HealthResult
from edgeproxy.interfaces import IHealthCheck, IUpstreamServer
from edgeproxy.upstream.monitor import GRACE, HealthMonitor
from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import HealthPolicy, ServerTransition, UpstreamServer
from edgeproxy.upstream.server_list import parse_servers

UP = HealthResult(True, "connected")
Answer = Callable[[IUpstreamServer], "HealthResult | Deferred[HealthResult] | object"]


@implementer(IHealthCheck)
class ScriptedCheck:
    """A health check that answers what the test says and records each call."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float]] = []
        self.timeouts: list[float] = []
        self.answer: Answer = lambda server: UP

    def check(self, server: IUpstreamServer, timeout: float) -> Deferred[HealthResult]:
        self.calls.append((server.key, self.clock.seconds()))
        self.timeouts.append(timeout)
        answer = self.answer(server)
        if isinstance(answer, Deferred):
            return answer
        # Some tests answer with a wrong value on purpose.
        return succeed(cast(HealthResult, answer))


def make_pool(
    servers: str = "10.0.0.1:80, 10.0.0.2:80", policy: HealthPolicy | None = None
) -> UpstreamPool:
    """A pool of the servers written as in a configuration."""
    specs, problems = parse_servers(servers, allow_tls=False)
    assert problems == ()
    return UpstreamPool("web", [UpstreamServer(s, policy) for s in specs], RoundRobin())


def start_monitor(
    pool: UpstreamPool | None = None, interval: float = 10.0, timeout: float = 2.0
) -> tuple[HealthMonitor, ScriptedCheck, Clock, list[ServerTransition]]:
    """Start a monitor with a scripted check on a fake clock."""
    clock = Clock()
    check = ScriptedCheck(clock)
    transitions: list[ServerTransition] = []
    monitor = HealthMonitor(
        pool if pool is not None else make_pool(),
        check,
        clock,
        interval,
        timeout,
        on_transition=transitions.append,
    )
    monitor.startService()
    return monitor, check, clock, transitions


def test_it_is_a_service() -> None:
    """The monitor provides IService and runs between start and stop."""
    monitor, _check, _clock, _seen = start_monitor()
    assert verifyObject(IService, monitor)
    assert monitor.running
    monitor.stopService()
    assert not monitor.running


@pytest.mark.parametrize(("interval", "timeout"), [(0.0, 1.0), (5.0, 0.0), (-1, 1)])
def test_interval_and_timeout_must_be_positive(interval: float, timeout: float) -> None:
    """A zero or negative interval or timeout is refused."""
    with pytest.raises(ValueError, match="must be more than 0"):
        HealthMonitor(make_pool(), ScriptedCheck(Clock()), Clock(), interval, timeout)


def test_first_probes_are_spread_then_every_interval() -> None:
    """Server i of n is first probed at i*interval/n, then every interval."""
    pool = make_pool("10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80, 10.0.0.4:80")
    _monitor, check, clock, _seen = start_monitor(pool, interval=8.0, timeout=1.5)
    clock.pump([1.0] * 17)
    assert check.calls == [
        ("10.0.0.1:80", 0.0),
        ("10.0.0.2:80", 2.0),
        ("10.0.0.3:80", 4.0),
        ("10.0.0.4:80", 6.0),
        ("10.0.0.1:80", 8.0),
        ("10.0.0.2:80", 10.0),
        ("10.0.0.3:80", 12.0),
        ("10.0.0.4:80", 14.0),
        ("10.0.0.1:80", 16.0),
    ]
    assert set(check.timeouts) == {1.5}


def test_fall_and_rise_through_the_pool() -> None:
    """fall failed probes take a server out of the pool; rise good ones return it."""
    pool = make_pool(policy=HealthPolicy(rise=2, fall=3))
    sick = {"10.0.0.2:80"}
    _monitor, check, clock, seen = start_monitor(pool, interval=10.0)
    check.answer = lambda server: (
        HealthResult(False, "connection refused") if server.key in sick else UP
    )
    clock.pump([5.0] * 5)  # 10.0.0.2 is probed at 5, 15, 25
    assert seen == [
        ServerTransition(
            "10.0.0.2:80", "health", "up", "down", "connection refused", 25.0
        )
    ]
    assert [s.key for s in pool.candidates(clock.seconds())] == ["10.0.0.1:80"]
    sick.clear()
    clock.pump([5.0] * 4)  # probed at 35 and 45
    assert seen[1:] == [
        ServerTransition(
            "10.0.0.2:80", "health", "down", "up", "2 health checks passed", 45.0
        )
    ]
    assert len(pool.candidates(clock.seconds())) == 2


def test_results_are_recorded_on_the_servers() -> None:
    """Each probe's result and time are recorded on its server."""
    pool = make_pool("10.0.0.1:80")
    _monitor, _check, _clock, _seen = start_monitor(pool)
    server = pool.servers[0]
    assert server.last_check == UP
    assert server.stats(0.0).last_check_at == 0.0


def raise_boom(server: IUpstreamServer) -> HealthResult:
    """A check's answer that raises."""
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (raise_boom, "health check error: RuntimeError: boom"),
        (lambda server: fail(ValueError("bad")), "health check error: ValueError: bad"),
        (
            lambda server: "up",
            "health check error: TypeError: the check returned 'up', "
            "not a HealthResult",
        ),
    ],
    ids=["raises", "fails", "not-a-result"],
)
def test_the_loop_survives_a_failing_probe(answer: Answer, reason: str) -> None:
    """A check that raises or fails is a logged down probe, and probing goes on."""
    pool = make_pool("10.0.0.1:80")
    clock = Clock()
    check = ScriptedCheck(clock)
    check.answer = answer
    monitor = HealthMonitor(pool, check, clock, 10.0, 2.0)
    with capturedLogs() as events:
        monitor.startService()
    server = pool.servers[0]
    assert server.last_check == HealthResult(False, reason)
    [event] = events
    assert event["log_level"] is LogLevel.error
    assert event["server"] == "10.0.0.1:80"
    assert "log_failure" in event
    check.answer = lambda server: UP
    clock.advance(10.0)
    assert check.calls == [("10.0.0.1:80", 0.0), ("10.0.0.1:80", 10.0)]
    assert server.last_check == UP


def test_a_slow_probe_is_not_stacked() -> None:
    """While a server's probe is in flight, its ticks pass without a second probe."""
    pool = make_pool("10.0.0.1:80")
    clock = Clock()
    check = ScriptedCheck(clock)
    pending: Deferred[HealthResult] = Deferred()
    check.answer = lambda server: pending
    monitor = HealthMonitor(pool, check, clock, 1.0, 30.0)
    monitor.startService()
    clock.pump([1.0] * 5)
    assert check.calls == [("10.0.0.1:80", 0.0)]
    assert monitor.probes_in_flight == 1
    check.answer = lambda server: UP
    pending.callback(HealthResult(False, "slow"))
    assert pool.servers[0].last_check == HealthResult(False, "slow")
    assert monitor.probes_in_flight == 0
    clock.advance(1.0)
    assert check.calls == [("10.0.0.1:80", 0.0), ("10.0.0.1:80", 6.0)]


def test_a_check_that_never_answers_is_given_up_on() -> None:
    """A probe with no result after timeout plus grace is cancelled and counted down."""
    pool = make_pool("10.0.0.1:80")
    clock = Clock()
    check = ScriptedCheck(clock)
    check.answer = lambda server: Deferred()
    monitor = HealthMonitor(pool, check, clock, 10.0, 2.0)
    with capturedLogs() as events:
        monitor.startService()
        clock.advance(2.0 + GRACE - 0.01)
        assert pool.servers[0].last_check is None
        clock.advance(0.01)
    assert pool.servers[0].last_check == HealthResult(
        False, "health check gave no result within 2s"
    )
    assert [event["log_level"] for event in events] == [LogLevel.warn]
    clock.advance(10.0)
    assert len(check.calls) == 2


def test_stop_cancels_probes_and_timers_and_drops_results() -> None:
    """Stopping cancels probes in flight without recording them, and leaves no timer."""
    pool = make_pool()
    clock = Clock()
    check = ScriptedCheck(clock)
    cancelled: list[str] = []

    def pending(server: IUpstreamServer) -> Deferred[HealthResult]:
        return Deferred(lambda d: cancelled.append(server.key))

    check.answer = pending
    monitor = HealthMonitor(pool, check, clock, 10.0, 2.0)
    monitor.startService()  # 10.0.0.1 now; 10.0.0.2 waits for its turn at 5s
    monitor.stopService()
    assert cancelled == ["10.0.0.1:80"]
    assert [server.last_check for server in pool.servers] == [None, None]
    assert clock.getDelayedCalls() == []
    assert monitor.probes_in_flight == 0
    clock.advance(60.0)
    assert check.calls == [("10.0.0.1:80", 0.0)]


def test_a_restarted_monitor_probes_again() -> None:
    """A monitor stopped and started again resumes its schedule."""
    monitor, check, clock, _seen = start_monitor(make_pool("10.0.0.1:80"))
    monitor.stopService()
    clock.advance(5.0)
    monitor.startService()
    clock.advance(10.0)
    assert [at for _key, at in check.calls] == [0.0, 5.0, 15.0]


def test_disabled_servers_are_not_probed_but_draining_ones_are() -> None:
    """A disabled server is skipped until enabled; a draining one is probed."""
    pool = make_pool()
    pool.disable("10.0.0.1:80", 0.0)
    pool.drain("10.0.0.2:80", 0.0)
    _monitor, check, clock, _seen = start_monitor(pool, interval=10.0)
    clock.pump([5.0] * 4)
    assert [key for key, _at in check.calls] == ["10.0.0.2:80", "10.0.0.2:80"]
    pool.enable("10.0.0.1:80", 20.0)
    clock.pump([5.0, 5.0])
    assert check.calls[-2:] == [("10.0.0.2:80", 25.0), ("10.0.0.1:80", 30.0)]


def test_a_failing_transition_hook_is_logged_and_probing_goes_on() -> None:
    """An on_transition hook that raises is logged; the schedule continues."""
    pool = make_pool("10.0.0.1:80", HealthPolicy(fall=1))
    clock = Clock()
    check = ScriptedCheck(clock)
    check.answer = lambda server: HealthResult(False, "refused")

    def broken(transition: ServerTransition) -> None:
        raise RuntimeError("log full")

    monitor = HealthMonitor(pool, check, clock, 10.0, 2.0, on_transition=broken)
    with capturedLogs() as events:
        monitor.startService()
    assert [event["transition"] for event in events] == [
        "10.0.0.1:80 health up -> down (refused)"
    ]
    clock.advance(10.0)
    assert len(check.calls) == 2


def test_a_reload_hands_the_servers_to_the_new_monitor() -> None:
    """After a reload the old monitor's late result is dropped; the new one records."""
    old_pool = make_pool("10.0.0.1:80")
    old, old_check, clock, _seen = start_monitor(old_pool)
    late: Deferred[HealthResult] = Deferred()
    old_check.answer = lambda server: late
    clock.advance(10.0)  # the old monitor's second probe is in flight
    new_pool = make_pool("10.0.0.1:80")
    new_pool.carry_state_from(old_pool, clock.seconds())
    new_check = ScriptedCheck(clock)
    new_check.answer = lambda server: HealthResult(False, "refused")
    new = HealthMonitor(new_pool, new_check, clock, 10.0, 2.0)
    new.startService()
    old.stopService()
    assert late.called  # cancelled
    # Both pools see the new monitor's result: the servers share their state.
    assert old_pool.servers[0].last_check == HealthResult(False, "refused")
    assert new_pool.servers[0].last_check == HealthResult(False, "refused")
