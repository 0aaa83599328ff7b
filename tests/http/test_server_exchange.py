"""Tests for edgeproxy.http.server_exchange: what a response looks like on the wire."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from edgeproxy.core.framing import (
    CHUNKED,
    NO_BODY,
    UNTIL_CLOSE,
    BodyFraming,
    fixed_length,
)
from edgeproxy.core.message import Headers, LocalResponse, ResponseHead
from edgeproxy.core.response_framing import UNFRAMED
from edgeproxy.http.body import BodyStream
from edgeproxy.http.server import HTTPServerProtocol
from edgeproxy.http.server_exchange import ServerExchange

if TYPE_CHECKING:
    from tests.http.conftest import LogCapture

DATE = b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"


class Handler:
    def __init__(self) -> None:
        self.exchanges: list[ServerExchange] = []

    def request_received(self, exchange: ServerExchange) -> None:
        self.exchanges.append(exchange)


def exchange_for(
    clock: MemoryReactorClock, request: bytes
) -> tuple[ServerExchange, StringTransport]:
    """The exchange of ``request`` on a fresh connection, and its transport."""
    handler = Handler()
    transport = StringTransport()
    protocol = HTTPServerProtocol(clock, handler)
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    [exchange] = handler.exchanges
    return exchange, transport


GET11 = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
GET10 = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"


def test_fixed_length_response(clock: MemoryReactorClock) -> None:
    """A body of known length goes out with its Content-Length, and the
    connection stays open."""
    exchange, transport = exchange_for(clock, GET11)
    head = ResponseHead(200, b"OK", Headers([(b"X-Up", b"1")]))
    exchange.send_head(head, fixed_length(5))
    exchange.send_body(b"hel")
    exchange.send_body(b"lo")
    exchange.finish()
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\nX-Up: 1\r\nContent-Length: 5\r\n" + DATE + b"\r\nhello"
    )
    assert not transport.disconnecting


@pytest.mark.parametrize("framing", [CHUNKED, UNTIL_CLOSE])
def test_unknown_length_is_chunked_to_http11(
    clock: MemoryReactorClock, framing: BodyFraming
) -> None:
    """An HTTP/1.1 client gets a body of unknown length chunked, and stays."""
    exchange, transport = exchange_for(clock, GET11)
    exchange.send_head(
        ResponseHead(200), CHUNKED if framing is CHUNKED else UNTIL_CLOSE
    )
    exchange.send_body(b"abc")
    exchange.send_body(b"")
    exchange.finish()
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        + DATE
        + b"\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert not transport.disconnecting


def test_unknown_length_is_close_delimited_to_http10(clock: MemoryReactorClock) -> None:
    """An HTTP/1.0 client gets a body of unknown length ended by the close."""
    exchange, transport = exchange_for(clock, GET10)
    exchange.send_head(ResponseHead(200), CHUNKED)
    exchange.send_body(b"abc")
    exchange.finish()
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\n" + DATE + b"Connection: close\r\n\r\nabc"
    )
    assert transport.disconnecting


def test_head_response_has_no_body(clock: MemoryReactorClock) -> None:
    """A HEAD response keeps its Content-Length and sends no body bytes."""
    exchange, transport = exchange_for(clock, HEAD)
    head = ResponseHead(200, b"OK", Headers([(b"Content-Length", b"10")]))
    exchange.send_head(head, NO_BODY)
    exchange.send_body(b"0123456789")
    exchange.finish()
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n" + DATE + b"\r\n"
    )


@pytest.mark.parametrize(
    ("request_bytes", "status", "expected"),
    [
        (GET11, 404, b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n"),
        (HEAD, 404, b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n"),
        (GET11, 304, b"HTTP/1.1 304 Not Modified\r\n"),
        (GET11, 204, b"HTTP/1.1 204 No Content\r\n"),
    ],
)
def test_local_response_framing(
    clock: MemoryReactorClock, request_bytes: bytes, status: int, expected: bytes
) -> None:
    """Local answers get Content-Length and Date; bodiless ones send no body."""
    exchange, transport = exchange_for(clock, request_bytes)
    exchange.send_local(LocalResponse(status, b"nope"))
    body = b"nope" if request_bytes == GET11 and status == 404 else b""
    assert transport.value() == expected + DATE + b"\r\n" + body


def test_local_response_is_not_changed(clock: MemoryReactorClock) -> None:
    """Sending a shared LocalResponse leaves it as it was."""
    exchange, _ = exchange_for(clock, GET11)
    response = LocalResponse(403, b"no", Headers([(b"X-Why", b"acl")]))
    exchange.send_local(response)
    assert response.headers.pairs == [(b"X-Why", b"acl")]


def test_body_longer_than_its_length_drops_the_connection(
    clock: MemoryReactorClock, logged: LogCapture
) -> None:
    """More bytes than Content-Length said would corrupt the next response."""
    exchange, transport = exchange_for(clock, GET11)
    exchange.send_head(ResponseHead(200), fixed_length(2))
    exchange.send_body(b"abc")
    assert transport.disconnected
    assert transport.value().endswith(b"\r\n\r\n")
    assert len(logged.errors()) == 1


def test_body_shorter_than_its_length_drops_the_connection(
    clock: MemoryReactorClock, logged: LogCapture
) -> None:
    """A response finished short of its Content-Length cannot be completed."""
    exchange, transport = exchange_for(clock, GET11)
    exchange.send_head(ResponseHead(200), fixed_length(5))
    exchange.send_body(b"abc")
    exchange.finish()
    assert transport.disconnected
    assert len(logged.errors()) == 1


class Origin:
    """A BodyOrigin with nothing to pace."""

    def pause_body(self) -> None:
        pass

    def resume_body(self) -> None:
        pass

    def abandon_body(self) -> None:
        pass

    def body_wanted(self) -> None:
        pass


def test_send_response_relays_a_body_stream(clock: MemoryReactorClock) -> None:
    """send_response writes the head, then the stream as it comes, then the end."""
    exchange, transport = exchange_for(clock, GET11)
    body = BodyStream(Origin(), 100)
    body.feed(b"early")
    exchange.send_response(ResponseHead(200), CHUNKED, body)
    body.feed(b"late")
    assert not transport.value().endswith(b"0\r\n\r\n")
    body.end()
    assert transport.value().endswith(b"5\r\nearly\r\n4\r\nlate\r\n0\r\n\r\n")


class WriteLog(StringTransport):
    """A StringTransport that also keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def logged_exchange(
    clock: MemoryReactorClock, request: bytes
) -> tuple[ServerExchange, WriteLog]:
    """The exchange of ``request`` on a connection that logs each write."""
    handler = Handler()
    transport = WriteLog()
    protocol = HTTPServerProtocol(clock, handler)
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    [exchange] = handler.exchanges
    return exchange, transport


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + DATE + b"\r\n"


