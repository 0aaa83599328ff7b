"""Tests for edgeproxy.tunnel: relay, flow control, half-close, timeouts, accounting."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest
from twisted.internet import tcp
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IHalfCloseableDescriptor,
    IHalfCloseableProtocol,
    IPushProducer,
)
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from edgeproxy.tunnel import READ_SIZE, EndReason, Tunnel, TunnelEnd, TunnelStats

CLEAN = Failure(ConnectionDone())
RESET = Failure(ConnectionLost())


@implementer(IHalfCloseableDescriptor)
class TCPLikeTransport(StringTransport):
    """A StringTransport that can half-close its writing, as TCP can."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        """Record that the write side was closed (FIN sent after the buffer)."""
        self.write_closed = True

    def readConnectionLost(self, reason: Failure) -> None:
        """The reactor's notice; the tests call the protocol directly instead."""

    def writeConnectionLost(self, reason: Failure) -> None:
        """The reactor's notice; the tests call the protocol directly instead."""


def producer_of(transport: StringTransport) -> IPushProducer:
    """The streaming producer registered on ``transport``."""
    assert transport.producer is not None and transport.streaming
    return cast(IPushProducer, transport.producer)


@dataclass
class Setup:
    """A tunnel, its clock, what it reported, and transports for its ends."""

    tunnel: Tunnel
    clock: MemoryReactorClock
    reported: list[TunnelStats] = field(default_factory=list)
    client: TCPLikeTransport = field(default_factory=TCPLikeTransport)
    server: TCPLikeTransport = field(default_factory=TCPLikeTransport)

    def splice(self) -> Setup:
        """Attach the client's, then the server's connection."""
        self.tunnel.client.makeConnection(self.client)
        self.tunnel.server.makeConnection(self.server)
        return self

    def lose_both(self, reason: Failure = CLEAN) -> None:
        """Both connections report that they are gone."""
        self.tunnel.client.connectionLost(reason)
        self.tunnel.server.connectionLost(reason)


def make(
    idle_timeout: float | None = 60.0,
    *,
    max_lifetime: float | None = None,
    pending_limit: int = 1024,
    close_timeout: float = 30.0,
) -> Setup:
    """A tunnel on a fresh clock that records its stats."""
    clock = MemoryReactorClock()
    reported: list[TunnelStats] = []
    tunnel = Tunnel(
        clock,
        idle_timeout=idle_timeout,
        max_lifetime=max_lifetime,
        on_close=reported.append,
        pending_limit=pending_limit,
        close_timeout=close_timeout,
    )
    return Setup(tunnel, clock, reported)


def test_ends_provide_their_interfaces() -> None:
    """Each end is a half-closeable protocol and a push producer."""
    tunnel = make().tunnel
    for end in (tunnel.client, tunnel.server):
        assert isinstance(end, TunnelEnd)
        assert verifyObject(IHalfCloseableProtocol, end)
        assert verifyObject(IPushProducer, end)


def test_bytes_flow_both_ways_and_are_counted() -> None:
    """After the splice each side's bytes reach the other, counted each way."""
    setup = make().splice()
    tunnel = setup.tunnel
    tunnel.client.dataReceived(b"PING\r\n")
    tunnel.server.dataReceived(b"+PONG\r\n")
    tunnel.client.dataReceived(b"QUIT\r\n")
    assert setup.server.value() == b"PING\r\nQUIT\r\n"
    assert setup.client.value() == b"+PONG\r\n"
    assert (tunnel.client_to_server, tunnel.server_to_client) == (12, 7)


def test_each_side_is_the_other_ones_streaming_producer() -> None:
    """The splice registers each end on the other side's transport, streaming."""
    setup = make().splice()
    assert setup.client.producer is setup.tunnel.server
    assert setup.server.producer is setup.tunnel.client
    assert setup.client.streaming and setup.server.streaming


def test_a_full_write_buffer_pauses_reading_the_other_side() -> None:
    """The server's full buffer pauses the client's reading, and resumes it."""
    setup = make().splice()
    producer_of(setup.server).pauseProducing()
    assert setup.client.producerState == "paused"
    assert setup.server.producerState == "producing"
    producer_of(setup.server).resumeProducing()
    assert setup.client.producerState == "producing"


