"""
The upstream-facing HTTP/1.1 protocol: one request at a time on a connection.

:class:`HTTPClientProtocol` writes a request head (already filtered by the
caller; its framing fields are re-derived here), streams the request body with
back-pressure, and reads the response with httptools: interim 1xx responses are
skipped, a ``101`` hands the connection over for a tunnel, the response to
``HEAD`` has no body whatever its fields say.  The response body streams to the
caller's sink with back-pressure (the upstream is paused while the client side
is full).

Failures are :class:`~edgeproxy.errors.BadGateway` (reset, malformed response,
closed before the response was complete) or
:class:`~edgeproxy.errors.GatewayTimeout` (no first byte within
``first_byte_timeout`` of the request being sent; no byte for ``idle_timeout``
while the response is read).  :class:`NothingReceived`, a ``BadGateway``, says
the connection closed before any byte of a response arrived: the usual fate of a
request sent on a keep-alive connection that the server closed meanwhile, which
the caller may retry on another connection (when the request has no body, or its
body stream was not started).
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable

import httptools
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from edgeproxy.core.framing import (
    LAST_CHUNK,
    BodyFraming,
    BodyKind,
    FramingError,
    chunk,
    connection_tokens,
    frame_request,
)
from edgeproxy.core.message import RequestHead, ResponseHead, headers_of
from edgeproxy.core.response_framing import response_framing
from edgeproxy.errors import BadGateway, GatewayTimeout
from edgeproxy.http.body import BodyStream
from edgeproxy.http.deadline import Deadline
from edgeproxy.http.message_reader import MessageError, MessageReader
from edgeproxy.http.settings import ClientSettings
from edgeproxy.http.transport import FlowControlledProtocol
from edgeproxy.http.wire import request_bytes

_log = Logger()

_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}


class NothingReceived(BadGateway):
    """The connection closed before any byte of a response arrived."""


class UpstreamResponse:
    """
    A response head from the upstream, and its body to come.

    :ivar head: the head as received (filters may change it in place).
    :ivar framing: how the upstream delimits the body; give it to
        :meth:`~edgeproxy.http.server_exchange.ServerExchange.send_head`.
    :ivar body: the body, or ``None`` when there is none (and for ``101``).
    """

    __slots__ = ("body", "framing", "head")

    def __init__(
        self, head: ResponseHead, framing: BodyFraming, body: BodyStream | None
    ) -> None:
        self.head = head
        self.framing = framing
        self.body = body

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.head.status}>"


class ResponseReceiver(typing.Protocol):
    """
    Who hears the outcome of one request (:meth:`HTTPClientProtocol.send`).

    Exactly one of the two methods is called, once, unless the request is
    cancelled (:meth:`HTTPClientProtocol.cancel_request`) first.
    """

    def response_received(self, response: UpstreamResponse) -> None:
        """The response head arrived (its body follows in ``response.body``)."""

    def request_failed(self, error: Exception) -> None:
        """
        The request failed before a response head arrived: ``error`` is a
        :class:`NothingReceived`, ``BadGateway``, ``GatewayTimeout``, or the
        request body's own failure.
        """


class _DeferredReceiver:
    """A :class:`ResponseReceiver` that fires a ``Deferred``."""

    __slots__ = ("_d",)

    def __init__(self, d: Deferred[UpstreamResponse]) -> None:
        self._d = d

    def response_received(self, response: UpstreamResponse) -> None:
        self._d.callback(response)

    def request_failed(self, error: Exception) -> None:
        self._d.errback(error)


class ConnectionListener(typing.Protocol):
    """What the owner of a connection (the pool) is told."""

    def connection_released(
        self, connection: HTTPClientProtocol, reusable: bool
    ) -> None:
        """
        The request is over (once per :meth:`HTTPClientProtocol.send_request`).

        When ``reusable`` is false the connection is closing (or, after a 101,
        belongs to a tunnel): forget it.
        """

    def connection_lost(self, connection: HTTPClientProtocol) -> None:
        """The connection closed (once)."""


class _Timer(enum.Enum):
    FIRST_BYTE = "first byte"
    IDLE = "idle"
    SEND = "send"


class _RequestBodyWriter:
    """The sink that writes one request body upstream."""

    __slots__ = ("_chunked", "_client")

    def __init__(self, client: HTTPClientProtocol, chunked: bool) -> None:
        self._client = client
        self._chunked = chunked

    def send_body(self, data: bytes) -> None:
        """Write a piece of the body (as a chunk when chunked)."""
        self._client.write(chunk(data) if self._chunked else data)

    def finish(self) -> None:
        """The body is complete."""
        if self._chunked:
            self._client.write(LAST_CHUNK)
        self._client.request_body_sent()

    def abort(self, reason: Exception | None = None) -> None:
        """The body broke on the client's side: the request is abandoned."""
        self._client.request_body_failed(reason)


