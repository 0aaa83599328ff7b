"""Tests for edgeproxy.balancing.hash: weighted rendezvous hashing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from edgeproxy.balancing.hash import ConsistentHash, hash_factory, stable_hash
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers, RequestHead
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.testing import FakeServer

ENVIRONMENT = PluginEnvironment(MemoryReactorClock(), Path("."))
KEYS = [f"client-{n}".encode() for n in range(10_000)]
TEN = [FakeServer(f"10.0.0.{n}", 9000) for n in range(10)]


def assignment(servers: Sequence[IUpstreamServer]) -> list[str]:
    """Which server each of KEYS goes to."""
    strategy = ConsistentHash()
    return [strategy.choose(servers, stable_hash(key)).key for key in KEYS]


def context_for(
    client: str = "192.0.2.1", target: bytes = b"/", headers: Headers | None = None
) -> RequestContext:
    """A request context from ``client`` for ``target``."""
    return RequestContext(client, request=RequestHead(b"GET", target, headers))


def test_provides_the_interface() -> None:
    """ConsistentHash is a balancing strategy."""
    assert verifyObject(IBalancingStrategy, ConsistentHash())


def test_keys_spread_evenly() -> None:
    """10,000 keys over 10 equal servers: each gets 10% within 1.5 points."""
    counts = Counter(assignment(TEN))
    # One standard deviation is 0.3 points, so 1.5 points is five of them.
    assert all(abs(count / len(KEYS) - 0.1) < 0.015 for count in counts.values())
    assert len(counts) == 10


def test_shares_follow_weights() -> None:
    """Weights 1, 2 and 5 give 1/8, 2/8 and 5/8 of the keys, within 2 points."""
    servers = [
        FakeServer("a", 1, weight=1),
        FakeServer("b", 1, weight=2),
        FakeServer("c", 1, weight=5),
    ]
    counts = Counter(assignment(servers))
    assert counts["a:1"] / len(KEYS) == pytest.approx(1 / 8, abs=0.02)
    assert counts["b:1"] / len(KEYS) == pytest.approx(2 / 8, abs=0.02)
    assert counts["c:1"] / len(KEYS) == pytest.approx(5 / 8, abs=0.02)


def test_removing_one_server_of_ten_moves_only_its_keys() -> None:
    """Removing 1 of 10 servers moves its ~10% of keys (8-12%) and no others."""
    before = assignment(TEN)
    gone = TEN[3].key
    after = assignment(TEN[:3] + TEN[4:])
    moved = [n for n in range(len(KEYS)) if before[n] != after[n]]
    assert 0.08 < len(moved) / len(KEYS) < 0.12
    assert all(before[n] == gone for n in moved)


def test_adding_one_server_to_ten_moves_about_one_eleventh() -> None:
    """Adding an 11th server moves ~1/11 of keys (7-11%), all of them to it."""
    before = assignment(TEN)
    newcomer = FakeServer("10.0.0.99", 9000)
    after = assignment([*TEN, newcomer])
    moved = [n for n in range(len(KEYS)) if before[n] != after[n]]
    assert 0.07 < len(moved) / len(KEYS) < 0.11
    assert all(after[n] == newcomer.key for n in moved)


def test_a_down_servers_keys_go_to_their_next_choice_and_come_back() -> None:
    """Keys of an unavailable server move while it is out and return with it."""
    strategy = ConsistentHash()
    context = context_for("198.51.100.20")
    home = strategy.pick(TEN, context, 0.0)
    others = [server for server in TEN if server is not home]
    stand_in = strategy.pick(others, context, 0.0)
    assert stand_in is not home
    # Every time it is out, the key goes to the same stand-in.
    assert {strategy.pick(others, context, 0.0) for _ in range(5)} == {stand_in}
    assert strategy.pick(TEN, context, 0.0) is home


def test_same_key_same_server() -> None:
    """A given client always reaches the same server."""
    strategy = ConsistentHash()
    context = context_for("203.0.113.5")
    assert len({strategy.pick(TEN, context, 0.0) for _ in range(20)}) == 1


def test_the_assignment_does_not_depend_on_the_process() -> None:
    """Hashes are fixed values (not Python's salted hash), so all workers agree."""
    assert stable_hash(b"") == 0xE4A6A0577479B2B4  # BLAKE2b, 8-byte digest
    # Pinned: changing these moves every hashed client on upgrade.
    assert assignment(TEN)[:5] == [
        "10.0.0.5:9000",
        "10.0.0.4:9000",
        "10.0.0.0:9000",
        "10.0.0.5:9000",
        "10.0.0.5:9000",
    ]


@pytest.mark.parametrize(
    ("key", "same", "different"),
    [
        (
            "client_ip",
            (context_for("192.0.2.1", b"/a"), context_for("192.0.2.1", b"/b")),
            (context_for("192.0.2.1"), context_for("192.0.2.2")),
        ),
        (
            "url",
            (context_for("192.0.2.1", b"/a?x=1"), context_for("192.0.2.9", b"/a?x=1")),
            (context_for(target=b"/a?x=1"), context_for(target=b"/a?x=2")),
        ),
        (
            "header:X-API-Key",
            (
                context_for("192.0.2.1", headers=Headers([(b"x-api-key", b"k1")])),
                context_for("192.0.2.2", headers=Headers([(b"X-Api-Key", b"k1")])),
            ),
            (
                context_for(headers=Headers([(b"X-API-Key", b"k1")])),
                context_for(headers=Headers([(b"X-API-Key", b"k2")])),
            ),
        ),
        (
            "cookie:session",
            (
                context_for("192.0.2.1", headers=Headers([(b"Cookie", b"session=s1")])),
                context_for(
                    "192.0.2.2", headers=Headers([(b"Cookie", b"a=1; session=s1")])
                ),
            ),
            (
                context_for(headers=Headers([(b"Cookie", b"session=s1")])),
                context_for(headers=Headers([(b"Cookie", b"session=s2")])),
            ),
        ),
    ],
)
def test_key_sources(
    key: str,
    same: tuple[RequestContext, RequestContext],
    different: tuple[RequestContext, RequestContext],
) -> None:
    """Requests agreeing on the key share a server; differing ones hash apart."""
    strategy = hash_factory.build({"key": key}, ENVIRONMENT)
    first, second = (strategy.pick(TEN, context, 0.0) for context in same)
    assert first is second
    # Different values usually land apart; over ten servers this pair does.
    one, other = (strategy.pick(TEN, context, 0.0) for context in different)
    assert one is not other


@pytest.mark.parametrize(
    ("key", "context"),
    [
        ("header:X-API-Key", context_for()),
        ("header:X-API-Key", context_for(headers=Headers([(b"X-API-Key", b"")]))),
        ("cookie:session", context_for(headers=Headers([(b"Cookie", b"other=1")]))),
        ("url", RequestContext("192.0.2.1")),
        ("client_ip", RequestContext("")),
    ],
)
def test_requests_without_the_key_go_round_robin(
    key: str, context: RequestContext
) -> None:
    """A request missing its key is sent to each server in turn."""
    strategy = ConsistentHash(key)
    picks = [strategy.pick(TEN[:3], context, 0.0) for _ in range(6)]
    assert picks == TEN[:3] * 2


def test_bad_keys_are_refused() -> None:
    """ConsistentHash refuses a key it cannot read."""
    with pytest.raises(ValueError, match="not client_ip, url"):
        ConsistentHash("query:page")