def test_head_and_ready_body_go_out_in_one_write(clock: MemoryReactorClock) -> None:
    """A relayed response whose body is already there is one write, head first."""
    exchange, transport = logged_exchange(clock, GET11)
    body = BodyStream(Origin(), 100)
    body.feed(b"hello")
    body.end()
    exchange.send_response(ResponseHead(200), fixed_length(5), body)
    assert transport.writes == [OK_HEAD + b"hello"]
    assert not exchange.closed


def test_head_goes_out_at_once_when_no_body_is_ready(
    clock: MemoryReactorClock,
) -> None:
    """The head is not held back for a body that has not come yet."""
    exchange, transport = logged_exchange(clock, GET11)
    body = BodyStream(Origin(), 100)
    exchange.send_response(ResponseHead(200), fixed_length(5), body)
    assert transport.writes == [OK_HEAD]
    body.feed(b"hello")
    body.end()
    assert transport.writes == [OK_HEAD, b"hello"]


def test_head_waits_for_a_client_that_reads_nothing(clock: MemoryReactorClock) -> None:
    """While the client's socket is full, the head goes out without the body."""
    exchange, transport = logged_exchange(clock, GET11)
    transport.producer.pauseProducing()
    body = BodyStream(Origin(), 100)
    body.feed(b"hello")
    exchange.send_response(ResponseHead(200), fixed_length(5), body)
    assert transport.writes == [OK_HEAD]
    transport.producer.resumeProducing()
    assert transport.writes == [OK_HEAD, b"hello"]


def test_empty_chunked_body_ends_with_its_head(clock: MemoryReactorClock) -> None:
    """An empty streamed body that already ended is one write: head, last chunk."""
    exchange, transport = logged_exchange(clock, GET11)
    body = BodyStream(Origin(), 100)
    body.end()
    exchange.send_response(ResponseHead(200), CHUNKED, body)
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n")
    assert written.endswith(b"\r\n\r\n0\r\n\r\n")