@pytest.mark.parametrize("first", ["client", "server"])
def test_bytes_before_the_splice_wait_paused_and_go_first(first: str) -> None:
    """The first end attached is paused; what it delivered goes first at the splice."""
    setup = make()
    end = getattr(setup.tunnel, first)
    other = setup.tunnel.server if end is setup.tunnel.client else setup.tunnel.client
    own, far = (
        (setup.client, setup.server)
        if first == "client"
        else (setup.server, setup.client)
    )
    end.makeConnection(own)
    end.dataReceived(b"already ")
    end.dataReceived(b"read")
    assert own.producerState == "paused"
    other.makeConnection(far)
    other.dataReceived(b"reply")
    end.dataReceived(b", then live")
    assert far.value() == b"already read, then live"
    assert own.value() == b"reply"
    assert own.producerState == "producing"


def test_back_pressure_during_the_flush_keeps_the_side_paused() -> None:
    """If flushing kept bytes fills the other buffer, the side stays paused."""
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.client.dataReceived(b"x" * 100)

    class FillsUp(TCPLikeTransport):
        def write(self, data: bytes) -> None:
            super().write(data)
            producer_of(self).pauseProducing()

    server = FillsUp()
    setup.tunnel.server.makeConnection(server)
    assert server.value() == b"x" * 100
    assert setup.client.producerState == "paused"
    producer_of(server).resumeProducing()
    assert setup.client.producerState == "producing"


def test_more_than_the_pending_limit_before_the_splice_aborts() -> None:
    """An end that keeps delivering while paused is bounded: the tunnel aborts."""
    setup = make(pending_limit=10)
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.client.dataReceived(b"x" * 10)
    assert not setup.client.disconnecting
    setup.tunnel.client.dataReceived(b"y")
    assert setup.client.disconnected
    assert setup.tunnel.reason is EndReason.OVERFLOW
    setup.tunnel.client.connectionLost(RESET)
    assert [s.reason for s in setup.reported] == [EndReason.OVERFLOW]


def test_fin_half_closes_the_other_side_and_the_reply_still_flows() -> None:
    """Client FIN -> server write closed; the reply still reaches the client."""
    setup = make().splice()
    tunnel = setup.tunnel
    tunnel.client.dataReceived(b"request")
    tunnel.client.readConnectionLost()
    assert setup.server.write_closed
    assert setup.server.producer is None
    assert not setup.server.disconnecting and not setup.client.disconnecting
    tunnel.server.dataReceived(b"reply")
    assert setup.client.value() == b"reply"
    assert tunnel.reason is None


def test_fin_both_ways_closes_both_and_reports_once_gone() -> None:
    """Both sides' FIN end the tunnel; stats come when both connections are gone."""
    setup = make().splice()
    tunnel = setup.tunnel
    setup.clock.advance(2)
    tunnel.server.dataReceived(b"bye")
    tunnel.server.readConnectionLost()
    assert setup.client.write_closed
    tunnel.client.readConnectionLost()
    assert setup.client.disconnecting and setup.server.disconnecting
    assert not setup.client.disconnected and not setup.server.disconnected
    assert (setup.client.producer, setup.server.producer) == (None, None)
    tunnel.client.connectionLost(CLEAN)
    assert setup.reported == []
    setup.clock.advance(1)
    tunnel.server.connectionLost(CLEAN)
    assert setup.reported == [TunnelStats(0, 3, EndReason.CLOSED, 2.0)]


def test_fin_to_a_side_that_cannot_half_close_closes_it() -> None:
    """Without half-close (TLS), the other side is closed after its buffer."""
    setup = make()
    plain = StringTransport()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.server.makeConnection(plain)
    setup.tunnel.client.readConnectionLost()
    assert plain.disconnecting and not plain.disconnected
    assert plain.producer is None


def test_fin_before_the_splice_is_passed_on_after_the_kept_bytes() -> None:
    """A client that sent its request and FIN while waiting still gets it through."""
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.client.dataReceived(b"whole request")
    setup.tunnel.client.readConnectionLost()
    assert not setup.server.write_closed
    setup.tunnel.server.makeConnection(setup.server)
    assert setup.server.value() == b"whole request"
    assert setup.server.write_closed
    setup.tunnel.server.dataReceived(b"answer")
    assert setup.client.value() == b"answer"


