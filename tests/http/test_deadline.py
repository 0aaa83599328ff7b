"""Tests for edgeproxy.http.deadline: one re-armable timer per connection."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from edgeproxy.http.deadline import Deadline


def test_expiry_reports_the_kind(clock: MemoryReactorClock) -> None:
    """An armed deadline calls back with what it was armed for."""
    expired: list[str] = []
    deadline: Deadline[str] = Deadline(clock, expired.append)
    deadline.arm("head", 5)
    clock.advance(4.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == ["head"]
    assert deadline.kind is None


def test_rearming_moves_the_one_pending_call(clock: MemoryReactorClock) -> None:
    """Re-arming restarts the countdown without a second timer."""
    expired: list[str] = []
    deadline: Deadline[str] = Deadline(clock, expired.append)
    deadline.arm("idle", 5)
    clock.advance(3)
    deadline.arm("body", 5)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(3)
    assert expired == []
    clock.advance(2)
    assert expired == ["body"]


def test_disarmed_deadline_fires_into_nothing(clock: MemoryReactorClock) -> None:
    """After disarm nothing expires, though the call is kept for re-use."""
    expired: list[str] = []
    deadline: Deadline[str] = Deadline(clock, expired.append)
    deadline.arm("idle", 5)
    deadline.disarm()
    clock.advance(10)
    assert expired == []


def test_cancel_drops_the_pending_call(clock: MemoryReactorClock) -> None:
    """Cancelling leaves no timer behind in the reactor."""
    deadline: Deadline[str] = Deadline(clock, lambda kind: None)
    deadline.arm("idle", 5)
    deadline.cancel()
    assert clock.getDelayedCalls() == []


def test_rearming_sooner_moves_the_call_earlier(clock: MemoryReactorClock) -> None:
    """A deadline re-armed for sooner than the pending call expires on time."""
    expired: list[str] = []
    deadline: Deadline[str] = Deadline(clock, expired.append)
    deadline.arm("idle", 75)
    deadline.arm("head", 10)
    clock.advance(10)
    assert expired == ["head"]
    assert clock.getDelayedCalls() == []


def test_rearming_many_times_keeps_one_call(clock: MemoryReactorClock) -> None:
    """Re-armed on every request, a deadline still fires once, at the last due time."""
    expired: list[str] = []
    deadline: Deadline[str] = Deadline(clock, expired.append)
    for _ in range(5):
        deadline.arm("idle", 60)
        clock.advance(30)
        deadline.disarm()
    deadline.arm("idle", 60)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(59.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == ["idle"]
    assert clock.getDelayedCalls() == []


def test_rearming_in_the_callback_starts_afresh(clock: MemoryReactorClock) -> None:
    """A deadline armed again by its own expiry counts from then."""
    expired: list[str] = []

    def again(kind: str) -> None:
        expired.append(kind)
        if len(expired) == 1:
            deadline.arm("again", 5)

    deadline: Deadline[str] = Deadline(clock, again)
    deadline.arm("first", 5)
    clock.advance(5)
    clock.advance(4.9)
    assert expired == ["first"]
    clock.advance(0.1)
    assert expired == ["first", "again"]
