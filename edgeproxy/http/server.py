"""
The client-facing HTTP/1.1 protocol: strict parsing, limits, timeouts, order.

:class:`HTTPServerProtocol` reads requests with httptools (llhttp, strict) and
hands each to a :class:`RequestHandler` as a
:class:`~edgeproxy.http.server_exchange.ServerExchange`, one at a time: a
pipelined request waits (parsed, its body buffered up to a bound, the client's
transport paused) until the response before it is complete, so responses go out
strictly in order.

Refused before any handler sees them, with the connection closed: malformed
input (llhttp errors: bare LF, obs-fold, bad chunk sizes, garbage request
lines...), ambiguous framing (:func:`~edgeproxy.core.framing.inspect_request`),
versions other than HTTP/1.0 and 1.1 (400, or 505 for 2.0 and later), heads over
the limits (414 for the target, 431 for the fields), bodies over the limit (413)
and ``CONNECT``: a reverse proxy serves no tunnels, and since edgeproxy never
answers 501 the answer is ``405`` with ``Allow`` listing the methods it forwards.

Timeouts (all on the injected reactor): a head not complete within
``head_timeout`` of the connection or of its first byte gets 408; a body
that stops arriving for ``body_timeout`` gets 408 (or a dropped connection
once the response has started); an idle keep-alive connection is closed
silently after ``keep_alive_timeout``; a client that reads nothing of a
response for ``send_timeout`` is dropped.

A request with ``Upgrade`` ends the HTTP part of its connection: the bytes after
it are kept for :meth:`ServerExchange.switch_protocols`, and any answer but
``101`` closes the connection after it.
"""

from __future__ import annotations

import enum
import typing
from collections import deque
from email.utils import formatdate
from functools import lru_cache

import httptools
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IProtocol, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from edgeproxy.core.framing import (
    BodyKind,
    FramingError,
    fixed_length,
    inspect_request,
)
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead, headers_of
from edgeproxy.core.response_framing import frame_response
from edgeproxy.http.access import ExchangeLogger
from edgeproxy.http.body import BodyStream
from edgeproxy.http.deadline import Deadline
from edgeproxy.http.message_reader import MessageError, MessageReader
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.http.settings import ServerSettings
from edgeproxy.http.transport import FlowControlledProtocol
from edgeproxy.http.wire import response_bytes

_log = Logger()

_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
_FORWARDED_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


class RequestHandler(typing.Protocol):
    """What an HTTP listener does with each request (the exchange glue)."""

    def request_received(self, exchange: ServerExchange) -> None:
        """
        Answer ``exchange``, now or later, with exactly one response.

        An exception raised here is logged and answered with 500.
        """


class _Timer(enum.Enum):
    HEAD = "head"
    BODY = "body"
    IDLE = "idle"
    SEND = "send"


