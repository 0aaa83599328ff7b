"""Tests for edgeproxy.store.redis: the rate-limit store and its script."""

from __future__ import annotations

import pytest
from twisted.application.service import IService
from twisted.internet.testing import StringTransportWithDisconnection
from zope.interface.verify import verifyObject

from edgeproxy.core.gcra import GcraDecision, GcraPolicy, parse_rate
from edgeproxy.store.redis import (
    GCRA_SCRIPT,
    GCRA_SCRIPT_SHA1,
    KEY_PREFIX,
    RedisStore,
)
from edgeproxy.store.resp import encode_command
from tests.store.test_store_redis_client import (
    assert_unavailable,
    make_client,
    outcome,
)

POLICY = GcraPolicy.from_rate(parse_rate("10/s"), 2)


def test_store_is_a_service() -> None:
    """The store provides IService."""
    client, _, _ = make_client()
    assert verifyObject(IService, RedisStore(client))


def connected_store() -> tuple[RedisStore, StringTransportWithDisconnection]:
    """A started store whose connection is up."""
    client, endpoint, _ = make_client()
    store = RedisStore(client)
    store.startService()
    _, transport = endpoint.accept()
    return store, transport


def evalsha(key: str) -> bytes:
    """The EVALSHA command the store sends for ``key`` under POLICY."""
    return encode_command(
        "EVALSHA",
        GCRA_SCRIPT_SHA1,
        1,
        f"{KEY_PREFIX}100000:200000:{key}",
        100000,
        200000,
    )


def test_take_runs_the_script_and_derives_the_decision() -> None:
    """The script's (allowed, ahead) reply becomes the full decision."""
    store, transport = connected_store()
    seen = outcome(store.take("client_ip=10.0.0.1", POLICY, 0))
    assert transport.value() == evalsha("client_ip=10.0.0.1")
    transport.protocol.dataReceived(b"*2\r\n:1\r\n:100000\r\n")
    assert seen == [
        GcraDecision(
            allowed=True,
            tat=200000,
            delay=100000,
            retry_after=0,
            remaining=1,
            reset=200000,
        )
    ]


def test_take_refused() -> None:
    """A refusal from the script carries the wait until the next request."""
    store, transport = connected_store()
    seen = outcome(store.take("k", POLICY, 0))
    transport.protocol.dataReceived(b"*2\r\n:0\r\n:250000\r\n")
    [decision] = seen
    assert not decision.allowed
    assert decision.retry_after == 50000


def test_unknown_script_is_sent_whole() -> None:
    """After NOSCRIPT the store sends EVAL with the script, and uses its reply."""
    store, transport = connected_store()
    seen = outcome(store.take("k", POLICY, 0))
    transport.clear()
    transport.protocol.dataReceived(b"-NOSCRIPT No matching script.\r\n")
    assert transport.value() == encode_command(
        "EVAL", GCRA_SCRIPT, 1, f"{KEY_PREFIX}100000:200000:k", 100000, 200000
    )
    transport.protocol.dataReceived(b"*2\r\n:1\r\n:0\r\n")
    assert seen[0].allowed


@pytest.mark.parametrize(
    "reply",
    [
        b"-ERR something else\r\n",
        b"$2\r\nno\r\n",
        b"*1\r\n:1\r\n",
        b"*2\r\n:0\r\n:0\r\n",  # the policy would allow what the script refused
    ],
)
def test_bad_answers_are_store_errors(reply: bytes) -> None:
    """Error replies and replies of the wrong shape fail as StoreUnavailable."""
    store, transport = connected_store()
    seen = outcome(store.take("k", POLICY, 0))
    transport.protocol.dataReceived(reply)
    assert_unavailable(seen)


def test_take_fails_fast_while_disconnected() -> None:
    """With Redis unreachable, take fails at once."""
    client, _, _ = make_client()
    assert_unavailable(outcome(RedisStore(client).take("k", POLICY, 0)))


def test_store_stops_its_client() -> None:
    """Stopping the store closes its connection."""
    store, transport = connected_store()
    store.stopService()
    assert not transport.connected
    assert not store.client.running
