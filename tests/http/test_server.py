"""Tests for edgeproxy.http.server: raw bytes in, responses and producer states out."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from edgeproxy.core.framing import CHUNKED, FramingError
from edgeproxy.core.message import LocalResponse, ResponseHead
from edgeproxy.http.server import HTTPServerFactory, HTTPServerProtocol
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.http.settings import ServerSettings

if TYPE_CHECKING:
    from tests.http.conftest import LogCapture, RecordingSink

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
CHUNKED_FIELD = b"Transfer-Encoding: chunked\r\n\r\n"


class Handler:
    """Keeps every exchange; answers the ones whose target starts with /auto."""

    def __init__(self) -> None:
        self.exchanges: list[ServerExchange] = []

    def request_received(self, exchange: ServerExchange) -> None:
        self.exchanges.append(exchange)
        if exchange.request.target.startswith(b"/auto"):
            exchange.send_local(LocalResponse(200, exchange.request.target))

    @property
    def targets(self) -> list[bytes]:
        return [exchange.request.target for exchange in self.exchanges]


@implementer(IPushProducer)
class RecordingProducer:
    """An IPushProducer that keeps its state."""

    def __init__(self) -> None:
        self.state = "producing"

    def pauseProducing(self) -> None:
        self.state = "paused"

    def resumeProducing(self) -> None:
        self.state = "producing"

    def stopProducing(self) -> None:
        self.state = "stopped"


class Connection:
    """A server protocol on a StringTransport, with its handler."""

    def __init__(self, clock: MemoryReactorClock, **settings: float) -> None:
        self.handler = Handler()
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", "192.0.2.7", 40000)
        )
        self.protocol = HTTPServerFactory(
            clock, self.handler, ServerSettings(**settings)
        ).buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def send(self, *reads: bytes) -> None:
        for data in reads:
            self.protocol.dataReceived(data)

    def take(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def statuses(self) -> list[int]:
        found = re.findall(rb"HTTP/1\.1 (\d{3}) ", self.transport.value())
        return [int(status) for status in found]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    @property
    def reading(self) -> str:
        return str(self.transport.producerState)


@pytest.fixture
def conn(clock: MemoryReactorClock) -> Connection:
    return Connection(clock)


def test_protocol_is_the_transport_producer(conn: Connection) -> None:
    """The protocol registers itself to relay the client's pace to responses."""
    assert conn.transport.producer is conn.protocol
    assert conn.transport.streaming
    assert verifyObject(IPushProducer, conn.protocol)


