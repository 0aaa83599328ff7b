"""Tests for edgeproxy.store.redis_client: the reconnecting Redis client."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.application.service import IService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from edgeproxy.store import StoreUnavailable
from edgeproxy.store.redis_client import RedisClient, RedisConnection, RedisOptions
from edgeproxy.store.resp import RedisReplyError, encode_command


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """An endpoint whose connection attempts the test completes by hand."""

    def __init__(self) -> None:
        self.attempts: list[tuple[IProtocolFactory, Deferred[Any]]] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        """Record the attempt."""
        attempt: Deferred[Any] = Deferred()
        self.attempts.append((factory, attempt))
        return attempt

    def accept(self) -> tuple[RedisConnection, StringTransportWithDisconnection]:
        """Complete the latest attempt with a connection on a string transport."""
        factory, attempt = self.attempts[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6379))
        assert isinstance(protocol, RedisConnection)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        attempt.callback(protocol)
        return protocol, transport

    def refuse(self) -> None:
        """Fail the latest attempt."""
        self.attempts[-1][1].errback(ConnectionRefusedError())


def outcome(result: Deferred[Any]) -> list[Any]:
    """What ``result`` fired with so far (a value or a Failure), consumed."""
    seen: list[Any] = []
    result.addBoth(seen.append)
    return seen


def make_client(
    options: RedisOptions | None = None, max_pending: int = 100
) -> tuple[RedisClient, FakeEndpoint, Clock]:
    """A client on a fake endpoint and clock, retrying every second."""
    clock = Clock()
    endpoint = FakeEndpoint()
    client = RedisClient(
        endpoint,
        clock,
        options or RedisOptions("127.0.0.1"),
        timeout=0.5,
        retry_policy=lambda failures: 1.0,
        max_pending=max_pending,
    )
    return client, endpoint, clock


def connected_client() -> tuple[
    RedisClient, FakeEndpoint, Clock, StringTransportWithDisconnection
]:
    """A started client whose first connection is up."""
    client, endpoint, clock = make_client()
    client.startService()
    _, transport = endpoint.accept()
    return client, endpoint, clock, transport


def assert_unavailable(seen: list[Any]) -> None:
    """The Deferred failed with StoreUnavailable."""
    assert len(seen) == 1
    assert isinstance(seen[0], Failure)
    assert seen[0].check(StoreUnavailable)


def test_client_is_a_service() -> None:
    """The client provides IService."""
    client, _, _ = make_client()
    assert verifyObject(IService, client)


def test_commands_fail_fast_before_start() -> None:
    """Without a connection a command fails at once."""
    client, endpoint, _ = make_client()
    assert_unavailable(outcome(client.execute("PING")))
    assert endpoint.attempts == []


def test_pipelined_replies_match_commands_in_order() -> None:
    """Commands go out at once; replies fire them in order; errors stay local."""
    client, _, _, transport = connected_client()
    first = outcome(client.execute("GET", "a"))
    second = outcome(client.execute("INCR", "b"))
    third = outcome(client.execute("PING"))
    assert transport.value() == (
        encode_command("GET", "a")
        + encode_command("INCR", "b")
        + encode_command("PING")
    )
    assert first == second == third == []
    transport.protocol.dataReceived(b"$1\r\nx\r\n-WRONGTYPE nope\r\n+PO")
    assert first == [b"x"]
    assert second[0].check(RedisReplyError)
    assert third == []
    transport.protocol.dataReceived(b"NG\r\n")
    assert third == [b"PONG"]


def test_handshake_authenticates_and_selects() -> None:
    """AUTH then SELECT run first; commands fail fast until they succeed."""
    client, endpoint, _ = make_client(RedisOptions("h", 6379, 3, "me", "secret"))
    client.startService()
    _, transport = endpoint.accept()
    assert transport.value() == encode_command("AUTH", "me", "secret")
    transport.clear()
    transport.protocol.dataReceived(b"+OK\r\n")
    assert transport.value() == encode_command("SELECT", 3)
    assert_unavailable(outcome(client.execute("PING")))
    transport.protocol.dataReceived(b"+OK\r\n")
    assert client.connection is transport.protocol
    assert outcome(client.execute("PING")) == []


def test_failed_handshake_closes_and_retries() -> None:
    """A refused AUTH closes the connection and a new attempt follows later."""
    client, endpoint, clock = make_client(RedisOptions("h", password="bad"))
    client.startService()
    _, transport = endpoint.accept()
    transport.protocol.dataReceived(b"-WRONGPASS invalid password\r\n")
    assert not transport.connected
    assert client.connection is None
    clock.advance(1.0)
    assert len(endpoint.attempts) == 2


def test_lost_connection_fails_waiting_commands_and_reconnects() -> None:
    """A drop fails what waits, later commands fail fast, then it reconnects."""
    client, endpoint, clock, transport = connected_client()
    waiting = outcome(client.execute("PING"))
    transport.loseConnection()
    assert_unavailable(waiting)
    assert_unavailable(outcome(client.execute("PING")))
    assert len(endpoint.attempts) == 1
    clock.advance(1.0)
    assert len(endpoint.attempts) == 2
    endpoint.accept()
    assert client.connection is not None


def test_refused_connections_retry_on_the_policy() -> None:
    """Each failed attempt is retried after the policy's delay."""
    client, endpoint, clock = make_client()
    client.startService()
    endpoint.refuse()
    clock.advance(0.9)
    assert len(endpoint.attempts) == 1
    clock.advance(0.1)
    assert len(endpoint.attempts) == 2
    endpoint.refuse()
    clock.advance(1.0)
    assert len(endpoint.attempts) == 3