class HTTPClientProtocol(FlowControlledProtocol):
    """
    One connection to an upstream server, carrying one request at a time.

    It is its transport's producer: while the upstream's socket is full it
    pauses the request body being sent.  ``write`` (inherited) and the
    ``request_body_*`` methods are for the request body's writer only.

    :ivar requests_sent: how many requests this connection carried (a request
        whose number is above 1 went on a reused connection).
    :ivar on_connected: called once, with no argument, when the connection is
        made (for a caller that connects it without an endpoint), or ``None``.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        settings: ClientSettings | None = None,
        listener: ConnectionListener | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings = settings or ClientSettings()
        self._listener = listener
        self._reader: MessageReader[httptools.HttpResponseParser] = MessageReader(
            httptools.HttpResponseParser,
            self._message_begun,
            self._head_received,
            self._body_received,
            self._message_complete,
            max_head_size=settings.max_head_size,
            max_field_count=settings.max_field_count,
        )
        self._deadline: Deadline[_Timer] = Deadline(reactor, self._timed_out)
        self._send_deadline: Deadline[_Timer] = Deadline(reactor, self._timed_out)
        self.requests_sent = 0
        self._closed = False
        self._busy = False
        self._poisoned = False
        self._receiver: ResponseReceiver | None = None
        self._request_body: BodyStream | None = None
        self._request_sent = False
        self._method = b""
        self._request_persists = True
        self._upgrade_requested = False
        self._received_any = False
        self._response: UpstreamResponse | None = None
        self._head_pending = False
        self._interim = False
        self._complete = False
        self._skip_body = False
        self._persists = False
        self._switch_pending = False
        self._held = b""
        self.on_connected: Callable[[], object] | None = None

    @property
    def reusable(self) -> bool:
        """Whether the connection is open, idle and fit for another request."""
        return not (
            self._closed
            or self._busy
            or self._poisoned
            or self._switch_pending
            or self._tunnel is not None
        )

    # --- the caller's side ---------------------------------------------------

    def send_request(
        self, head: RequestHead, framing: BodyFraming, body: BodyStream | None = None
    ) -> Deferred[UpstreamResponse]:
        """
        Send a request; the result fires with the response head.

        The same as :meth:`send`, with a ``Deferred`` as the receiver.

        :return: a ``Deferred`` firing with an :class:`UpstreamResponse`, or
            failing with :class:`NothingReceived`, ``BadGateway`` or
            ``GatewayTimeout`` (or the request body's own failure).  Cancelling
            it drops the connection.
        :raises RuntimeError: when a request is already in progress.
        """
        d: Deferred[UpstreamResponse] = Deferred(self._cancelled)
        self.send(head, framing, body, _DeferredReceiver(d))
        return d

    def send(
        self,
        head: RequestHead,
        framing: BodyFraming,
        body: BodyStream | None,
        receiver: ResponseReceiver,
        *,
        framed: bool = False,
    ) -> None:
        """
        Send a request; ``receiver`` hears of its response head or failure.

        :param head: the head to send as it is, except its framing fields,
            which are re-derived from ``framing`` (the request goes as
            HTTP/1.1).
        :param framing: how the request body is delimited where it comes
            from (``exchange.framing``).
        :param body: the request body (``exchange.body``), streamed with the
            upstream's pace; ``None`` for none.
        :param receiver: told of the outcome (maybe before this returns, when
            the connection is closed already).
        :param framed: the head's framing fields match ``framing`` already and
            it has no ``Connection`` field (as
            :func:`~edgeproxy.core.request_fields.upstream_request_headers` makes
            it with ``body=framing``, but for a WebSocket upgrade): it is sent
            as it is.
        :raises RuntimeError: when a request is already in progress.
        """
        if self._busy or self._switch_pending or self._tunnel is not None:
            raise RuntimeError("one request at a time on an HTTP/1.1 connection")
        if self._closed or self._poisoned or self._stream is None:
            receiver.request_failed(NothingReceived("the connection is closed"))
            return
        if framed:
            self._request_persists = True
            self._upgrade_requested = False
        else:
            tokens = frame_request(head, framing)
            self._request_persists = b"close" not in tokens
            self._upgrade_requested = b"upgrade" in tokens
        self.requests_sent += 1
        self._busy = True
        self._method = head.method
        self._received_any = False
        self._request_sent = False
        self._receiver = receiver
        self.write(request_bytes(head))
        if body is None:
            self._request_sent = True
            self._update_timer()
        else:
            self._request_body = body
            self._follow(body)
            body.start(_RequestBodyWriter(self, framing.kind is BodyKind.CHUNKED))

    def cancel_request(self) -> None:
        """
        Give up the request in progress: its receiver hears nothing more.

        The connection is dropped (and released as not reusable).
        """
        self._receiver = None
        self._fail(None)

    def switch_protocols(self, protocol: IProtocol) -> None:
        """
        After a ``101``, hand the connection to ``protocol``.

        ``protocol`` gets ``makeConnection`` with the transport, then the
        bytes that followed the ``101`` head, then everything else.

        :raises RuntimeError: when the last response was not a ``101``.
        """
        if not self._switch_pending or self._closed:
            raise RuntimeError("switch_protocols needs a 101 response")
        self._switch_pending = False
        self._deadline.cancel()
        held, self._held = self._held, b""
        self._hand_over(protocol, held)

    def close(self) -> None:
        """Close the connection (an idle one, or one that is no longer wanted)."""
        self._poisoned = True
        if self._stream is not None and not (self._closing or self._closed):
            self._closing = True
            self._stream.loseConnection()

    # --- Twisted's side ------------------------------------------------------

    def connectionMade(self) -> None:
        """Become the transport's producer; tell ``on_connected``."""
        super().connectionMade()
        connected, self.on_connected = self.on_connected, None
        if connected is not None:
            connected()

    def dataReceived(self, data: bytes) -> None:
        """Parse the response; hand its head and body on."""
        if self._tunnel is not None:
            self._tunnel.dataReceived(data)
            return
        if self._switch_pending:
            self._held += data
            return
        if not self._busy:
            # Bytes nobody asked for (a late error, garbage): unusable now.
            if not self._closed:
                _log.info("unsolicited bytes from an upstream: connection closed")
                self.close()
            return
        # The idle countdown restarts after the bytes are parsed
        # (_after_feed): there is none to restart once they end the response.
        self._received_any = True
        try:
            self._reader.feed(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._switched(data[upgrade.args[0] :])
            return
        except MessageError as error:
            self._parse_failed(f"upstream response refused: {error.reason}")
        except httptools.HttpParserCallbackError as error:
            _log.failure(
                "parsing a response failed unexpectedly",
                Failure(error.__context__ or error),
            )
            self._parse_failed("internal error")
        except httptools.HttpParserError as error:
            self._parse_failed(f"malformed response: {error}")
        self._after_feed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """End the request in progress, if any; tell the listener."""
        self._closed = self._closing = True
        self._deadline.cancel()
        self._send_deadline.cancel()
        if self._tunnel is not None:
            self._tunnel.connectionLost(reason)
        elif self._busy:
            response = self._response
            if (
                response is not None
                and response.framing.kind is BodyKind.UNTIL_CLOSE
                and reason.check(ConnectionDone)
            ):
                self._persists = False
                self._complete = True
                self._after_feed()
            elif self._received_any:
                self._fail(BadGateway("connection closed before the response ended"))
            else:
                self._fail(NothingReceived("connection closed before any response"))
        if self._listener is not None:
            self._listener.connection_lost(self)

    def pauseProducing(self) -> None:
        """The upstream's socket is full: pause the request body; start send_timeout."""
        super().pauseProducing()
        if self._busy and self._settings.send_timeout:
            self._send_deadline.arm(_Timer.SEND, self._settings.send_timeout)

    def resumeProducing(self) -> None:
        """The upstream's socket drained: resume the request body."""
        self._send_deadline.disarm()
        super().resumeProducing()

    # --- the response body's origin (called by its BodyStream) ---------------

    def pause_body(self) -> None:
        """The client side is full: stop reading the upstream."""
        self._pause_reading(True)
        self._update_timer()

    def resume_body(self) -> None:
        """The client side drained: read the upstream again."""
        self._pause_reading(False)
        self._update_timer()

    def abandon_body(self) -> None:
        """Nobody wants the rest of the response: drop the connection."""
        if self._response is not None:
            self._fail(None)

    def body_wanted(self) -> None:
        """
        Nothing to do: an upstream sends its body unasked.

        (Never called: the response's stream is made with ``tell_wanted`` off.)
        """

    # --- the request body writer's calls (and write, inherited) -------------

    def request_body_sent(self) -> None:
        """The whole request is written: the first-byte countdown starts."""
        self._request_body = None
        self._follow(None)
        self._request_sent = True
        self._update_timer()

    def request_body_failed(self, reason: Exception | None) -> None:
        """The request body broke on the client's side: give up the request."""
        self._request_body = None
        self._follow(None)
        self._fail(reason or BadGateway("the request body failed"))

    # --- parser callbacks ----------------------------------------------------

    def _message_begun(self) -> None:
        if self._complete:
            raise MessageError(502, "unsolicited bytes after the response")

    def _head_received(self) -> None:
        reader = self._reader
        parser = reader.parser
        status = parser.get_status_code()
        version = _VERSIONS.get(parser.get_http_version())
        if version is None or not 100 <= status <= 599:
            raise MessageError(502, "malformed status line")
        headers = headers_of(reader.headers)
        if status < 200 and status != 101:
            self._interim = True
            return
        if status == 101 and not (
            self._upgrade_requested
            and b"upgrade" in connection_tokens(headers)
            and b"upgrade" in headers
        ):
            # llhttp hands over only such a 101; any other is a bad answer.
            raise MessageError(502, "101 without an Upgrade on both sides")
        try:
            framing, persists = response_framing(self._method, status, version, headers)
        except FramingError as error:
            raise MessageError(502, error.reason) from None
        kind = framing.kind
        body = None
        # framing.has_body, without a call.
        if framing.length or kind is BodyKind.CHUNKED or kind is BodyKind.UNTIL_CLOSE:
            body = BodyStream(self, self._settings.body_buffer_size, tell_wanted=False)
        self._response = UpstreamResponse(
            ResponseHead(status, reader.reason, headers, version), framing, body
        )
        self._head_pending = True
        self._persists = (
            self._request_persists and persists and kind is not BodyKind.UNTIL_CLOSE
        )
        if self._method == b"HEAD":
            # llhttp cannot be told that a HEAD response has no body.
            self._complete = self._skip_body = True

    def _body_received(self, data: bytes) -> None:
        response = self._response
        if self._complete or response is None or response.body is None:
            self._poisoned = True
            return
        response.body.feed(data)

    def _message_complete(self) -> None:
        if self._interim:
            self._interim = False
        else:
            self._complete = True

    # --- internals -----------------------------------------------------------

    def _after_feed(self) -> None:
        response = self._response
        if response is None:
            self._update_timer(restart=True)
            return
        if self._head_pending:
            self._head_pending = False
            receiver, self._receiver = self._receiver, None
            if receiver is not None:
                receiver.response_received(response)
            if self._response is not response:
                return  # the caller gave up on it
        if self._skip_body:
            self._skip_body = False
            self._reader.restart()
        if self._complete:
            self._finish_response(response)
        else:
            self._update_timer(restart=True)

    def _finish_response(self, response: UpstreamResponse) -> None:
        self._complete = False
        self._response = None
        self._busy = False
        self._deadline.disarm()
        if self._send_deadline.kind is not None:
            self._send_deadline.disarm()
        reusable = self._persists and not self._poisoned and not self._closed
        if self._request_body is not None and self._stop_request_body():
            # Answered before the whole request was sent: it went unfinished.
            reusable = False
        if not reusable:
            self.close()
        # Released before the body's end is passed on: the end may start the
        # client's next request, which can then have this connection.
        if self._listener is not None:
            self._listener.connection_released(self, reusable)
        if response.body is not None:
            response.body.end()

    def _switched(self, rest: bytes) -> None:
        response = self._response
        self._response = None
        self._busy = False
        self._complete = self._head_pending = False
        self._deadline.disarm()
        self._switch_pending = True
        self._stop_request_body()
        self._held = rest
        self._pause_reading(True)
        receiver, self._receiver = self._receiver, None
        if receiver is not None and response is not None:
            receiver.response_received(response)
        if self._listener is not None:
            self._listener.connection_released(self, False)

    def _parse_failed(self, reason: str) -> None:
        if self._complete:
            # The response is whole; only what followed it is bad.
            self._poisoned = True
        else:
            self._fail(BadGateway(reason))

    def _timed_out(self, kind: _Timer) -> None:
        settings = self._settings
        if kind is _Timer.FIRST_BYTE:
            reason = f"no response within {settings.first_byte_timeout:g}s"
        elif kind is _Timer.IDLE:
            reason = f"response stalled for {settings.idle_timeout:g}s"
        else:
            reason = f"request not read for {settings.send_timeout:g}s"
        self._fail(GatewayTimeout(reason))

    def _fail(self, error: Exception | None) -> None:
        """End the request in progress with ``error`` and drop the connection."""
        if not self._busy:
            return
        self._busy = False
        self._poisoned = True
        self._deadline.cancel()
        self._send_deadline.cancel()
        receiver, self._receiver = self._receiver, None
        response, self._response = self._response, None
        self._stop_request_body()
        if self._stream is not None and not self._closed:
            self._closing = True
            self._stream.abortConnection()
        if receiver is not None and error is not None:
            receiver.request_failed(error)
        elif response is not None and response.body is not None and error is not None:
            response.body.fail(error)
        if self._listener is not None:
            self._listener.connection_released(self, False)

    def _cancelled(self, d: Deferred[UpstreamResponse]) -> None:
        self.cancel_request()

    def _stop_request_body(self) -> bool:
        """Stop sending the request body, if any is still being sent."""
        body, self._request_body = self._request_body, None
        if body is None:
            return False
        self._follow(None)
        body.stopProducing()
        return True

    def _update_timer(self, restart: bool = False) -> None:
        """Run the countdown that fits the state; ``restart``: bytes came."""
        settings = self._settings
        if not self._busy or self._reading_paused:
            self._deadline.disarm()
        elif self._received_any:
            if (restart or self._deadline.kind is not _Timer.IDLE) and (
                settings.idle_timeout
            ):
                self._deadline.arm(_Timer.IDLE, settings.idle_timeout)
        elif (
            self._request_sent
            and self._deadline.kind is None
            and settings.first_byte_timeout
        ):
            self._deadline.arm(_Timer.FIRST_BYTE, settings.first_byte_timeout)