class HTTPServerProtocol(FlowControlledProtocol):
    """
    One client connection speaking HTTP/1.0 or 1.1.

    The protocol is its transport's producer: when the client's socket is
    full, the transport pauses it and it pauses the producer of the response
    being sent (see :meth:`ServerExchange.send_head`).  The methods of
    :class:`~edgeproxy.http.server_exchange.ExchangeConnection` are for its
    exchanges only.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        handler: RequestHandler,
        settings: ServerSettings | None = None,
        access: ExchangeLogger | None = None,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self._handler = handler
        self._access = access
        self._settings = settings = settings or ServerSettings()
        self._reader: MessageReader[httptools.HttpRequestParser] = MessageReader(
            httptools.HttpRequestParser,
            None,
            self._head_received,
            self._body_received,
            self._message_complete,
            max_head_size=settings.max_head_size,
            max_field_count=settings.max_field_count,
            max_target_length=settings.max_target_length,
        )
        self._queue: deque[ServerExchange] = deque()
        self._active: ServerExchange | None = None
        self._receiving: ServerExchange | None = None
        self._pending_error: MessageError | None = None
        self._parsing = True
        self._dispatching = False
        self._held: list[bytes] = []
        self._held_size = 0
        self._body_pauses = 0
        self._deadline: Deadline[_Timer] = Deadline(reactor, self._timed_out)
        self._send_deadline: Deadline[_Timer] = Deadline(reactor, self._timed_out)
        self._served = 0
        self._client_host = ""
        self._client_port = 0

    # --- Twisted's side ------------------------------------------------------

    def connectionMade(self) -> None:
        """Start the head timer and become the transport's producer."""
        super().connectionMade()
        peer = self.transport.getPeer() if self.transport is not None else None
        if isinstance(peer, IPv4Address | IPv6Address):
            self._client_host, self._client_port = peer.host, peer.port
        self._update_reading()

    def dataReceived(self, data: bytes) -> None:
        """Parse requests; hand complete heads on in order."""
        if self._tunnel is not None:
            self._tunnel.dataReceived(data)
            return
        if not self._parsing:
            self._hold(data)
            return
        if self._deadline.kind is _Timer.BODY:
            self._deadline.arm(_Timer.BODY, self._settings.body_timeout)
        try:
            self._reader.feed(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._parsing = False
            self._hold(data[upgrade.args[0] :])
        except MessageError as error:
            self._reject(error)
        except httptools.HttpParserCallbackError as error:
            _log.failure(
                "parsing a request failed unexpectedly",
                Failure(error.__context__ or error),
            )
            self._reject(MessageError(500, "internal error"))
        except httptools.HttpParserError as error:
            self._reject(MessageError(400, f"malformed request: {error}"))
        self._dispatch()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """End the exchanges in progress; forget the ones waiting."""
        self._closing = True
        self._parsing = False
        self._deadline.cancel()
        self._send_deadline.cancel()
        if self._tunnel is not None:
            self._tunnel.connectionLost(reason)
            return
        self._queue.clear()
        self._held = []
        self.stopProducing()
        receiving, active = self._receiving, self._active
        self._receiving = self._active = None
        if receiving is not None and receiving is not active:
            receiving.client_gone()
        if active is not None:
            active.client_gone()

    def pauseProducing(self) -> None:
        """The client's socket is full: pause the response; start send_timeout."""
        super().pauseProducing()
        if self._settings.send_timeout:
            self._send_deadline.arm(_Timer.SEND, self._settings.send_timeout)

    def resumeProducing(self) -> None:
        """The client's socket drained: resume the response."""
        self._send_deadline.disarm()
        super().resumeProducing()

    # --- ExchangeConnection, for the exchanges (write is inherited) ----------

    def http_date(self) -> bytes:
        """The reactor's time as an HTTP-date."""
        return _http_date(int(self._reactor.seconds()))

    def may_persist(self) -> bool:
        """Whether the connection has no reason of its own to close."""
        return not self._closing

    def response_started(
        self, exchange: ServerExchange, producer: IPushProducer | None
    ) -> None:
        """Relay the client's pace to ``producer`` until the response ends."""
        if exchange is self._active:
            self._follow(producer)

    def response_finished(self, exchange: ServerExchange, keep_alive: bool) -> None:
        """Go on with the next request, or close."""
        if exchange is not self._active:
            return
        self._active = None
        self._producer = None
        self._served += 1
        if not keep_alive:
            self._close()
        elif self._queue or self._pending_error is not None or self._dispatching:
            self._dispatch()
        else:
            # Nothing waits (the usual keep-alive case): only the idle timer.
            self._update_reading()

    def response_aborted(self, exchange: ServerExchange) -> None:
        """Drop the connection."""
        if exchange is self._active:
            self._abort()

    def request_body_paused(self, paused: bool) -> None:
        """Count the request body's wish to pause reading."""
        self._body_pauses += 1 if paused else -1
        self._update_reading()

    def protocols_switched(self, protocol: IProtocol) -> None:
        """From now on, ``protocol`` owns the connection."""
        if self._closing:
            return
        self._active = None
        self._deadline.cancel()
        self._send_deadline.cancel()
        held = b"".join(self._held)
        self._held = []
        self._hand_over(protocol, held)

    # --- parser callbacks ----------------------------------------------------

    def _head_received(self) -> None:
        reader = self._reader
        parser = reader.parser
        http_version = parser.get_http_version()
        version = _VERSIONS.get(http_version)
        if version is None:
            if http_version >= "2":
                raise MessageError(505, "HTTP version not supported")
            raise MessageError(400, "malformed request line")
        method = parser.get_method()
        if method == b"CONNECT":
            raise MessageError(405, "CONNECT is not served here")
        target = reader.target
        if b"#" in target:
            # llhttp lets a fragment through; two servers could read it two ways.
            raise MessageError(400, "fragment in the request target")
        request = RequestHead(method, target, headers_of(reader.headers), version)
        try:
            framing = inspect_request(request)
        except FramingError as error:
            raise MessageError(error.status, error.reason) from None
        settings = self._settings
        body = framing.body
        if settings.max_body_size and body.length > settings.max_body_size:
            raise MessageError(413, "request body too large")
        exchange = ServerExchange(
            self,
            request,
            framing,
            client_host=self._client_host,
            client_port=self._client_port,
            received_at=self._reactor.seconds(),
            upgrade=parser.should_upgrade(),
        )
        access = self._access
        if access is not None and access.enabled:
            exchange.on_end = access.log_exchange
        # body.has_body, without a call: a request body is chunked or has a length.
        if body.length or body.kind is BodyKind.CHUNKED:
            exchange.body = BodyStream(exchange, settings.body_buffer_size)
        self._receiving = exchange
        self._queue.append(exchange)

    def _body_received(self, data: bytes) -> None:
        exchange = self._receiving
        if exchange is None or exchange.body is None:
            return
        body = exchange.body
        limit = self._settings.max_body_size
        if limit and body.received + len(data) > limit:
            raise MessageError(413, "request body too large")
        body.feed(data)

    def _message_complete(self) -> None:
        exchange = self._receiving
        if exchange is None:
            return
        self._receiving = None
        exchange.request_complete = True
        if exchange.body is not None:
            exchange.body.end()

    # --- internals -----------------------------------------------------------

    def _dispatch(self) -> None:
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._active is None and not self._closing:
                if self._queue:
                    exchange = self._active = self._queue.popleft()
                    try:
                        self._handler.request_received(exchange)
                    except Exception:
                        self._handler_failed(exchange)
                elif self._pending_error is not None:
                    self._send_error(self._pending_error)
                else:
                    break
        finally:
            self._dispatching = False
        self._update_reading()

    def _handler_failed(self, exchange: ServerExchange) -> None:
        _log.failure("the request handler failed on {exchange!r}", exchange=exchange)
        if not exchange.responded:
            exchange.fail_request(500, "internal error")
        else:
            exchange.abort()

    def _reject(self, error: MessageError) -> None:
        _log.info(
            "request from {client} refused: {status} {reason}",
            client=self._client_host,
            status=error.status,
            reason=error.reason,
        )
        self._parsing = False
        exchange, self._receiving = self._receiving, None
        if exchange is self._active and exchange is not None:
            exchange.fail_request(error.status, error.reason)
            return
        if exchange is not None:
            # Its body broke before its turn: no handler ever sees it.
            self._queue.remove(exchange)
        self._pending_error = error

    def _send_error(self, error: MessageError) -> None:
        access = self._access
        if access is not None and access.enabled:
            access.log_refusal(self._client_host, error.status, error.reason)
        response = LocalResponse.text(error.status, error.reason)
        if error.status == 405:
            response.headers.add(b"Allow", _FORWARDED_METHODS)
        head = ResponseHead(error.status, b"", response.headers)
        frame_response(
            head,
            b"GET",
            b"1.1",
            fixed_length(len(response.body)),
            keep_alive=False,
            date=self.http_date(),
        )
        self.write(response_bytes(head, response.body))
        self._close()

    def _hold(self, data: bytes) -> None:
        if self._closing or self._pending_error is not None or not data:
            return
        self._held.append(data)
        self._held_size += len(data)
        if self._held_size > self._settings.body_buffer_size:
            _log.info("too many bytes after an Upgrade request: connection dropped")
            self._abort()

    def _update_reading(self) -> None:
        """Pause or resume reading, and run the timer that fits the state."""
        if self._closing or self._tunnel is not None:
            return
        paused = self._body_pauses > 0 or bool(self._queue) or not self._parsing
        if paused is not self._reading_paused:
            self._pause_reading(paused)
        settings = self._settings
        kind: _Timer | None = None
        seconds = 0.0
        if self._active is None and not self._queue:
            if not self._parsing:
                pass
            elif self._reader.in_head or not self._served:
                kind, seconds = _Timer.HEAD, settings.head_timeout
            else:
                kind, seconds = _Timer.IDLE, settings.keep_alive_timeout
        elif (
            self._active is not None
            and self._receiving is self._active
            and not self._reading_paused
        ):
            kind, seconds = _Timer.BODY, settings.body_timeout
        if kind is self._deadline.kind:
            return
        if kind is None or not seconds:
            self._deadline.disarm()
        else:
            self._deadline.arm(kind, seconds)

    def _timed_out(self, kind: _Timer) -> None:
        if kind is _Timer.SEND:
            _log.info("client {client} stopped reading", client=self._client_host)
            self._abort()
        elif kind is _Timer.HEAD and self._reader.in_head:
            self._reject(MessageError(408, "request head not received in time"))
            self._dispatch()
        elif kind is _Timer.BODY and self._active is not None:
            self._active.fail_request(408, "request body not received in time")
        else:
            self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._parsing = False
        self._deadline.cancel()
        if self._stream is not None:
            self._stream.loseConnection()

    def _abort(self) -> None:
        self._closing = True
        self._parsing = False
        self._deadline.cancel()
        self._send_deadline.cancel()
        if self._stream is not None:
            self._stream.abortConnection()


class HTTPServerFactory(Factory):
    """Builds an :class:`HTTPServerProtocol` per connection of one listener."""

    def __init__(
        self,
        reactor: IReactorTime,
        handler: RequestHandler,
        settings: ServerSettings | None = None,
        access: ExchangeLogger | None = None,
    ) -> None:
        self._reactor = reactor
        self._handler = handler
        self._settings = settings or ServerSettings()
        self._access = access

    def buildProtocol(self, addr: IAddress | None) -> HTTPServerProtocol:
        """A protocol for one new connection."""
        protocol = HTTPServerProtocol(
            self._reactor, self._handler, self._settings, self._access
        )
        protocol.factory = self
        return protocol


@lru_cache(maxsize=2)
def _http_date(second: int) -> bytes:
    return formatdate(second, usegmt=True).encode("ascii")