@pytest.mark.parametrize(
    ("side", "reason"),
    [("client", EndReason.CLIENT_RESET), ("server", EndReason.SERVER_RESET)],
)
def test_a_reset_aborts_the_other_side(side: str, reason: EndReason) -> None:
    """A side lost uncleanly ends the tunnel and the other side is aborted."""
    setup = make().splice()
    gone = getattr(setup.tunnel, side)
    other = setup.server if side == "client" else setup.client
    gone.connectionLost(RESET)
    assert other.disconnected
    assert other.producer is None
    assert setup.tunnel.reason is reason
    gone.peer.connectionLost(Failure(ConnectionLost()))
    assert [s.reason for s in setup.reported] == [reason]


def test_a_clean_full_close_closes_the_other_side_gracefully() -> None:
    """A side closed without half-close: the other side gets its bytes, then FIN."""
    setup = make().splice()
    setup.tunnel.server.dataReceived(b"last words")
    setup.tunnel.server.connectionLost(CLEAN)
    assert setup.client.value() == b"last words"
    assert setup.client.disconnecting and not setup.client.disconnected
    assert setup.tunnel.reason is EndReason.CLOSED


def test_idle_timeout_counts_from_the_last_byte_either_way() -> None:
    """No byte either way for idle_timeout aborts both; any byte restarts it."""
    setup = make(idle_timeout=10).splice()
    setup.clock.advance(9)
    setup.tunnel.server.dataReceived(b"tick")
    setup.clock.advance(9.5)
    assert setup.tunnel.reason is None
    assert len(setup.clock.getDelayedCalls()) == 1
    setup.clock.advance(0.5)
    assert setup.tunnel.reason is EndReason.IDLE_TIMEOUT
    assert setup.client.disconnected and setup.server.disconnected
    setup.lose_both(RESET)
    assert setup.reported == [TunnelStats(0, 4, EndReason.IDLE_TIMEOUT, 19.0)]


def test_half_closed_tunnels_time_out_too() -> None:
    """A tunnel half-closed and then silent is aborted after idle_timeout."""
    setup = make(idle_timeout=5).splice()
    setup.tunnel.client.readConnectionLost()
    setup.clock.advance(5)
    assert setup.tunnel.reason is EndReason.IDLE_TIMEOUT


def test_no_idle_timeout_keeps_a_silent_tunnel() -> None:
    """idle_timeout=None leaves a silent tunnel open."""
    setup = make(idle_timeout=None).splice()
    setup.clock.advance(10**6)
    assert setup.tunnel.reason is None
    assert setup.clock.getDelayedCalls() == []


def test_max_lifetime_ends_a_busy_tunnel() -> None:
    """max_lifetime aborts the tunnel however busy it is."""
    setup = make(idle_timeout=10, max_lifetime=25).splice()
    for _ in range(24):
        setup.clock.advance(1)
        setup.tunnel.client.dataReceived(b".")
    assert setup.tunnel.reason is None
    setup.clock.advance(1)
    assert setup.tunnel.reason is EndReason.MAX_LIFETIME
    assert setup.client.disconnected and setup.server.disconnected


def test_close_is_graceful_and_abort_is_not() -> None:
    """close() lets buffered bytes go out; abort() drops the connections."""
    closed = make().splice()
    closed.tunnel.close()
    assert closed.client.disconnecting and not closed.client.disconnected
    assert closed.tunnel.reason is EndReason.STOPPED
    aborted = make().splice()
    aborted.tunnel.abort()
    assert aborted.client.disconnected and aborted.server.disconnected


def test_a_graceful_close_that_hangs_is_aborted_after_close_timeout() -> None:
    """A peer that never lets its connection close is aborted after close_timeout."""
    setup = make(close_timeout=7).splice()
    setup.tunnel.server.connectionLost(CLEAN)
    setup.clock.advance(6.9)
    assert not setup.client.disconnected
    setup.clock.advance(0.1)
    assert setup.client.disconnected


