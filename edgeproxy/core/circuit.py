"""
A circuit breaker as a state machine fed outcomes and time.

The breaker is *closed* while requests go through and their outcomes are
counted.  When the failures cross the policy's line it *opens*: every request
is refused for ``open_for`` seconds.  The first request after that finds it
*half-open* and goes through as a probe, as do up to ``half_open_requests``
requests at once; the rest are refused.  One failed probe opens the breaker
again; ``half_open_requests`` good probes close it.

Two ways to trip, usable together (either one opens the breaker):

- ``failure_threshold``: that many failures in a row;
- ``failure_rate``: at least that percentage of the outcomes seen over the
  last ``window`` seconds failed, once there are at least ``min_requests`` of
  them.  The window slides in tenths: the outcomes are counted in ten buckets
  of ``window / 10`` seconds each, so memory stays the same at any rate.

Each request that goes through holds a :class:`Permit` and gives it back with
its outcome to :meth:`CircuitBreaker.record`.  A permit names the period (the
*epoch*) it was issued in: an outcome that comes back after the breaker has
changed state says nothing about the new state and is ignored.  A probe whose
outcome never comes back (its client went away) frees its place after
``open_for`` seconds, so a lost probe cannot hold the breaker half-open forever.

Nothing here reads a clock: ``now`` is an argument, in seconds.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

BUCKETS = 10
"""How many buckets the failure-rate window is counted in."""


class CircuitState(enum.Enum):
    """The three states of a breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class CircuitPolicy:
    """
    When a breaker opens and how it recovers.

    :ivar failure_threshold: failures in a row that open the breaker, or
        ``None`` to not count runs.
    :ivar failure_rate: the percentage (more than 0, at most 100) of failed
        outcomes over ``window`` that opens the breaker, or ``None``.
    :ivar window: seconds of outcomes that ``failure_rate`` looks at.
    :ivar min_requests: outcomes the window must hold before
        ``failure_rate`` applies.
    :ivar open_for: seconds the breaker refuses requests once open.
    :ivar half_open_requests: probes allowed at once when half-open, and the
        good probes needed to close again.
    """

    failure_threshold: int | None = 5
    failure_rate: float | None = None
    window: float = 10.0
    min_requests: int = 20
    open_for: float = 30.0
    half_open_requests: int = 1

    def __post_init__(self) -> None:
        """Refuse a policy that could never work."""
        if self.failure_threshold is None and self.failure_rate is None:
            raise ValueError("a policy needs failure_threshold or failure_rate")
        if self.failure_threshold is not None and self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.failure_rate is not None and not 0 < self.failure_rate <= 100:
            raise ValueError("failure_rate must be more than 0 and at most 100")
        if self.window <= 0 or self.open_for <= 0:
            raise ValueError("window and open_for must be more than 0")
        if self.min_requests < 1 or self.half_open_requests < 1:
            raise ValueError("min_requests and half_open_requests must be at least 1")


@dataclass(frozen=True)
class Permit:
    """
    Leave for one request to go through; give it back to :meth:`record`.

    :ivar epoch: the breaker's period it was issued in.
    :ivar probe: whether it is one of the half-open probes.
    :ivar serial: tells the permits of one breaker apart.
    """

    epoch: int
    probe: bool
    serial: int


@dataclass(frozen=True)
class Refusal:
    """
    The breaker refused a request.

    :ivar retry_after: seconds until a request may be let through again (0
        when half-open and every probe place is taken).
    """

    retry_after: float


@dataclass(frozen=True)
class CircuitTransition:
    """
    A change of state, for the log.

    :ivar old: the state before.
    :ivar new: the state after.
    :ivar at: when, in seconds.
    :ivar reason: why, in words for an operator.
    """

    old: CircuitState
    new: CircuitState
    at: float
    reason: str


