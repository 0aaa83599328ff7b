"""Tests for edgeproxy.http.client: requests out, raw response bytes in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from edgeproxy.core.framing import (
    CHUNKED,
    NO_BODY,
    UNTIL_CLOSE,
    BodyFraming,
    fixed_length,
)
from edgeproxy.core.message import Headers, RequestHead
from edgeproxy.errors import BadGateway, GatewayTimeout
from edgeproxy.http.body import BodyStream
from edgeproxy.http.client import (
    HTTPClientProtocol,
    NothingReceived,
    UpstreamResponse,
)
from edgeproxy.http.settings import ClientSettings

if TYPE_CHECKING:
    from tests.http.conftest import RecordingSink


class Listener:
    """A ConnectionListener that keeps what it hears."""

    def __init__(self) -> None:
        self.released: list[bool] = []
        self.lost = 0

    def connection_released(
        self, connection: HTTPClientProtocol, reusable: bool
    ) -> None:
        self.released.append(reusable)

    def connection_lost(self, connection: HTTPClientProtocol) -> None:
        self.lost += 1


class Origin:
    """The client side of a request body: keeps whether it is paused."""

    def __init__(self) -> None:
        self.paused = False
        self.abandoned = False

    def pause_body(self) -> None:
        self.paused = True

    def resume_body(self) -> None:
        self.paused = False

    def abandon_body(self) -> None:
        self.abandoned = True

    def body_wanted(self) -> None:
        pass


class Upstream:
    """A client protocol on a StringTransport, with its listener."""

    def __init__(self, clock: MemoryReactorClock, **settings: float) -> None:
        self.listener = Listener()
        self.transport = StringTransport()
        self.protocol = HTTPClientProtocol(
            clock, ClientSettings(**settings), self.listener
        )
        self.protocol.makeConnection(self.transport)

    def request(
        self,
        method: bytes = b"GET",
        framing: BodyFraming = NO_BODY,
        body: BodyStream | None = None,
        *fields: tuple[bytes, bytes],
    ) -> list[UpstreamResponse | Failure]:
        """Send a request; the returned list gets its result."""
        head = RequestHead(method, b"/p", Headers([(b"Host", b"up"), *fields]))
        results: list[UpstreamResponse | Failure] = []
        self.protocol.send_request(head, framing, body).addBoth(results.append)
        return results

    def receive(self, *reads: bytes) -> None:
        for data in reads:
            self.protocol.dataReceived(data)

    def lose(self, reason: Exception) -> None:
        self.protocol.connectionLost(Failure(reason))

    @property
    def reading(self) -> str:
        return str(self.transport.producerState)


@pytest.fixture
def upstream(clock: MemoryReactorClock) -> Upstream:
    return Upstream(clock)


def response_of(results: list[UpstreamResponse | Failure]) -> UpstreamResponse:
    [result] = results
    assert isinstance(result, UpstreamResponse), result
    return result


def failure_of(results: list[UpstreamResponse | Failure]) -> Exception:
    [result] = results
    assert isinstance(result, Failure), result
    assert isinstance(result.value, Exception)
    return result.value


def test_protocol_is_the_transport_producer(upstream: Upstream) -> None:
    """The protocol registers itself to pace request bodies."""
    assert upstream.transport.producer is upstream.protocol
    assert verifyObject(IPushProducer, upstream.protocol)


def test_request_head_is_written_with_rederived_framing(upstream: Upstream) -> None:
    """The head goes out as HTTP/1.1 with framing fields from the framing value."""
    upstream.request(
        b"POST",
        fixed_length(0),
        None,
        (b"Transfer-Encoding", b"chunked"),
        (b"X-A", b"1"),
    )
    assert upstream.transport.value() == (
        b"POST /p HTTP/1.1\r\nHost: up\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"
    )


def test_response_with_length(
    upstream: Upstream, make_sink: type[RecordingSink]
) -> None:
    """A Content-Length response streams its body; the connection is reusable."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-B: 2\r\n\r\nhel")
    response = response_of(results)
    assert (response.head.status, response.head.reason) == (200, b"OK")
    assert response.head.headers.pairs == [(b"Content-Length", b"5"), (b"X-B", b"2")]
    assert response.framing == fixed_length(5)
    sink = make_sink()
    assert response.body is not None
    response.body.start(sink)
    assert upstream.listener.released == []
    upstream.receive(b"lo")
    assert (sink.data, sink.finished) == (b"hello", True)
    assert upstream.listener.released == [True]
    assert upstream.protocol.reusable