def test_request_reaches_the_handler(
    conn: Connection, clock: MemoryReactorClock
) -> None:
    """A complete head becomes an exchange with the request as received."""
    clock.advance(7)
    conn.send(b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    [exchange] = conn.handler.exchanges
    request = exchange.request
    assert (request.method, request.target, request.version) == (
        b"GET",
        b"/a?b=1",
        b"1.1",
    )
    assert request.headers.pairs == [(b"Host", b"h"), (b"X-A", b"1"), (b"x-a", b"2")]
    assert (exchange.client_host, exchange.client_port) == ("192.0.2.7", 40000)
    assert exchange.received_at == 7
    assert exchange.body is None
    assert exchange.request_complete
    assert not exchange.upgrade


@pytest.mark.parametrize(
    ("request_bytes", "closes", "connection_field"),
    [
        (b"GET /auto HTTP/1.1\r\nHost: h\r\n\r\n", False, None),
        (b"GET /auto HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", True, b"close"),
        (b"GET /auto HTTP/1.0\r\n\r\n", True, b"close"),
        (
            b"GET /auto HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            False,
            b"keep-alive",
        ),
    ],
)
def test_persistence(
    conn: Connection, request_bytes: bytes, closes: bool, connection_field: bytes | None
) -> None:
    """Keep-alive follows the request's version and Connection field."""
    conn.send(request_bytes)
    response = conn.take()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert conn.closed is closes
    fields = re.findall(rb"Connection: ([a-z-]+)", response)
    assert fields == ([] if connection_field is None else [connection_field])


def test_keep_alive_serves_many_requests(conn: Connection) -> None:
    """One connection carries request after request."""
    for number in range(3):
        conn.send(b"GET /auto%d HTTP/1.1\r\nHost: h\r\n\r\n" % number)
    assert conn.handler.targets == [b"/auto0", b"/auto1", b"/auto2"]
    assert conn.statuses() == [200, 200, 200]
    assert not conn.closed


def test_pipelined_requests_are_answered_in_order(conn: Connection) -> None:
    """Pipelined requests wait, with reading paused, until earlier ones are done."""
    conn.send(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /auto2 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert conn.handler.targets == [b"/1"]
    assert conn.reading == "paused"
    conn.handler.exchanges[0].send_local(LocalResponse(200, b"one"))
    assert conn.handler.targets == [b"/1", b"/auto2", b"/3"]
    assert conn.reading == "producing"
    conn.handler.exchanges[2].send_local(LocalResponse(200, b"three"))
    bodies = re.findall(rb"\r\n\r\n([a-z0-9/]+)", conn.take())
    assert bodies == [b"one", b"/auto2", b"three"]


def test_pipelined_bad_request_is_answered_after_the_good_one(conn: Connection) -> None:
    """A malformed request behind a good one gets its 400 after the good response."""
    conn.send(GET + b"GET / HTTP/1.1\r\nHost: h\r\n b\r\n\r\n")
    assert len(conn.handler.exchanges) == 1
    assert conn.statuses() == []
    conn.handler.exchanges[0].send_local(LocalResponse(204))
    assert conn.statuses() == [204, 400]
    assert conn.closed


@pytest.mark.parametrize(
    ("reads", "body"),
    [
        ([b"Content-Length: 5\r\n\r\nhello"], b"hello"),
        ([b"Content-Length: 5\r\n\r\nhe", b"llo"], b"hello"),
        (
            [b"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"],
            b"hello",
        ),
        (
            [
                b"Transfer-Encoding: chunked\r\n\r\n2\r\nh",
                b"e\r\n3;x=y\r\nllo\r\n0\r\n",
                b"\r\n",
            ],
            b"hello",
        ),
    ],
)
def test_request_body_streams_to_its_sink(
    conn: Connection, make_sink: type[RecordingSink], reads: list[bytes], body: bytes
) -> None:
    """Content-Length and chunked bodies arrive decoded, in order, then end."""
    conn.send(b"POST /up HTTP/1.1\r\nHost: h\r\n" + reads[0], *reads[1:])
    [exchange] = conn.handler.exchanges
    sink = make_sink()
    assert exchange.body is not None
    exchange.body.start(sink)
    assert sink.data == body
    assert sink.finished
    assert exchange.request_complete


def test_unread_request_body_pauses_the_client(
    clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """A body nobody reads yet is buffered to a bound, then the client is paused."""
    conn = Connection(clock, body_buffer_size=4)
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert conn.reading == "producing"
    conn.send(b"def")
    assert conn.reading == "paused"
    [exchange] = conn.handler.exchanges
    sink = make_sink()
    assert exchange.body is not None
    exchange.body.start(sink)
    assert conn.reading == "producing"
    assert sink.data == b"abcdef"


def test_request_body_follows_the_upstream_pace(
    conn: Connection, make_sink: type[RecordingSink]
) -> None:
    """When the body's consumer pauses it, the client is paused; then resumed."""
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    [exchange] = conn.handler.exchanges
    assert exchange.body is not None
    exchange.body.start(make_sink())
    exchange.body.pauseProducing()
    assert conn.reading == "paused"
    exchange.body.resumeProducing()
    assert conn.reading == "producing"


def test_response_producer_follows_the_client_pace(conn: Connection) -> None:
    """The response's producer is paused while the client's socket is full."""
    conn.send(GET)
    [exchange] = conn.handler.exchanges
    producer = RecordingProducer()
    exchange.send_head(ResponseHead(200), CHUNKED, producer)
    conn.protocol.pauseProducing()
    assert producer.state == "paused"
    conn.protocol.resumeProducing()
    assert producer.state == "producing"
    exchange.finish()
    conn.protocol.pauseProducing()
    assert producer.state == "producing"


def test_response_producer_starts_paused_when_the_client_is_full(
    conn: Connection,
) -> None:
    """A producer registered while the client is full is paused at once."""
    conn.send(GET)
    conn.protocol.pauseProducing()
    producer = RecordingProducer()
    conn.handler.exchanges[0].send_head(ResponseHead(200), CHUNKED, producer)
    assert producer.state == "paused"


def test_client_disconnect_stops_the_producer_and_tells_the_handler(
    conn: Connection,
) -> None:
    """A lost client stops the response's producer and calls on_client_gone."""
    conn.send(GET, b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    [exchange] = conn.handler.exchanges
    gone: list[bool] = []
    exchange.on_client_gone = lambda: gone.append(True)
    producer = RecordingProducer()
    exchange.send_head(ResponseHead(200), CHUNKED, producer)
    conn.protocol.connectionLost(Failure(ConnectionError("reset")))
    assert producer.state == "stopped"
    assert gone == [True]
    assert exchange.closed
    assert len(conn.handler.exchanges) == 1


def test_client_disconnect_mid_body_aborts_the_body_sink(
    conn: Connection, make_sink: type[RecordingSink]
) -> None:
    """A request body cut short by the client aborts whoever reads it."""
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    [exchange] = conn.handler.exchanges
    sink = make_sink()
    assert exchange.body is not None
    exchange.body.start(sink)
    conn.protocol.connectionLost(Failure(ConnectionError("reset")))
    assert sink.data == b"abc"
    assert len(sink.aborted) == 1
    assert not sink.finished


def test_answers_after_a_disconnect_are_silently_dropped(
    conn: Connection, logged: LogCapture
) -> None:
    """A handler answering a gone client is not an error; its producer stops."""
    conn.send(GET)
    [exchange] = conn.handler.exchanges
    conn.protocol.connectionLost(Failure(ConnectionError("reset")))
    conn.transport.clear()
    producer = RecordingProducer()
    exchange.send_head(ResponseHead(200), CHUNKED, producer)
    exchange.send_local(LocalResponse(200))
    assert conn.transport.value() == b""
    assert producer.state == "stopped"
    assert logged.errors() == []


# --- refused requests -----------------------------------------------------------

BAD_REQUESTS = [
    ("bare LF", b"GET / HTTP/1.1\nHost: h\n\n", 400),
    ("LF ending a field", b"GET / HTTP/1.1\r\nHost: h\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    ("space before first field", b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
    ("field without colon", b"GET / HTTP/1.1\r\nHost: h\r\nOops\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: h\x00x\r\n\r\n", 400),
    ("CR in value", b"GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n", 400),
    (
        "CL with TE",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE with CL",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 3\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "differing CL",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        400,
    ),
    (
        "repeated CL",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        400,
    ),
    ("CL list", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n", 400),
    ("signed CL", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", 400),
    ("TE gzip", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (
        "TE gzip, chunked",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        400,
    ),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
    (
        "chunk size overflow",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffffff\r\n",
        400,
    ),
    (
        "space after chunk size",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\n",
        400,
    ),
    ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    ("lower-case method", b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("fragment in target", b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("HTTP/0.9", b"GET /\r\n\r\n", 400),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405),
]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_is_refused_and_never_handled(
    conn: Connection, request_bytes: bytes, status: int
) -> None:
    """Malformed or ambiguous requests get a 4xx/505, a close, and no handler."""
    conn.send(request_bytes)
    assert conn.statuses() == [status]
    assert b"Connection: close\r\n" in conn.transport.value()
    assert conn.closed
    assert conn.handler.exchanges == []


def test_connect_is_answered_405_with_allow(conn: Connection) -> None:
    """CONNECT is refused as a method not served here, listing those that are."""
    conn.send(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")
    assert b"\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" in conn.take()


@pytest.mark.parametrize(
    ("settings", "request_bytes", "status"),
    [
        ({"max_target_length": 10}, b"GET /" + b"a" * 10 + b" HTTP/1.1\r\n", 414),
        (
            {"max_field_count": 2},
            b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 3 + b"\r\n",
            431,
        ),
        (
            {"max_head_size": 100},
            b"GET / HTTP/1.1\r\nA: " + b"b" * 100 + b"\r\n\r\n",
            431,
        ),
        (
            {"max_body_size": 10},
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n",
            413,
        ),
    ],
)
def test_limits(
    clock: MemoryReactorClock,
    settings: dict[str, float],
    request_bytes: bytes,
    status: int,
) -> None:
    """Heads and bodies over the limits are refused before any handler sees them."""
    conn = Connection(clock, **settings)
    conn.send(request_bytes)
    assert conn.statuses() == [status]
    assert conn.closed
    assert conn.handler.exchanges == []


def test_chunked_body_over_the_limit_fails_the_exchange(
    clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """A chunked body that grows past the limit gets 413 and aborts its sink."""
    conn = Connection(clock, max_body_size=5)
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    [exchange] = conn.handler.exchanges
    sink = make_sink()
    assert exchange.body is not None
    exchange.body.start(sink)
    conn.send(b"3\r\nabc\r\n3\r\ndef\r\n")
    assert sink.data == b"abc"
    [reason] = sink.aborted
    assert isinstance(reason, FramingError)
    assert reason.status == 413
    assert conn.statuses() == [413]
    assert conn.closed
    exchange.send_local(LocalResponse(502))
    assert conn.statuses() == [413]


def test_malformed_chunk_after_the_response_started_drops_the_connection(
    conn: Connection, make_sink: type[RecordingSink]
) -> None:
    """Once a response has begun, a broken request body can only abort."""
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    [exchange] = conn.handler.exchanges
    assert exchange.body is not None
    exchange.body.start(make_sink())
    exchange.send_head(ResponseHead(200), CHUNKED)
    conn.send(b"3\r\nabcXX")
    assert conn.transport.disconnected
    assert exchange.closed


# --- Expect: 100-continue -------------------------------------------------------

EXPECTING = (
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
)


def test_continue_is_sent_when_the_body_is_first_read(
    conn: Connection, make_sink: type[RecordingSink]
) -> None:
    """100 Continue goes out once, when the handler starts reading the body."""
    conn.send(EXPECTING)
    assert conn.take() == b""
    [exchange] = conn.handler.exchanges
    assert exchange.body is not None
    exchange.body.start(make_sink())
    assert conn.take() == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_no_continue_when_answered_without_reading(conn: Connection) -> None:
    """A request refused without reading its body gets no 100, and a close."""
    conn.send(EXPECTING)
    conn.handler.exchanges[0].send_local(LocalResponse(401))
    assert conn.statuses() == [401]
    assert b"Connection: close" in conn.transport.value()
    assert conn.closed


def test_no_continue_once_the_body_arrived(
    conn: Connection, make_sink: type[RecordingSink]
) -> None:
    """A client that sent its body anyway gets no 100."""
    conn.send(EXPECTING + b"abc")
    [exchange] = conn.handler.exchanges
    assert exchange.body is not None
    exchange.body.start(make_sink())
    assert conn.take() == b""


# --- Upgrade --------------------------------------------------------------------

UPGRADE = b"".join(
    [
        b"GET /chat HTTP/1.1\r\nHost: h\r\n",
        b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ]
)


class TunnelEnd(Protocol):
    """A protocol that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


def test_switch_protocols_hands_over_the_connection(conn: Connection) -> None:
    """After a 101 the tunnel gets the transport and every byte after the head."""
    conn.send(UPGRADE + b"early")
    [exchange] = conn.handler.exchanges
    assert exchange.upgrade
    assert conn.reading == "paused"
    conn.send(b" more")
    tunnel = TunnelEnd()
    exchange.switch_protocols(ResponseHead(101, b"Switching Protocols"), tunnel)
    assert conn.take() == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    assert tunnel.transport is conn.transport
    assert conn.transport.producer is None
    assert conn.reading == "producing"
    conn.send(b" late")
    assert b"".join(tunnel.received) == b"early more late"


def test_refused_upgrade_closes_after_the_response(conn: Connection) -> None:
    """An Upgrade request answered without 101 ends the connection."""
    conn.send(UPGRADE + b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.handler.exchanges[0].send_local(LocalResponse(403))
    assert conn.statuses() == [403]
    assert conn.closed
    assert len(conn.handler.exchanges) == 1


# --- timeouts -------------------------------------------------------------------


def test_silent_connection_is_closed_silently(
    conn: Connection, clock: MemoryReactorClock
) -> None:
    """A connection that never sends a byte is closed without a 408."""
    clock.advance(59)
    assert not conn.closed
    clock.advance(1)
    assert conn.closed
    assert conn.transport.value() == b""


def test_slow_head_gets_408_from_its_start(
    conn: Connection, clock: MemoryReactorClock
) -> None:
    """A head dripping in (slowloris) is cut at head_timeout, not extended by bytes."""
    for piece in (b"GET / HTTP/1.1\r\n", b"Host: h\r\n", b"X-A: 1\r\n"):
        conn.send(piece)
        clock.advance(19)
    assert not conn.closed
    clock.advance(3)
    assert conn.statuses() == [408]
    assert conn.closed


def test_idle_keep_alive_is_closed_silently(
    conn: Connection, clock: MemoryReactorClock
) -> None:
    """An idle keep-alive connection closes after keep_alive_timeout, saying nothing."""
    conn.send(b"GET /auto HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.take()
    clock.advance(74)
    assert not conn.closed
    clock.advance(1)
    assert conn.closed
    assert conn.take() == b""


def test_no_timeout_while_the_handler_works(
    conn: Connection, clock: MemoryReactorClock
) -> None:
    """The server's timers do not run while a complete request waits for its answer."""
    conn.send(GET)
    clock.advance(1000)
    assert not conn.closed
    conn.handler.exchanges[0].send_local(LocalResponse(200))
    assert conn.statuses() == [200]


def test_stalled_body_gets_408(
    conn: Connection, clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """A request body that stops arriving fails its reader and gets 408."""
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    [exchange] = conn.handler.exchanges
    sink = make_sink()
    assert exchange.body is not None
    exchange.body.start(sink)
    clock.advance(59)
    conn.send(b"d")
    clock.advance(59)
    assert conn.statuses() == []
    clock.advance(1)
    assert conn.statuses() == [408]
    assert len(sink.aborted) == 1
    assert conn.closed


def test_no_body_timeout_while_paused_for_the_upstream(
    conn: Connection, clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """A client we paused is not blamed for the pause."""
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    [exchange] = conn.handler.exchanges
    assert exchange.body is not None
    exchange.body.start(make_sink())
    exchange.body.pauseProducing()
    clock.advance(1000)
    assert not conn.closed


def test_client_not_reading_is_dropped(
    conn: Connection, clock: MemoryReactorClock
) -> None:
    """A client that leaves its socket full for send_timeout is disconnected."""
    conn.send(GET)
    conn.handler.exchanges[0].send_head(ResponseHead(200), CHUNKED)
    conn.protocol.pauseProducing()
    clock.advance(59)
    conn.protocol.resumeProducing()
    conn.protocol.pauseProducing()
    clock.advance(59)
    assert not conn.transport.disconnected
    clock.advance(1)
    assert conn.transport.disconnected


# --- one response per request ---------------------------------------------------


def test_second_response_is_logged_not_sent(
    conn: Connection, logged: LogCapture
) -> None:
    """Answering twice is a programming error: logged, and only the first is sent."""
    conn.send(GET)
    [exchange] = conn.handler.exchanges
    exchange.send_local(LocalResponse(200))
    exchange.send_local(LocalResponse(500))
    exchange.send_head(ResponseHead(500), CHUNKED)
    exchange.send_body(b"x")
    exchange.finish()
    assert conn.statuses() == [200]
    assert len(logged.errors()) == 4


def test_handler_exception_is_a_500_and_a_log_line(
    clock: MemoryReactorClock, logged: LogCapture
) -> None:
    """A failing handler gives the client a 500, never a traceback."""

    class Failing:
        def request_received(self, exchange: ServerExchange) -> None:
            raise RuntimeError("secret detail")

    transport = StringTransport()
    protocol = HTTPServerProtocol(clock, Failing())
    protocol.makeConnection(transport)
    protocol.dataReceived(GET)
    response = transport.value()
    assert response.startswith(b"HTTP/1.1 500 ")
    assert b"secret" not in response
    [failure] = logged.failures()
    assert failure.check(RuntimeError)


def test_length_with_trailing_whitespace_is_accepted(
    conn: Connection, make_sink: type[RecordingSink]
) -> None:
    """Field values lose trailing whitespace (OWS), so a padded length still frames."""
    conn.send(b"POST / HTTP/1.1\r\nHost: h \r\nContent-Length: 3 \r\n\r\nabc")
    [exchange] = conn.handler.exchanges
    assert exchange.request.headers.get(b"host") == b"h"
    sink = make_sink()
    assert exchange.body is not None
    exchange.body.start(sink)
    assert (sink.data, sink.finished) == (b"abc", True)
