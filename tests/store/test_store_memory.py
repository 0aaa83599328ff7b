"""Tests for edgeproxy.store.memory: the in-process rate-limit store."""

from __future__ import annotations

import pytest

from edgeproxy.core.gcra import GcraDecision, GcraPolicy, parse_rate
from edgeproxy.store import RateLimitStore
from edgeproxy.store.memory import MemoryStore

SECOND = 1_000_000
TEN_PER_SECOND = GcraPolicy.from_rate(parse_rate("10/s"), 2)


def test_is_a_rate_limit_store() -> None:
    """The memory store has the shape every limiter expects."""
    store: RateLimitStore = MemoryStore()
    decision = store.take("k", TEN_PER_SECOND, 0)
    assert isinstance(decision, GcraDecision)
    assert decision.allowed


def test_burst_then_refusal_then_recovery() -> None:
    """Burst + 1 pass at once, the next is refused, one interval later one passes."""
    store = MemoryStore()
    outcomes = [store.take("k", TEN_PER_SECOND, SECOND).allowed for _ in range(4)]
    assert outcomes == [True, True, True, False]
    assert store.take("k", TEN_PER_SECOND, SECOND + 100_000).allowed
    assert not store.take("k", TEN_PER_SECOND, SECOND + 100_000).allowed


def test_keys_are_independent() -> None:
    """Spending one key's allowance leaves another key's whole."""
    store = MemoryStore()
    for _ in range(3):
        store.take("a", TEN_PER_SECOND, 0)
    assert not store.take("a", TEN_PER_SECOND, 0).allowed
    assert store.take("b", TEN_PER_SECOND, 0).remaining == 2


def test_policies_do_not_share_a_key() -> None:
    """Two policies counting the same key keep separate state."""
    store = MemoryStore()
    strict = GcraPolicy.from_rate(parse_rate("1/s"), 0)
    assert store.take("k", strict, 0).allowed
    assert not store.take("k", strict, 0).allowed
    assert store.take("k", TEN_PER_SECOND, 0).allowed


def test_expired_keys_are_dropped() -> None:
    """Keys whose schedule has passed are forgotten as later requests come in."""
    store = MemoryStore()
    for index in range(5):
        store.take(f"old-{index}", TEN_PER_SECOND, 0)
    assert len(store) == 5
    for index in range(3):
        store.take(f"new-{index}", TEN_PER_SECOND, 10 * SECOND)
    # Each request looks at the two least recently used entries.
    assert len(store) == 3


def test_refused_requests_do_not_grow_the_store() -> None:
    """A refusal records nothing."""
    store = MemoryStore()
    strict = GcraPolicy.from_rate(parse_rate("1/s"), 0)
    store.take("k", strict, 0)
    for _ in range(10):
        store.take("k", strict, 0)
    assert len(store) == 1


def test_least_recently_used_key_goes_past_the_cap() -> None:
    """Past max_keys the least recently used live key is forgotten."""
    store = MemoryStore(max_keys=2)
    strict = GcraPolicy.from_rate(parse_rate("1/s"), 0)
    store.take("a", strict, 0)
    store.take("b", strict, 0)
    assert not store.take("a", strict, 1).allowed  # refused: "a" is not touched
    store.take("c", strict, 2)
    assert len(store) == 2
    # "a" was forgotten (the oldest), "b" is still limited.
    assert store.take("a", strict, 3).allowed
    assert not store.take("c", strict, 4).allowed


def test_max_keys_must_be_positive() -> None:
    """A cap below one key is an error."""
    with pytest.raises(ValueError, match="at least 1"):
        MemoryStore(max_keys=0)