def test_chunked_response(upstream: Upstream, make_sink: type[RecordingSink]) -> None:
    """A chunked response arrives decoded."""
    results = upstream.request()
    upstream.receive(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        b"2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
    )
    response = response_of(results)
    sink = make_sink()
    assert response.body is not None
    response.body.start(sink)
    assert response.framing == CHUNKED
    assert (sink.data, sink.finished) == (b"abcde", True)
    assert upstream.listener.released == [True]


def test_close_delimited_response_ends_with_the_connection(
    upstream: Upstream, make_sink: type[RecordingSink]
) -> None:
    """A response without length ends at a clean close; not reusable."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\n\r\nabc")
    response = response_of(results)
    sink = make_sink()
    assert response.body is not None
    response.body.start(sink)
    assert response.framing == UNTIL_CLOSE
    upstream.lose(ConnectionDone())
    assert (sink.data, sink.finished) == (b"abc", True)
    assert upstream.listener.released == [False]
    assert upstream.listener.lost == 1


def test_reset_during_a_close_delimited_body_is_a_bad_gateway(
    upstream: Upstream, make_sink: type[RecordingSink]
) -> None:
    """A reset cannot be told from a truncation: the body fails."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\n\r\nabc")
    sink = make_sink()
    body = response_of(results).body
    assert body is not None
    body.start(sink)
    upstream.lose(ConnectionLost())
    assert not sink.finished
    [reason] = sink.aborted
    assert isinstance(reason, BadGateway)


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
    ],
)
def test_interim_responses_are_skipped(upstream: Upstream, interim: bytes) -> None:
    """1xx interim responses never reach the caller."""
    results = upstream.request()
    upstream.receive(interim)
    assert results == []
    upstream.receive(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert response_of(results).head.status == 204
    assert upstream.listener.released == [True]


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(upstream: Upstream, status: int) -> None:
    """204 and 304 have no body whatever their fields say."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)
    response = response_of(results)
    assert (response.framing, response.body) == (NO_BODY, None)
    assert upstream.listener.released == [True]


def test_head_response_has_no_body_and_the_next_response_parses(
    upstream: Upstream,
) -> None:
    """The parser is told a HEAD response has no body: the next response is intact."""
    results = upstream.request(b"HEAD")
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    response = response_of(results)
    assert (response.framing, response.body) == (NO_BODY, None)
    assert response.head.headers.get(b"content-length") == b"10"
    assert upstream.listener.released == [True]
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert response_of(results).head.status == 200
    assert upstream.listener.released == [True, True]


def test_body_bytes_after_a_head_response_spoil_the_connection(
    upstream: Upstream,
) -> None:
    """An upstream sending a body to HEAD is not trusted with another request."""
    results = upstream.request(b"HEAD")
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    assert response_of(results).body is None
    assert upstream.listener.released == [False]
    assert upstream.transport.disconnecting


@pytest.mark.parametrize(
    ("response", "request_fields"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", ()),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", ()),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ((b"Connection", b"close"),),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n", ()),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\ngarbage", ()),
    ],
)
def test_connection_not_reusable(
    upstream: Upstream, response: bytes, request_fields: tuple[tuple[bytes, bytes]]
) -> None:
    """Close requested by either side, or stray bytes, end the connection."""
    results = upstream.request(b"GET", NO_BODY, None, *request_fields)
    upstream.receive(response)
    assert response_of(results).head.status == 200
    assert upstream.listener.released == [False]
    assert not upstream.protocol.reusable
    assert upstream.transport.disconnecting


def test_http10_keep_alive_response_is_reusable(upstream: Upstream) -> None:
    """An HTTP/1.0 upstream saying keep-alive keeps the connection."""
    upstream.request()
    upstream.receive(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    )
    assert upstream.listener.released == [True]


@pytest.mark.parametrize(
    "response",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        b"HTTP/1.1 099 Odd\r\n\r\n",
        b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: upgrade\r\n\r\n",
    ],
)
def test_malformed_response_is_a_bad_gateway(
    upstream: Upstream, response: bytes
) -> None:
    """A response that cannot be trusted fails the request and drops the connection."""
    results = upstream.request()
    upstream.receive(response)
    error = failure_of(results)
    assert isinstance(error, BadGateway)
    assert not isinstance(error, NothingReceived)
    assert upstream.transport.disconnected
    assert upstream.listener.released == [False]


def test_oversized_response_head_is_a_bad_gateway(clock: MemoryReactorClock) -> None:
    """Response heads have a size limit too."""
    upstream = Upstream(clock, max_head_size=50)
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 60 + b"\r\n\r\n")
    assert isinstance(failure_of(results), BadGateway)


def test_close_before_any_byte_is_nothing_received(upstream: Upstream) -> None:
    """A connection closed before answering reports that nothing was received."""
    results = upstream.request()
    upstream.lose(ConnectionDone())
    assert isinstance(failure_of(results), NothingReceived)
    assert upstream.listener.released == [False]
    assert upstream.listener.lost == 1


def test_close_mid_head_is_a_bad_gateway(upstream: Upstream) -> None:
    """Once a byte arrived, a close is not retryable as nothing-received."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200")
    upstream.lose(ConnectionDone())
    error = failure_of(results)
    assert isinstance(error, BadGateway)
    assert not isinstance(error, NothingReceived)


