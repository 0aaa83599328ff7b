"""
Tests for edgeproxy.http.transport: writing through to a plain TCP socket.

A real loopback connection stands under a real ``tcp.Server`` transport whose
reactor is a ``MemoryReactorClock``: the reactor never runs, so a byte that
reaches the peer went straight to the socket, and one that waits for
``doWrite`` went through Twisted's queue.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface import implementer

from edgeproxy.http.transport import FlowControlledProtocol


class Connection:
    """A FlowControlledProtocol on a tcp.Server, and the socket of its peer."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.peer = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
        listener.close()
        accepted.setblocking(False)
        self.peer.setblocking(False)
        self.socket = accepted
        self.protocol = FlowControlledProtocol()
        self.transport: Any = tcp.Server(
            accepted, self.protocol, address, None, 1, reactor
        )
        self.protocol.makeConnection(self.transport)

    def received(self) -> bytes:
        """What the peer can read now."""
        data = b""
        while True:
            try:
                piece = self.peer.recv(1 << 20)
            except BlockingIOError:
                return data
            if not piece:
                return data
            data += piece

    def close(self) -> None:
        self.peer.close()
        self.socket.close()


@pytest.fixture
def connection(clock: MemoryReactorClock) -> Iterator[Connection]:
    made = Connection(clock)
    yield made
    made.close()


@implementer(IPushProducer)
class Producer:
    """Keeps whether it was last paused or resumed."""

    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


def test_a_write_goes_straight_to_the_socket(
    connection: Connection, clock: MemoryReactorClock
) -> None:
    """On plain TCP the bytes reach the peer at once, the reactor untouched."""
    connection.protocol.write(b"hello")
    assert connection.received() == b"hello"
    assert clock.getWriters() == []


def test_the_connection_gets_no_delay(connection: Connection) -> None:
    """Small writes are not held back by Nagle's algorithm."""
    assert connection.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_queued_bytes_keep_their_order(connection: Connection) -> None:
    """After bytes the transport still holds, a write waits its turn."""
    connection.transport.write(b"first ")
    connection.protocol.write(b"second")
    assert connection.received() == b""
    connection.transport.doWrite()
    assert connection.received() == b"first second"
    connection.protocol.write(b" third")
    assert connection.received() == b" third"


def test_what_the_socket_refuses_is_queued_with_back_pressure(
    connection: Connection,
) -> None:
    """A write larger than the socket takes is queued; a full queue pauses."""
    connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    producer = Producer()
    connection.protocol._follow(producer)
    data = bytes(range(256)) * 8192  # 2 MiB: more than any socket buffer
    connection.protocol.write(data)
    assert producer.paused
    received = b""
    while len(received) < len(data):
        connection.transport.doWrite()
        received += connection.received()
    assert received == data
    assert not producer.paused


def test_nothing_is_sent_after_an_abort(
    connection: Connection, clock: MemoryReactorClock
) -> None:
    """Once the connection is aborted, a write sends nothing."""
    connection.transport.abortConnection()
    connection.protocol.write(b"late")
    assert connection.received() == b""
    clock.advance(0)


def test_a_closing_connection_sends_through_its_queue(connection: Connection) -> None:
    """After loseConnection, writes go through the transport, which flushes them."""
    connection.transport.loseConnection()
    connection.protocol.write(b"bye")
    assert connection.received() == b""
    connection.transport.doWrite()
    assert connection.received() == b"bye"


def test_other_transports_are_written_as_usual() -> None:
    """A transport that is not plain TCP gets every write itself."""
    protocol = FlowControlledProtocol()
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.write(b"hello")
    assert transport.value() == b"hello"
