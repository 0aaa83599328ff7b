"""Tests for edgeproxy.core.circuit: the circuit breaker state machine."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.circuit import (
    CircuitBreaker,
    CircuitPolicy,
    CircuitState,
    CircuitTransition,
    Permit,
    Refusal,
)

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

Script = list[tuple[float, str]]


def run(breaker: CircuitBreaker, script: Script) -> None:
    """
    Play ``script``: at each time, ``ok`` or ``fail`` is a request let through
    with that outcome, ``refused`` a request the breaker must refuse.
    """
    for now, expected in script:
        decision = breaker.admit(now)
        if expected == "refused":
            assert isinstance(decision, Refusal), (now, expected)
        else:
            assert isinstance(decision, Permit), (now, expected)
            breaker.record(decision, expected == "fail", now)


def failures(count: int, at: float = 0.0) -> Script:
    """``count`` failed requests at ``at``."""
    return [(at, "fail")] * count


THREE_IN_A_ROW = CircuitPolicy(failure_threshold=3, open_for=30)
HALF_ON_FOUR = CircuitPolicy(
    failure_threshold=None, failure_rate=50, window=10, min_requests=4, open_for=30
)


@pytest.mark.parametrize(
    ("policy", "script", "state"),
    [
        (THREE_IN_A_ROW, [], CLOSED),
        (THREE_IN_A_ROW, failures(2), CLOSED),
        (THREE_IN_A_ROW, failures(3), OPEN),
        (THREE_IN_A_ROW, [*failures(2), (0, "ok"), *failures(2)], CLOSED),
        (THREE_IN_A_ROW, [*failures(3), (29.9, "refused")], OPEN),
        (THREE_IN_A_ROW, [*failures(3), (30, "ok")], CLOSED),
        (THREE_IN_A_ROW, [*failures(3), (30, "fail")], OPEN),
        (THREE_IN_A_ROW, [*failures(3), (30, "fail"), (59, "refused")], OPEN),
        (THREE_IN_A_ROW, [*failures(3), (30, "fail"), (60, "ok")], CLOSED),
        # After closing, the run starts again from nothing.
        (THREE_IN_A_ROW, [*failures(3), (30, "ok"), *failures(2, at=31)], CLOSED),
        (HALF_ON_FOUR, failures(3), CLOSED),
        (HALF_ON_FOUR, [(0, "ok"), (1, "fail"), (2, "ok"), (3, "fail")], OPEN),
        (HALF_ON_FOUR, [(0, "ok"), (1, "fail"), (2, "ok"), (3, "ok")], CLOSED),
        (HALF_ON_FOUR, [(0, "ok"), (1, "ok"), (2, "ok"), *failures(2, at=3)], CLOSED),
        # Failures older than the window no longer count.
        (HALF_ON_FOUR, [*failures(3), (10.5, "ok"), (10.6, "ok")], CLOSED),
        (HALF_ON_FOUR, [*failures(3, at=5), (10.5, "ok")], OPEN),
        # Both ways together: either one opens the breaker.
        (
            CircuitPolicy(failure_threshold=2, failure_rate=90, min_requests=10),
            failures(2),
            OPEN,
        ),
        (
            CircuitPolicy(failure_threshold=5, failure_rate=50, min_requests=4),
            [(0, "fail"), (0, "ok"), (0, "fail"), (0, "ok")],
            OPEN,
        ),
    ],
)
def test_state_after(
    policy: CircuitPolicy, script: Script, state: CircuitState
) -> None:
    """The breaker opens and recovers as its policy says."""
    breaker = CircuitBreaker(policy)
    run(breaker, script)
    assert breaker.state is state


def test_retry_after_counts_down() -> None:
    """A refusal says how long until a probe may go through."""
    breaker = CircuitBreaker(THREE_IN_A_ROW)
    run(breaker, failures(3, at=100))
    assert breaker.admit(100) == Refusal(30)
    assert breaker.admit(112.5) == Refusal(17.5)


def test_half_open_lets_only_the_probes_through() -> None:
    """Half-open admits ``half_open_requests`` probes at once and refuses others."""
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, open_for=10, half_open_requests=2)
    )
    run(breaker, failures(1))
    first, second = breaker.admit(10), breaker.admit(10)
    assert isinstance(first, Permit) and first.probe
    assert isinstance(second, Permit) and second.probe
    assert breaker.admit(10) == Refusal(0)
    breaker.record(first, False, 11)
    assert breaker.state is HALF_OPEN
    assert isinstance(breaker.admit(11), Permit)


def test_half_open_closes_after_every_probe_succeeded() -> None:
    """Good probes close the breaker only once ``half_open_requests`` came back."""
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, open_for=10, half_open_requests=2)
    )
    run(breaker, [*failures(1), (10, "ok")])
    assert breaker.state is HALF_OPEN
    run(breaker, [(11, "ok")])
    assert breaker.state is CLOSED


def test_lost_probe_frees_its_place() -> None:
    """A probe whose outcome never comes back stops blocking after ``open_for``."""
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, open_for=10))
    run(breaker, failures(1))
    assert isinstance(breaker.admit(10), Permit)
    assert breaker.admit(19.9) == Refusal(0)
    assert isinstance(breaker.admit(20), Permit)


@pytest.mark.parametrize("failed", [True, False])
def test_outcome_of_an_older_state_is_ignored(failed: bool) -> None:
    """A request let through while closed does not decide the half-open breaker."""
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, open_for=10))
    slow = breaker.admit(0)
    assert isinstance(slow, Permit)
    run(breaker, failures(1))
    probe = breaker.admit(10)
    assert isinstance(probe, Permit)
    breaker.record(slow, failed, 11)
    assert breaker.state is HALF_OPEN
    breaker.record(probe, False, 12)
    assert breaker.state is CLOSED


def test_late_failure_does_not_extend_the_open_period() -> None:
    """Failures that come back while open leave the reopening time alone."""
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, open_for=10))
    slow = breaker.admit(0)
    assert isinstance(slow, Permit)
    run(breaker, failures(1))
    breaker.record(slow, True, 5)
    assert isinstance(breaker.admit(10), Permit)


def test_transitions_are_reported() -> None:
    """Each change of state is reported once, with its time and reason."""
    seen: list[CircuitTransition] = []
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=2, open_for=10), seen.append
    )
    run(breaker, [*failures(2, at=1), (11, "fail"), (21, "ok")])
    assert seen == [
        CircuitTransition(CLOSED, OPEN, 1, "2 failures in a row"),
        CircuitTransition(OPEN, HALF_OPEN, 11, "open_for has passed"),
        CircuitTransition(HALF_OPEN, OPEN, 11, "a probe failed"),
        CircuitTransition(OPEN, HALF_OPEN, 21, "open_for has passed"),
        CircuitTransition(HALF_OPEN, CLOSED, 21, "the probes succeeded"),
    ]


def test_rate_transition_reason() -> None:
    """A breaker opened by the failure rate says how many failed over the window."""
    seen: list[CircuitTransition] = []
    breaker = CircuitBreaker(HALF_ON_FOUR, seen.append)
    run(breaker, [(0, "ok"), (1, "fail"), (2, "ok"), (3, "fail")])
    assert [transition.reason for transition in seen] == [
        "2 of 4 requests failed in 10s"
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"failure_threshold": None},
        {"failure_threshold": 0},
        {"failure_rate": 0},
        {"failure_rate": 101},
        {"window": 0},
        {"open_for": -1},
        {"min_requests": 0},
        {"half_open_requests": 0},
    ],
)
def test_impossible_policy(fields: dict[str, Any]) -> None:
    """A policy that could never work is refused when made."""
    with pytest.raises(ValueError):
        CircuitPolicy(**fields)
