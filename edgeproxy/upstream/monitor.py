"""
The service that runs a pool's active health check on a timer.

One :class:`HealthMonitor` watches one :class:`~edgeproxy.upstream.pool.UpstreamPool`.
After a reload the new pool gets a new monitor and the old one is stopped; the
servers the pools share keep their health (their state is shared, see
:meth:`~edgeproxy.upstream.pool.UpstreamPool.carry_state_from`), and a probe
of the old monitor that was still in flight is dropped, not recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from edgeproxy.core.health import HealthResult
from edgeproxy.interfaces import IHealthCheck
from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import AdminState, ServerTransition, UpstreamServer

GRACE = 1.0
"""
Seconds past ``timeout`` after which the monitor gives up on a probe itself.

A check promises to answer within ``timeout``; one that breaks the promise
must not stop its server from being checked ever again.
"""


class HealthMonitor(Service):
    """
    Probes every server of a pool every ``interval`` seconds.

    The first probes are spread evenly over the first interval (server *i* of
    *n* is first probed ``i * interval / n`` seconds after the start), so that
    a start or a reload does not send every probe at once.  Each server then
    has its own schedule with at most one probe in flight: a probe that takes
    longer than ``interval`` delays the next one to the following tick instead
    of stacking another beside it.

    Each result goes to :meth:`UpstreamServer.record_check` (which applies
    ``rise`` and ``fall``), and a resulting :class:`ServerTransition` to
    ``on_transition``.  A check that raises, fails or returns something other
    than a :class:`HealthResult` counts as a down probe whose reason is the
    error; the error is logged and the schedule goes on.

    Servers disabled by an operator (or ``down`` in the configuration) are
    not probed while disabled: they are out for maintenance, and probing them
    would only fill their logs and ours.  Their health is probed again from
    the next tick after they are enabled.  Draining servers are probed.

    :param pool: the servers to watch.
    :param check: the pool's health check.
    :param reactor: provides ``IReactorTime``; its clock drives the schedule
        and stamps the results.
    :param interval: seconds between the starts of two probes of a server.
    :param timeout: seconds a probe may take (passed to the check).
    :param on_transition: called with each health change that a probe causes
        (the caller logs it); an exception it raises is logged and ignored.
    :raises ValueError: if ``interval`` or ``timeout`` is not positive.
    """

    _log = Logger()

    def __init__(
        self,
        pool: UpstreamPool,
        check: IHealthCheck,
        reactor: Any,
        interval: float,
        timeout: float,
        *,
        on_transition: Callable[[ServerTransition], None] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be more than 0")
        if timeout <= 0:
            raise ValueError("timeout must be more than 0")
        self.pool = pool
        self.check = check
        self.interval = interval
        self.timeout = timeout
        self.on_transition = on_transition
        self._reactor = reactor
        self._loops: list[LoopingCall] = []
        self._first_starts: list[IDelayedCall] = []
        self._in_flight: dict[str, Deferred[None]] = {}

    def __repr__(self) -> str:
        return f"<HealthMonitor {self.pool.name} every {self.interval:g}s>"

    @property
    def probes_in_flight(self) -> int:
        """How many probes have been sent and not answered yet."""
        return len(self._in_flight)

    def startService(self) -> None:
        """Start each server's schedule, the first probes spread over one interval."""
        super().startService()
        servers = self.pool.servers
        for index, server in enumerate(servers):
            loop = LoopingCall(self._probe, server)
            loop.clock = self._reactor
            self._loops.append(loop)
            delay = index * self.interval / len(servers)
            if delay == 0:
                self._start(loop)
            else:
                self._first_starts.append(
                    self._reactor.callLater(delay, self._start, loop)
                )

    def stopService(self) -> None:
        """Stop every schedule; cancel the probes in flight and drop their results."""
        super().stopService()
        for call in self._first_starts:
            if call.active():
                call.cancel()
        self._first_starts = []
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        in_flight = list(self._in_flight.values())
        self._in_flight = {}
        for probe in in_flight:
            probe.cancel()

    def _start(self, loop: LoopingCall) -> None:
        loop.start(self.interval, now=True).addErrback(self._loop_broke)

    def _loop_broke(self, failure: Failure) -> None:
        # _probe traps every error, so this is a bug in the monitor itself.
        self._log.failure(
            "health checks of upstream {upstream} stopped",
            failure,
            upstream=self.pool.name,
        )

    def _probe(self, server: UpstreamServer) -> Deferred[None] | None:
        """Probe ``server`` once; the loop waits for the returned Deferred."""
        if not self.running or server.admin_state is AdminState.DISABLED:
            return None
        probe: Deferred[HealthResult] = maybeDeferred(
            self.check.check, server, self.timeout
        )
        overdue = False

        def give_up() -> None:
            nonlocal overdue
            overdue = True
            probe.cancel()

        guard = self._reactor.callLater(self.timeout + GRACE, give_up)

        def record(outcome: HealthResult | Failure) -> None:
            if guard.active():
                guard.cancel()
            if self._in_flight.pop(server.key, None) is None and not self.running:
                return  # stopped meanwhile: a newer monitor owns this server now
            if overdue:
                outcome = HealthResult(
                    False, f"health check gave no result within {self.timeout:g}s"
                )
                self._log.warn(
                    "health check {check!r} of {server} broke its timeout",
                    check=self.check,
                    server=server.key,
                    upstream=self.pool.name,
                )
            self._record(outcome, server)

        done: Deferred[None] = probe.addCallback(_must_be_result).addBoth(record)
        if not done.called:
            self._in_flight[server.key] = done
        return done

    def _record(self, outcome: HealthResult | Failure, server: UpstreamServer) -> None:
        """Apply one probe's outcome to ``server``; never raises."""
        if isinstance(outcome, Failure):
            self._log.failure(
                "health check {check!r} of {server} failed",
                outcome,
                LogLevel.error,
                check=self.check,
                server=server.key,
                upstream=self.pool.name,
            )
            outcome = HealthResult(False, f"health check error: {_words(outcome)}")
        transition = server.record_check(outcome, self._reactor.seconds())
        if transition is not None and self.on_transition is not None:
            try:
                self.on_transition(transition)
            except Exception:
                self._log.failure(
                    "reporting {transition} failed",
                    level=LogLevel.error,
                    transition=str(transition),
                )


def _must_be_result(outcome: object) -> HealthResult:
    """Pass a check's result on, refusing anything that is not a HealthResult."""
    if not isinstance(outcome, HealthResult):
        raise TypeError(f"the check returned {outcome!r}, not a HealthResult")
    return outcome


def _words(failure: Failure) -> str:
    """``RuntimeError: boom`` for a failure."""
    name = failure.type.__name__ if failure.type is not None else "error"
    message = failure.getErrorMessage()
    return f"{name}: {message}" if message else name