def test_closing_before_the_splice_and_a_late_attach() -> None:
    """Closed while connecting: stats come at once; a late attach is aborted."""
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.client.dataReceived(b"waiting")
    setup.tunnel.close()
    assert setup.client.disconnecting
    setup.tunnel.client.connectionLost(CLEAN)
    assert setup.reported == [TunnelStats(0, 0, EndReason.STOPPED, 0.0)]
    setup.tunnel.server.makeConnection(setup.server)
    assert setup.server.disconnected
    assert setup.server.value() == b""
    setup.tunnel.server.connectionLost(RESET)
    assert len(setup.reported) == 1


def test_client_gone_while_waiting_ends_the_tunnel() -> None:
    """The client leaving before the splice ends the tunnel and reports it."""
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.client.connectionLost(RESET)
    assert [s.reason for s in setup.reported] == [EndReason.CLIENT_RESET]


def test_nothing_is_relayed_after_the_end() -> None:
    """Bytes that arrive after the tunnel ended are dropped, not written."""
    setup = make().splice()
    setup.tunnel.abort()
    setup.tunnel.client.dataReceived(b"late")
    assert setup.server.value() == b""
    assert setup.tunnel.client_to_server == 0


def test_stopping_the_producer_does_not_end_the_tunnel() -> None:
    """stopProducing (a transport going away) leaves the ending to connectionLost."""
    setup = make().splice()
    setup.tunnel.client.stopProducing()
    assert setup.tunnel.reason is None


def test_an_end_that_sends_nothing_while_waiting_is_not_paused() -> None:
    """Before the splice an end is paused by its first bytes, not by attaching."""
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    assert setup.client.producerState == "producing"
    setup.tunnel.client.dataReceived(b"early")
    assert setup.client.producerState == "paused"


@dataclass
class _ListeningPort:
    """What a tcp.Server asks of its listening port."""

    _realPortNumber: int = 5433


@pytest.fixture
def plain_tcp() -> Iterator[tuple[tcp.Server, socket.socket]]:
    """A Twisted TCP transport on one end of a loopback connection, and the other."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        theirs = socket.create_connection(listening.getsockname())
        ours, _ = listening.accept()
    transport = tcp.Server(
        ours,
        TunnelEnd(make().tunnel),
        ("peer", 1),
        cast(tcp.Port, _ListeningPort()),
        1,
        MemoryReactor(),
    )
    theirs.settimeout(5)
    yield transport, theirs
    ours.close()
    theirs.close()


def read_all(peer: socket.socket, transport: tcp.Server, size: int) -> bytes:
    """Read ``size`` bytes on ``peer``, letting ``transport`` send its queue."""
    received = b""
    while len(received) < size:
        transport.doWrite()
        received += peer.recv(1 << 20)
    return received


def test_a_plain_tcp_side_is_tuned_and_written_at_once(
    plain_tcp: tuple[tcp.Server, socket.socket],
) -> None:
    """On plain TCP, bytes go to the socket at once; reads are large; no Nagle."""
    transport, peer = plain_tcp
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.server.makeConnection(transport)
    assert transport.bufferSize == READ_SIZE and transport.getTcpNoDelay()
    setup.tunnel.client.dataReceived(b"now")
    assert peer.recv(100) == b"now"
    assert transport.reactor.getWriters() == []


def test_what_the_socket_does_not_take_is_sent_later_in_order(
    plain_tcp: tuple[tcp.Server, socket.socket],
) -> None:
    """Bytes the full socket refuses are queued, and later bytes go after them."""
    transport, peer = plain_tcp
    setup = make()
    setup.tunnel.client.makeConnection(setup.client)
    setup.tunnel.server.makeConnection(transport)
    bulk = bytes(range(256)) * 16384  # 4 MiB: more than the socket buffers
    setup.tunnel.client.dataReceived(bulk)
    assert transport.reactor.getWriters() == [transport]
    setup.tunnel.client.dataReceived(b"tail")
    assert read_all(peer, transport, len(bulk) + 4) == bulk + b"tail"
    assert setup.tunnel.client_to_server == len(bulk) + 4