def test_timeout_fails_the_command_and_drops_the_connection() -> None:
    """A reply that does not come in time fails its command and closes."""
    client, _, clock, transport = connected_client()
    waiting = outcome(client.execute("PING"))
    clock.advance(0.4)
    assert waiting == []
    clock.advance(0.1)
    assert_unavailable(waiting)
    assert "did not answer" in waiting[0].getErrorMessage()
    assert not transport.connected
    assert client.connection is None


def test_each_command_has_its_own_deadline() -> None:
    """A command sent later is timed from its own sending, not the first's."""
    client, _, clock, transport = connected_client()
    first = outcome(client.execute("PING"))
    clock.advance(0.25)
    second = outcome(client.execute("PING"))
    transport.protocol.dataReceived(b"+PONG\r\n")
    assert first == [b"PONG"]
    clock.advance(0.375)
    assert second == []
    assert transport.connected
    clock.advance(0.125)
    assert_unavailable(second)
    assert not transport.connected


def test_reply_to_no_command_drops_the_connection() -> None:
    """An unexpected reply means the stream is out of step: close it."""
    client, _, _, transport = connected_client()
    transport.protocol.dataReceived(b"+OK\r\n")
    assert not transport.connected
    assert client.connection is None


def test_garbage_drops_the_connection() -> None:
    """Bytes that are not RESP2 fail waiting commands and close."""
    client, _, _, transport = connected_client()
    waiting = outcome(client.execute("PING"))
    transport.protocol.dataReceived(b"!bad\r\n")
    assert_unavailable(waiting)
    assert not transport.connected


def test_too_many_waiting_commands_fail_fast() -> None:
    """Past the bound of waiting commands, new ones fail at once."""
    client, _, _, transport = connected_client()
    waiting = [outcome(client.execute("PING")) for _ in range(100)]
    assert_unavailable(outcome(client.execute("PING")))
    transport.protocol.dataReceived(b"+PONG\r\n" * 100)
    assert waiting == [[b"PONG"]] * 100
    assert outcome(client.execute("PING")) == []


def test_stop_closes_and_stops_retrying() -> None:
    """Stopping closes the connection and no further attempt is made."""
    client, endpoint, clock, transport = connected_client()
    client.stopService()
    assert not transport.connected
    clock.advance(60)
    assert len(endpoint.attempts) == 1


def test_stop_while_waiting_to_retry() -> None:
    """Stopping between attempts cancels the next one."""
    client, endpoint, clock = make_client()
    client.startService()
    endpoint.refuse()
    client.stopService()
    clock.advance(60)
    assert len(endpoint.attempts) == 1
    assert clock.getDelayedCalls() == []


def test_stop_while_connecting() -> None:
    """Stopping cancels a connection attempt in progress."""
    client, endpoint, clock = make_client()
    client.startService()
    client.stopService()
    assert endpoint.attempts[0][1].called
    clock.advance(60)
    assert len(endpoint.attempts) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache", RedisOptions("cache", 6379, 0)),
        ("redis://10.0.0.5:6380/2", RedisOptions("10.0.0.5", 6380, 2)),
        ("redis://[::1]:7000/", RedisOptions("::1", 7000, 0)),
        ("redis://:p%40ss@h/1", RedisOptions("h", 6379, 1, None, "p@ss")),
        ("redis://me:pw@h", RedisOptions("h", 6379, 0, "me", "pw")),
    ],
)
def test_options_from_url(url: str, expected: RedisOptions) -> None:
    """redis:// URLs give host, port, database and credentials."""
    assert RedisOptions.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h", "is not redis://"),
        ("redis://", "is not redis://"),
        ("redis://h:port", "bad port"),
        ("redis://h/db", "must be a number"),
        ("redis://h/0?x=1", "no query"),
    ],
)
def test_options_reject_bad_urls(url: str, message: str) -> None:
    """Anything but redis://host[:port][/db] is refused, saying why."""
    with pytest.raises(ValueError, match=message):
        RedisOptions.from_url(url)