def test_close_mid_body_aborts_the_sink(
    upstream: Upstream, make_sink: type[RecordingSink]
) -> None:
    """A body cut short fails its sink with a bad gateway."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    sink = make_sink()
    body = response_of(results).body
    assert body is not None
    body.start(sink)
    upstream.lose(ConnectionDone())
    assert sink.data == b"ab"
    [reason] = sink.aborted
    assert isinstance(reason, BadGateway)


def test_request_on_a_closed_connection_is_nothing_received(
    upstream: Upstream,
) -> None:
    """A pooled connection that died meanwhile fails retryably at once."""
    upstream.lose(ConnectionDone())
    assert isinstance(failure_of(upstream.request()), NothingReceived)


def test_one_request_at_a_time(upstream: Upstream) -> None:
    """HTTP/1.1 without pipelining: a second request while busy is a bug."""
    upstream.request()
    with pytest.raises(RuntimeError):
        upstream.request()


def test_first_byte_timeout(upstream: Upstream, clock: MemoryReactorClock) -> None:
    """No response within first_byte_timeout of the request is a gateway timeout."""
    results = upstream.request()
    clock.advance(59)
    assert results == []
    clock.advance(1)
    assert isinstance(failure_of(results), GatewayTimeout)
    assert upstream.transport.disconnected


def test_first_byte_timeout_starts_when_the_request_is_sent(
    upstream: Upstream, clock: MemoryReactorClock
) -> None:
    """A slow request body upload does not count against the upstream."""
    body = BodyStream(Origin(), 100)
    results = upstream.request(b"POST", CHUNKED, body)
    clock.advance(100)
    assert results == []
    body.end()
    clock.advance(59)
    assert results == []
    clock.advance(1)
    assert isinstance(failure_of(results), GatewayTimeout)


def test_idle_timeout_mid_body(
    upstream: Upstream, clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """A response that stalls between bytes fails its sink with a gateway timeout."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\na")
    sink = make_sink()
    body = response_of(results).body
    assert body is not None
    body.start(sink)
    clock.advance(59)
    upstream.receive(b"b")
    clock.advance(59)
    assert sink.aborted == []
    clock.advance(1)
    [reason] = sink.aborted
    assert isinstance(reason, GatewayTimeout)