def test_refused_send_response_writes_nothing(
    clock: MemoryReactorClock, logged: LogCapture
) -> None:
    """A second response is refused whole: nothing of it is written."""
    exchange, transport = logged_exchange(clock, GET11)
    exchange.send_local(LocalResponse(204))
    writes = list(transport.writes)
    body = BodyStream(Origin(), 100)
    body.feed(b"hello")
    exchange.send_response(ResponseHead(200), fixed_length(5), body)
    assert transport.writes == writes
    assert len(logged.errors()) == 1


def test_send_response_without_body(clock: MemoryReactorClock) -> None:
    """A relayed response without a body is complete at once."""
    exchange, transport = exchange_for(clock, GET11)
    exchange.send_response(ResponseHead(200), fixed_length(0), None)
    assert (
        transport.value()
        == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + DATE + b"\r\n"
    )
    assert not exchange.closed
    assert exchange.responded


def test_send_response_of_unframed_fields(clock: MemoryReactorClock) -> None:
    """An unframed head gets only the framing fields, persistence decided here."""
    exchange, transport = exchange_for(
        clock, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    head = ResponseHead(200, b"OK", Headers([(b"Date", b"then")]))
    body = BodyStream(Origin(), 1024)
    body.feed(b"hello")
    body.end()
    exchange.send_response(head, fixed_length(5), body, unframed=UNFRAMED[True][False])
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\nDate: then\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhello"
    )
    assert transport.disconnecting


def test_early_response_closes_the_connection(clock: MemoryReactorClock) -> None:
    """Answering before the request body arrived says close, and closes."""
    exchange, transport = exchange_for(
        clock, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc"
    )
    exchange.send_local(LocalResponse(413))
    assert b"Connection: close\r\n" in transport.value()
    assert transport.disconnecting


def test_abort_drops_the_connection(clock: MemoryReactorClock) -> None:
    """abort() cuts the connection; later calls are silent no-ops."""
    exchange, transport = exchange_for(clock, GET11)
    exchange.send_head(ResponseHead(200), CHUNKED)
    exchange.abort(ValueError("upstream reset"))
    assert transport.disconnected
    assert exchange.closed
    exchange.finish()
    assert not transport.value().endswith(b"0\r\n\r\n")


def test_upstream_date_is_kept(clock: MemoryReactorClock) -> None:
    """A Date from the upstream is not replaced."""
    clock.advance(86400)
    exchange, transport = exchange_for(clock, GET11)
    head = ResponseHead(200, headers=Headers([(b"Date", b"yesterday")]))
    exchange.send_head(head, fixed_length(0))
    assert b"Date: yesterday\r\n" in transport.value()
    assert b"1970" not in transport.value()


@pytest.mark.parametrize("status", [100, 101, 103])
def test_interim_status_is_not_a_response(
    clock: MemoryReactorClock, logged: LogCapture, status: int
) -> None:
    """Only a final status answers; 1xx through send_head is refused and logged."""
    exchange, transport = exchange_for(clock, GET11)
    exchange.send_head(ResponseHead(status), NO_BODY)
    exchange.send_local(LocalResponse(status))
    assert transport.value() == b""
    assert not exchange.responded
    assert len(logged.errors()) == 2


class Waiter:
    """A handler waiting for its client, as the proxy glue does."""

    def gone(self) -> None:
        pass


@pytest.mark.parametrize(
    "end",
    [
        lambda exchange: exchange.send_local(LocalResponse(204)),
        lambda exchange: exchange.send_response(ResponseHead(200), NO_BODY, None),
        lambda exchange: exchange.abort(),
        lambda exchange: exchange.fail_request(408, "too slow"),
    ],
    ids=["send_local", "send_response", "abort", "fail_request"],
)
def test_an_ended_exchange_lets_go_of_its_handler(
    clock: MemoryReactorClock, end: Callable[[ServerExchange], None]
) -> None:
    """Once over, the exchange drops on_client_gone: no cycle keeps the handler."""
    exchange, _ = exchange_for(clock, GET11)
    waiter = Waiter()
    exchange.on_client_gone = waiter.gone
    left = weakref.ref(waiter)
    del waiter
    assert left() is not None
    end(exchange)
    assert exchange.on_client_gone is None
    assert left() is None
