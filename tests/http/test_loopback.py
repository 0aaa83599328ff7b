"""The server and client protocols joined by a tiny forwarding handler."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from edgeproxy.core.message import LocalResponse
from edgeproxy.errors import UpstreamError
from edgeproxy.http.client import HTTPClientProtocol, NothingReceived, UpstreamResponse
from edgeproxy.http.server import HTTPServerProtocol
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.http.settings import ServerSettings


class Forwarder:
    """Relays each request to an upstream connection, keeping one idle for reuse."""

    def __init__(self, clock: MemoryReactorClock) -> None:
        self.clock = clock
        self.upstreams: list[tuple[HTTPClientProtocol, StringTransport]] = []
        self.idle: HTTPClientProtocol | None = None

    def connection_released(
        self, connection: HTTPClientProtocol, reusable: bool
    ) -> None:
        if reusable:
            self.idle = connection

    def connection_lost(self, connection: HTTPClientProtocol) -> None:
        if self.idle is connection:
            self.idle = None

    def request_received(self, exchange: ServerExchange) -> None:
        self.forward(exchange, may_retry=True)

    def forward(self, exchange: ServerExchange, may_retry: bool) -> None:
        connection, self.idle = self.idle, None
        if connection is None:
            connection = HTTPClientProtocol(self.clock, listener=self)
            transport = StringTransport()
            connection.makeConnection(transport)
            self.upstreams.append((connection, transport))
        reused = connection.requests_sent > 0
        d = connection.send_request(exchange.request, exchange.framing, exchange.body)
        exchange.on_client_gone = d.cancel

        def relay(response: UpstreamResponse) -> None:
            exchange.send_response(response.head, response.framing, response.body)

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                return
            if failure.check(NothingReceived) and reused and exchange.body is None:
                self.forward(exchange, may_retry=False)
                return
            error = failure.value
            assert isinstance(error, UpstreamError)
            exchange.send_local(LocalResponse.text(error.status, error.reason))

        d.addCallbacks(relay, failed)

    def upstream(self, index: int = -1) -> tuple[HTTPClientProtocol, StringTransport]:
        return self.upstreams[index]


class Proxy:
    """A client connection into a server protocol that forwards upstream."""

    def __init__(self, clock: MemoryReactorClock, **settings: float) -> None:
        self.forwarder = Forwarder(clock)
        self.transport = StringTransport()
        self.protocol = HTTPServerProtocol(
            clock, self.forwarder, ServerSettings(**settings)
        )
        self.protocol.makeConnection(self.transport)

    def take(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


@pytest.fixture
def proxy(clock: MemoryReactorClock) -> Proxy:
    return Proxy(clock)


def test_chunked_both_ways_with_keep_alive(proxy: Proxy) -> None:
    """A chunked upload and a chunked download stream through; both sides persist."""
    proxy.protocol.dataReceived(
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n"
    )
    connection, upstream = proxy.forwarder.upstream()
    assert upstream.value() == (
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n"
    )
    proxy.protocol.dataReceived(b"2\r\nde\r\n0\r\n\r\n")
    assert upstream.value().endswith(b"2\r\nde\r\n0\r\n\r\n")
    connection.dataReceived(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nmade\r\n"
    )
    assert proxy.transport.value().startswith(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nDate: "
    )
    assert proxy.transport.value().endswith(b"\r\n\r\n4\r\nmade\r\n")
    connection.dataReceived(b"0\r\n\r\n")
    assert proxy.take().endswith(b"4\r\nmade\r\n0\r\n\r\n")
    assert proxy.forwarder.idle is connection
    assert not proxy.transport.disconnecting

    proxy.protocol.dataReceived(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(proxy.forwarder.upstreams) == 1
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert proxy.take().endswith(b"\r\n\r\nok")


def test_upload_back_pressure_reaches_the_client(proxy: Proxy) -> None:
    """A full upstream socket pauses reading from the client, and resumes it."""
    proxy.protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc"
    )
    connection, upstream = proxy.forwarder.upstream()
    connection.pauseProducing()  # what the upstream transport does when full
    assert proxy.transport.producerState == "paused"
    connection.resumeProducing()
    assert proxy.transport.producerState == "producing"
    assert upstream.value().endswith(b"\r\n\r\nabc")


def test_download_back_pressure_reaches_the_upstream(proxy: Proxy) -> None:
    """A full client socket pauses reading from the upstream, and resumes it."""
    proxy.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    connection, upstream = proxy.forwarder.upstream()
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    proxy.protocol.pauseProducing()  # what the client transport does when full
    assert upstream.producerState == "paused"
    connection.dataReceived(b"def")
    assert not proxy.transport.value().endswith(b"def")
    proxy.protocol.resumeProducing()
    assert upstream.producerState == "producing"
    assert proxy.transport.value().endswith(b"abcdef")


def test_pipelined_requests_share_one_upstream_in_order(proxy: Proxy) -> None:
    """Pipelined requests go upstream one after another on a kept connection."""
    proxy.protocol.dataReceived(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    connection, upstream = proxy.forwarder.upstream()
    assert upstream.value().count(b"GET ") == 1
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
    assert upstream.value().count(b"GET ") == 2
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
    response = proxy.take()
    assert response.index(b"one") < response.index(b"two")
    assert len(proxy.forwarder.upstreams) == 1


def test_stale_keep_alive_connection_is_retried(proxy: Proxy) -> None:
    """A reused upstream connection that closed unanswered is retried on a new one."""
    proxy.protocol.dataReceived(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    connection, _ = proxy.forwarder.upstream()
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    proxy.take()
    proxy.protocol.dataReceived(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    connection.connectionLost(Failure(ConnectionDone()))
    retried, upstream = proxy.forwarder.upstream()
    assert retried is not connection
    assert upstream.value().startswith(b"GET /2 HTTP/1.1\r\n")
    retried.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert proxy.take().endswith(b"\r\n\r\nok")


def test_upstream_failure_becomes_a_gateway_error(
    proxy: Proxy, clock: MemoryReactorClock
) -> None:
    """A silent upstream gives the client a 504, and the exchange ends cleanly."""
    proxy.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    clock.advance(60)
    assert proxy.take().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert not proxy.transport.disconnecting


def test_http10_client_gets_a_close_delimited_body(proxy: Proxy) -> None:
    """A chunked upstream body reaches an HTTP/1.0 client ended by the close."""
    proxy.protocol.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
    connection, upstream = proxy.forwarder.upstream()
    assert upstream.value().startswith(b"GET / HTTP/1.1\r\n")
    connection.dataReceived(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    response = proxy.take()
    assert b"Transfer-Encoding" not in response
    assert response.endswith(b"Connection: close\r\n\r\nabc")
    assert proxy.transport.disconnecting


def test_head_through_the_proxy(proxy: Proxy) -> None:
    """A HEAD response passes its length on and no body, on both sides."""
    proxy.protocol.dataReceived(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    connection, _ = proxy.forwarder.upstream()
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    response = proxy.take()
    assert b"Content-Length: 1234\r\n" in response
    assert response.endswith(b"\r\n\r\n")
    assert proxy.forwarder.idle is connection


def test_client_gone_cancels_the_upstream_request(proxy: Proxy) -> None:
    """A client that leaves while the upstream thinks drops that upstream connection."""
    proxy.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    connection, upstream = proxy.forwarder.upstream()
    proxy.protocol.connectionLost(Failure(ConnectionDone()))
    assert upstream.disconnected
    assert not connection.reusable