def test_no_idle_timeout_while_the_client_side_is_full(
    upstream: Upstream, clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """The upstream is paused, not timed out, while the client is slow."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\na")
    body = response_of(results).body
    assert body is not None
    body.start(make_sink())
    body.pauseProducing()
    assert upstream.reading == "paused"
    clock.advance(1000)
    body.resumeProducing()
    assert upstream.reading == "producing"
    upstream.receive(b"bcde")
    assert upstream.listener.released == [True]


def test_response_body_buffer_pauses_the_upstream(
    clock: MemoryReactorClock, make_sink: type[RecordingSink]
) -> None:
    """A response body nobody reads yet pauses the upstream past the bound."""
    upstream = Upstream(clock, body_buffer_size=4)
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcdef")
    assert upstream.reading == "paused"
    body = response_of(results).body
    assert body is not None
    sink = make_sink()
    body.start(sink)
    assert upstream.reading == "producing"
    assert sink.data == b"abcdef"


def test_request_body_follows_the_upstream_pace(upstream: Upstream) -> None:
    """While the upstream's socket is full, the request body's origin is paused."""
    origin = Origin()
    body = BodyStream(origin, 100)
    upstream.request(b"POST", CHUNKED, body)
    body.feed(b"abc")
    upstream.protocol.pauseProducing()
    assert origin.paused
    upstream.protocol.resumeProducing()
    assert not origin.paused
    body.end()
    assert upstream.transport.value().endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")


def test_request_body_starts_paused_when_the_upstream_is_full(
    upstream: Upstream,
) -> None:
    """A body sent while the upstream is full waits."""
    upstream.protocol.pauseProducing()
    origin = Origin()
    body = BodyStream(origin, 100)
    upstream.request(b"POST", fixed_length(3), body)
    assert origin.paused
    body.feed(b"abc")
    assert not upstream.transport.value().endswith(b"abc")
    upstream.protocol.resumeProducing()
    assert upstream.transport.value().endswith(b"\r\n\r\nabc")


def test_early_response_stops_the_request_body(upstream: Upstream) -> None:
    """An upstream answering before the whole request came gets no more of it."""
    origin = Origin()
    body = BodyStream(origin, 100)
    results = upstream.request(b"POST", fixed_length(100), body)
    body.feed(b"abc")
    upstream.receive(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert response_of(results).head.status == 413
    assert origin.abandoned
    assert upstream.listener.released == [False]


def test_request_body_failure_fails_the_request(upstream: Upstream) -> None:
    """A request body broken on the client side abandons the upstream request."""
    body = BodyStream(Origin(), 100)
    results = upstream.request(b"POST", CHUNKED, body)
    error = ConnectionError("client went away")
    body.fail(error)
    assert failure_of(results) is error
    assert upstream.transport.disconnected
    assert not upstream.transport.value().endswith(b"0\r\n\r\n")


def test_abandoned_response_drops_the_connection(
    upstream: Upstream, make_sink: type[RecordingSink]
) -> None:
    """When the client side goes away mid-body, the upstream connection is dropped."""
    results = upstream.request()
    upstream.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    body = response_of(results).body
    assert body is not None
    body.start(make_sink())
    body.stopProducing()
    assert upstream.transport.disconnected
    assert upstream.listener.released == [False]


def test_cancel_drops_the_connection(upstream: Upstream) -> None:
    """Cancelling the pending request aborts the connection."""
    head = RequestHead(b"GET", b"/", Headers([(b"Host", b"up")]))
    d: Deferred[UpstreamResponse] = upstream.protocol.send_request(head, NO_BODY)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    d.cancel()
    assert failures[0].check(CancelledError)
    assert upstream.transport.disconnected
    assert upstream.listener.released == [False]


def test_unsolicited_bytes_close_an_idle_connection(upstream: Upstream) -> None:
    """Bytes on an idle connection (a late 408...) make it unusable."""
    upstream.receive(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert not upstream.protocol.reusable
    assert upstream.transport.disconnecting


class TunnelEnd(Protocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


def test_101_hands_the_connection_over(upstream: Upstream) -> None:
    """After a 101 to an Upgrade request, a tunnel gets the transport and bytes."""
    results = upstream.request(
        b"GET",
        NO_BODY,
        None,
        (b"Connection", b"Upgrade"),
        (b"Upgrade", b"websocket"),
    )
    upstream.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\nframe1"
    )
    response = response_of(results)
    assert (response.head.status, response.body) == (101, None)
    assert upstream.listener.released == [False]
    assert not upstream.protocol.reusable
    assert upstream.reading == "paused"
    upstream.receive(b"frame2")
    tunnel = TunnelEnd()
    upstream.protocol.switch_protocols(tunnel)
    assert tunnel.transport is upstream.transport
    assert upstream.transport.producer is None
    assert upstream.reading == "producing"
    upstream.receive(b"frame3")
    assert b"".join(tunnel.received) == b"frame1frame2frame3"
    assert not upstream.transport.disconnecting


def test_switch_protocols_needs_a_101(upstream: Upstream) -> None:
    """Only a 101 hands the connection over."""
    with pytest.raises(RuntimeError):
        upstream.protocol.switch_protocols(TunnelEnd())


def test_upstream_not_reading_the_request_times_out(
    upstream: Upstream, clock: MemoryReactorClock
) -> None:
    """An upstream that leaves its socket full for send_timeout is given up."""
    origin = Origin()
    body = BodyStream(origin, 100)
    results = upstream.request(b"POST", CHUNKED, body)
    upstream.protocol.pauseProducing()
    clock.advance(59)
    upstream.protocol.resumeProducing()
    upstream.protocol.pauseProducing()
    clock.advance(59)
    assert results == []
    clock.advance(1)
    assert isinstance(failure_of(results), GatewayTimeout)
    assert origin.abandoned


@pytest.mark.parametrize(
    "fields",
    [b"Upgrade: websocket\r\n", b"Connection: upgrade\r\n"],
)
def test_101_without_both_upgrade_fields_is_a_bad_gateway(
    upstream: Upstream, fields: bytes
) -> None:
    """A 101 must say what it switches to (Connection and Upgrade)."""
    results = upstream.request(
        b"GET", NO_BODY, None, (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")
    )
    upstream.receive(b"HTTP/1.1 101 Switching Protocols\r\n" + fields + b"\r\n")
    assert isinstance(failure_of(results), BadGateway)
    assert upstream.transport.disconnected


# --- the receiver interface ------------------------------------------------------


class Receiver:
    """A ResponseReceiver that keeps what it hears."""

    def __init__(self) -> None:
        self.responses: list[UpstreamResponse] = []
        self.errors: list[Exception] = []

    def response_received(self, response: UpstreamResponse) -> None:
        self.responses.append(response)

    def request_failed(self, error: Exception) -> None:
        self.errors.append(error)


def test_send_tells_the_receiver_of_the_response(upstream: Upstream) -> None:
    """send() hands the response head to its receiver, once."""
    receiver = Receiver()
    head = RequestHead(b"GET", b"/p", Headers([(b"Host", b"up")]))
    upstream.protocol.send(head, NO_BODY, None, receiver)
    upstream.receive(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert [r.head.status for r in receiver.responses] == [204]
    assert receiver.errors == []
    assert upstream.listener.released == [True]


def test_send_on_a_closed_connection_fails_at_once(upstream: Upstream) -> None:
    """send() on a closed connection tells the receiver NothingReceived."""
    upstream.lose(ConnectionDone())
    receiver = Receiver()
    upstream.protocol.send(RequestHead(b"GET", b"/p"), NO_BODY, None, receiver)
    assert [type(e) for e in receiver.errors] == [NothingReceived]


def test_cancel_request_drops_the_connection_quietly(upstream: Upstream) -> None:
    """cancel_request() aborts the connection; the receiver hears nothing."""
    receiver = Receiver()
    head = RequestHead(b"GET", b"/p", Headers([(b"Host", b"up")]))
    upstream.protocol.send(head, NO_BODY, None, receiver)
    upstream.protocol.cancel_request()
    assert upstream.transport.disconnecting
    assert upstream.listener.released == [False]
    assert receiver.responses == [] and receiver.errors == []


@pytest.mark.parametrize(
    ("framed", "sent"),
    [
        (True, b"Host: up\r\nContent-Length: 9\r\n\r\n"),
        (False, b"Host: up\r\nContent-Length: 3\r\n\r\n"),
    ],
)
def test_a_framed_head_is_sent_as_it_is(
    upstream: Upstream, framed: bool, sent: bytes
) -> None:
    """framed=True sends the head's own framing fields; else they are re-derived."""
    head = RequestHead(
        b"POST", b"/p", Headers([(b"Host", b"up"), (b"Content-Length", b"9")])
    )
    body = BodyStream(Origin(), 1024)
    upstream.protocol.send(head, fixed_length(3), body, Receiver(), framed=framed)
    assert upstream.transport.value() == b"POST /p HTTP/1.1\r\n" + sent


def test_on_connected_is_called_once_when_connected(clock: MemoryReactorClock) -> None:
    """on_connected hears of the connection being made, then is dropped."""
    protocol = HTTPClientProtocol(clock)
    calls: list[None] = []
    protocol.on_connected = lambda: calls.append(None)
    protocol.makeConnection(StringTransport())
    assert calls == [None]
    assert protocol.on_connected is None
