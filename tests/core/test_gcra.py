"""Tests for edgeproxy.core.gcra: rate parsing and the GCRA decision."""

from __future__ import annotations

import pytest

from edgeproxy.core.gcra import (
    GcraPolicy,
    Rate,
    decide,
    gcra,
    parse_rate,
    to_microseconds,
    whole_seconds,
)

SECOND = 1_000_000


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("10/s", 10, 1.0),
        ("100/m", 100, 60.0),
        (" 1000 / h ", 1000, 3600.0),
        ("5/d", 5, 86400.0),
        ("5/10s", 5, 10.0),
        ("1/250ms", 1, 0.25),
        ("3/1.5m", 3, 90.0),
    ],
)
def test_parse_rate(text: str, count: int, period: float) -> None:
    """Rates are N per unit, or per a multiple of a unit."""
    rate = parse_rate(text)
    assert (rate.count, rate.period, rate.text) == (count, period, text.strip())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "is not a rate"),
        ("10/week", "is not a rate"),
        ("-1/s", "is not a rate"),
        ("ten/s", "is not a rate"),
        ("0/s", "allows no request"),
        ("5/0s", "allows no request"),
        ("2000000/s", "faster than one request per microsecond"),
    ],
)
def test_parse_rate_rejects(text: str, message: str) -> None:
    """Malformed, empty and impossibly fast rates are refused with a reason."""
    with pytest.raises(ValueError, match=message):
        parse_rate(text)


@pytest.mark.parametrize(
    ("rate", "burst", "interval", "tolerance", "limit"),
    [
        ("10/s", 0, 100_000, 0, 1),
        ("10/s", 5, 100_000, 500_000, 6),
        ("100/m", 50, 600_000, 30_000_000, 51),
        ("3/s", 1, 333_333, 333_333, 2),
    ],
)
def test_policy_from_rate(
    rate: str, burst: int, interval: int, tolerance: int, limit: int
) -> None:
    """A rate and burst become an emission interval and a burst tolerance."""
    policy = GcraPolicy.from_rate(parse_rate(rate), burst)
    assert policy.emission_interval == interval
    assert policy.burst_tolerance == tolerance
    assert policy.limit == limit


def test_policy_rejects_negative_burst() -> None:
    """A negative burst is an error."""
    with pytest.raises(ValueError, match="negative"):
        GcraPolicy.from_rate(Rate(1, 1.0, "1/s"), -1)


# (tat, now, allowed, new tat, delay, retry_after, remaining, reset) with
# T = 100 and tolerance = 200 (a burst of 2).
@pytest.mark.parametrize(
    ("tat", "now", "expected"),
    [
        # At rest: the first request passes, two more may follow at once.
        (0, 1000, (True, 1100, 0, 0, 2, 100)),
        # A key whose TAT has passed is at rest too.
        (900, 1000, (True, 1100, 0, 0, 2, 100)),
        # Second and third of a burst at the same instant.
        (1100, 1000, (True, 1200, 100, 0, 1, 200)),
        (1200, 1000, (True, 1300, 200, 0, 0, 300)),
        # The fourth is refused; the state does not move; one interval to wait.
        (1300, 1000, (False, 1300, 300, 100, 0, 300)),
        # Half an interval later it still has to wait the other half.
        (1300, 1050, (False, 1300, 250, 50, 0, 250)),
        # One interval later exactly one more conforms.
        (1300, 1100, (True, 1400, 200, 0, 0, 300)),
        # Partly drained: remaining counts only whole requests.
        (1150, 1000, (True, 1250, 150, 0, 0, 250)),
    ],
)
def test_gcra_decisions(tat: int, now: int, expected: tuple[object, ...]) -> None:
    """The decision table for a burst of 2 at one request per 100 us."""
    decision = gcra(tat, now, 100, 200)
    assert (
        decision.allowed,
        decision.tat,
        decision.delay,
        decision.retry_after,
        decision.remaining,
        decision.reset,
    ) == expected


def run(policy: GcraPolicy, times: list[float]) -> list[bool]:
    """Feed requests at ``times`` (seconds) through one key's state."""
    tat = 0
    outcomes = []
    for moment in times:
        decision = decide(tat, to_microseconds(moment), policy)
        tat = decision.tat
        outcomes.append(decision.allowed)
    return outcomes


def test_no_double_burst_at_a_window_edge() -> None:
    """Requests crowding both sides of a second boundary pass once, not twice."""
    policy = GcraPolicy.from_rate(parse_rate("10/s"), 9)
    times = [0.99] * 10 + [1.01] * 10
    # The first ten use the whole burst; 20 ms later only 0.2 of a request
    # has been earned back, so the next ten are refused (a fixed window would
    # pass all twenty).
    assert run(policy, times) == [True] * 10 + [False] * 10


def test_sustained_rate_is_enforced() -> None:
    """Over 10 s of requests every 10 ms, 10/s without burst passes 100."""
    policy = GcraPolicy.from_rate(parse_rate("10/s"), 0)
    times = [i / 100 for i in range(1000)]
    assert sum(run(policy, times)) == 100


def test_no_drift_over_many_intervals() -> None:
    """A client sending at exactly the configured rate is never refused."""
    policy = GcraPolicy.from_rate(parse_rate("3/s"), 0)
    times = [i / 3 for i in range(3000)]
    assert all(run(policy, times))


@pytest.mark.parametrize(
    ("microseconds", "seconds"),
    [(0, 0), (1, 1), (999_999, 1), (SECOND, 1), (SECOND + 1, 2), (-5, 0)],
)
def test_whole_seconds(microseconds: int, seconds: int) -> None:
    """Durations round up to whole seconds, never below zero."""
    assert whole_seconds(microseconds) == seconds