class _RateWindow:
    """Outcomes over the last ``window`` seconds, counted in buckets."""

    def __init__(self, window: float) -> None:
        self._width = window / BUCKETS
        # Each bucket is [index, outcomes, failures]; index = floor(now / width).
        self._buckets: deque[list[int]] = deque()

    def add(self, failed: bool, now: float) -> None:
        index = math.floor(now / self._width)
        self._expire(index)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += int(failed)

    def counts(self, now: float) -> tuple[int, int]:
        """Return ``(outcomes, failures)`` inside the window at ``now``."""
        self._expire(math.floor(now / self._width))
        return (
            sum(bucket[1] for bucket in self._buckets),
            sum(bucket[2] for bucket in self._buckets),
        )

    def clear(self) -> None:
        self._buckets.clear()

    def _expire(self, index: int) -> None:
        while self._buckets and self._buckets[0][0] <= index - BUCKETS:
            self._buckets.popleft()


class CircuitBreaker:
    """
    One breaker: call :meth:`admit` before a request, :meth:`record` after it.

    :param policy: when to open and how to recover.
    :param on_transition: called with every change of state (to log it).
    """

    def __init__(
        self,
        policy: CircuitPolicy,
        on_transition: Callable[[CircuitTransition], None] | None = None,
    ) -> None:
        self.policy = policy
        self.on_transition = on_transition
        self.state = CircuitState.CLOSED
        self._epoch = 0
        self._serial = 0
        self._opened_at = 0.0
        self._run = 0
        self._window = _RateWindow(policy.window)
        self._good_probes = 0
        # The probes in flight: serial -> when issued.
        self._probes: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state.value}>"

    def admit(self, now: float) -> Permit | Refusal:
        """Decide whether a request may go through at ``now``."""
        if self.state is CircuitState.OPEN:
            reopens = self._opened_at + self.policy.open_for
            if now < reopens:
                return Refusal(reopens - now)
            self._change(CircuitState.HALF_OPEN, now, "open_for has passed")
        if self.state is CircuitState.CLOSED:
            return self._permit(probe=False)
        lost = [
            serial
            for serial, issued in self._probes.items()
            if now - issued >= self.policy.open_for
        ]
        for serial in lost:
            del self._probes[serial]
        if len(self._probes) >= self.policy.half_open_requests:
            return Refusal(0.0)
        permit = self._permit(probe=True)
        self._probes[permit.serial] = now
        return permit

    def record(self, permit: Permit, failed: bool, now: float) -> None:
        """Count the outcome of a request that went through with ``permit``."""
        if permit.epoch != self._epoch:
            return
        if self.state is CircuitState.HALF_OPEN:
            self._probes.pop(permit.serial, None)
            if failed:
                self._open(now, "a probe failed")
                return
            self._good_probes += 1
            if self._good_probes >= self.policy.half_open_requests:
                self._change(CircuitState.CLOSED, now, "the probes succeeded")
            return
        self._record_closed(failed, now)

    def _record_closed(self, failed: bool, now: float) -> None:
        policy = self.policy
        self._run = self._run + 1 if failed else 0
        if policy.failure_threshold is not None and self._run >= (
            policy.failure_threshold
        ):
            self._open(now, f"{self._run} failures in a row")
            return
        if policy.failure_rate is None:
            return
        self._window.add(failed, now)
        outcomes, failures = self._window.counts(now)
        if outcomes >= policy.min_requests and (
            failures * 100 >= policy.failure_rate * outcomes
        ):
            self._open(
                now,
                f"{failures} of {outcomes} requests failed in {policy.window:g}s",
            )

    def _permit(self, probe: bool) -> Permit:
        self._serial += 1
        return Permit(self._epoch, probe, self._serial)

    def _open(self, now: float, reason: str) -> None:
        self._opened_at = now
        self._change(CircuitState.OPEN, now, reason)

    def _change(self, new: CircuitState, now: float, reason: str) -> None:
        old = self.state
        self.state = new
        self._epoch += 1
        self._run = 0
        self._window.clear()
        self._good_probes = 0
        self._probes.clear()
        if self.on_transition is not None:
            self.on_transition(CircuitTransition(old, new, now, reason))
