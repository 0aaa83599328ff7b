"""
One request and its one response on a client connection.

A :class:`ServerExchange` is what the request handler gets: the request head,
its body as a :class:`~edgeproxy.http.body.BodyStream`, the client's address,
and the methods that answer it.  It enforces exactly one response: a second
one is a programming error, logged and not sent.  Once the connection is gone
(or the server ended the exchange itself: a malformed body, a timeout) every
answering method is a silent no-op, and a producer handed to it is stopped.

The exchange is also the :class:`~edgeproxy.http.body.BodySink` of the response
body (``body.start(exchange)``) and the
:class:`~edgeproxy.http.body.BodyOrigin` of its request body.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

from twisted.internet.interfaces import IProtocol, IPushProducer
from twisted.logger import Logger

from edgeproxy.core.context import RequestContext
from edgeproxy.core.framing import (
    LAST_CHUNK,
    BodyFraming,
    BodyKind,
    FramingError,
    RequestFraming,
    chunk,
    fixed_length,
)
from edgeproxy.core.message import Headers, LocalResponse, RequestHead, ResponseHead
from edgeproxy.core.response_framing import UnframedFields, frame_response
from edgeproxy.http.body import BodyStream
from edgeproxy.http.wire import CONTINUE, response_bytes

_log = Logger()


_WAITING = 0  # no response yet
_STREAMING = 1  # head sent, body going out
_FINISHED = 2  # the handler's response is complete
_CLOSED = 3  # the connection is gone or the server ended the exchange

# How the response body goes out.
_NO_BODY = 0
_LENGTH = 1
_CHUNKED = 2
_UNTIL_CLOSE = 3


class ExchangeConnection(typing.Protocol):
    """What an exchange needs of its connection (HTTPServerProtocol)."""

    def write(self, data: bytes) -> None:
        """Write to the client."""

    def http_date(self) -> bytes:
        """The current time as an HTTP-date."""

    def may_persist(self) -> bool:
        """Whether the connection itself has no reason to close after a response."""

    def response_started(
        self, exchange: ServerExchange, producer: IPushProducer | None
    ) -> None:
        """A streamed response began; ``producer`` follows the client's pace."""

    def response_finished(self, exchange: ServerExchange, keep_alive: bool) -> None:
        """The response is complete; close unless ``keep_alive``."""

    def response_aborted(self, exchange: ServerExchange) -> None:
        """The response cannot be completed: drop the connection."""

    def request_body_paused(self, paused: bool) -> None:
        """Pause (or resume) reading for the request body's sake."""

    def protocols_switched(self, protocol: IProtocol) -> None:
        """Hand the connection's bytes to ``protocol`` from now on."""


class ServerExchange:
    """
    One request on a client connection and the means to answer it.

    :ivar request: the request head (filters may change it in place).
    :ivar framing: how the request body is delimited (pass it on to the
        upstream with the body).
    :ivar body: the request body, or ``None`` when it has none.
    :ivar client_host: the address of the peer (before trusted-proxy rules),
        or ``""`` for a non-IP transport.
    :ivar client_port: the peer's port, or 0.
    :ivar received_at: when the head was complete, in reactor seconds.
    :ivar upgrade: whether the request asks to switch protocols (``Upgrade``).
    :ivar request_complete: whether the whole request has been received.
    :ivar on_client_gone: called (once, with no argument) if the client
        disconnects before the response is complete; the handler may set it,
        for example to a ``Deferred``'s ``cancel``.
    :ivar status: the status of the response sent, 0 before one.
    :ivar body_bytes: how many bytes of response body were sent.
    :ivar reason: why the response was made here (a local answer's
        :attr:`~edgeproxy.core.message.LocalResponse.reason`), else ``None``.
    :ivar context: the handler's :class:`RequestContext` (route, consumer,
        notes), for the access log; ``None`` until the handler sets it.
    :ivar on_end: called once with the exchange when it is over (finished,
        dropped or left by the client); the access log's hook.
    """

    __slots__ = (
        "_connection",
        "_continue_pending",
        "_held_head",
        "_keep_alive",
        "_mode",
        "_persists",
        "_remaining",
        "_state",
        "body",
        "body_bytes",
        "client_host",
        "client_port",
        "context",
        "framing",
        "on_client_gone",
        "on_end",
        "reason",
        "received_at",
        "request",
        "request_complete",
        "status",
        "upgrade",
    )

    def __init__(
        self,
        connection: ExchangeConnection,
        request: RequestHead,
        framing: RequestFraming,
        *,
        client_host: str,
        client_port: int,
        received_at: float,
        upgrade: bool,
    ) -> None:
        self._connection = connection
        self.request = request
        self.framing: BodyFraming = framing.body
        self.body: BodyStream | None = None
        self.client_host = client_host
        self.client_port = client_port
        self.received_at = received_at
        self.upgrade = upgrade
        self.request_complete = False
        self.on_client_gone: Callable[[], object] | None = None
        self.on_end: Callable[[ServerExchange], object] | None = None
        self.context: RequestContext | None = None
        self.status = 0
        self.body_bytes = 0
        self.reason: str | None = None
        self._persists = framing.keep_alive
        self._continue_pending = framing.expects_continue
        self._keep_alive = False
        self._state = _WAITING
        self._mode = _NO_BODY
        self._remaining = 0
        # A head that send_response holds back to write with the first piece
        # of its body: one write (one socket send) for a small response.
        self._held_head = b""

    def __repr__(self) -> str:
        request = self.request
        return f"<ServerExchange {request.method!r} {request.target!r}>"

    @property
    def client_persists(self) -> bool:
        """Whether the client asked for the connection to persist."""
        return self._persists

    @property
    def responded(self) -> bool:
        """Whether a response has been started (or the exchange is over)."""
        return self._state != _WAITING

    @property
    def closed(self) -> bool:
        """Whether the exchange is over without the handler completing it."""
        return self._state == _CLOSED

    # --- answering -----------------------------------------------------------

    def send_head(
        self,
        head: ResponseHead,
        framing: BodyFraming,
        producer: IPushProducer | None = None,
    ) -> None:
        """
        Send a final response head; the body follows with :meth:`send_body`.

        :param head: the head, whose framing fields (``Content-Length``,
            ``Transfer-Encoding``, ``Connection``) are rewritten here.
        :param framing: how the body to come is delimited where it comes from
            (the upstream's :attr:`UpstreamResponse.framing`); a body of
            unknown length is chunked to HTTP/1.1 clients and delimited by
            closing the connection to HTTP/1.0 clients.
        :param producer: what produces the body (the upstream's
            :class:`~edgeproxy.http.body.BodyStream`): paused while the
            client's socket is full, stopped if the client goes away.
        """
        data = self._start(head, framing, producer, "send_head", None)
        if data:
            self._connection.write(data)
            self._connection.response_started(self, producer)

    def _start(
        self,
        head: ResponseHead,
        framing: BodyFraming,
        producer: IPushProducer | None,
        what: str,
        unframed: UnframedFields | None,
    ) -> bytes:
        """Frame ``head`` and start streaming; its bytes, or none if refused."""
        if self._state != _WAITING or head.status < 200:
            self._refuse(what, producer)
            return b""
        connection = self._connection
        request = self.request
        sent, self._keep_alive = frame_response(
            head,
            request.method,
            request.version,
            framing,
            keep_alive=self._may_persist(),
            date=connection.http_date(),
            unframed=unframed,
        )
        kind = sent.kind
        if kind is BodyKind.LENGTH:
            self._mode = _LENGTH
            self._remaining = sent.length
        elif kind is BodyKind.CHUNKED:
            self._mode = _CHUNKED
        elif kind is BodyKind.UNTIL_CLOSE:
            self._mode = _UNTIL_CLOSE
        self._state = _STREAMING
        self.status = head.status
        return response_bytes(head)

    def send_body(self, data: bytes) -> None:
        """Send the next piece of the response body."""
        if self._state != _STREAMING:
            if self._state != _CLOSED:
                _log.error(
                    "send_body on {exchange!r} outside a response", exchange=self
                )
            return
        self.body_bytes += len(data)
        mode = self._mode
        if mode == _CHUNKED:
            data = chunk(data)
        elif mode == _LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                _log.error(
                    "response body of {exchange!r} is longer than its "
                    "Content-Length; connection dropped",
                    exchange=self,
                )
                self.abort()
                return
        elif mode != _UNTIL_CLOSE:
            return
        if self._held_head:
            data = self._held_head + data
            self._held_head = b""
        self._connection.write(data)

    def finish(self) -> None:
        """The response is complete."""
        if self._state != _STREAMING:
            if self._state != _CLOSED:
                _log.error("finish on {exchange!r} outside a response", exchange=self)
            return
        if self._mode == _CHUNKED:
            self._connection.write(self._held_head + LAST_CHUNK)
            self._held_head = b""
        elif self._held_head:
            self._connection.write(self._held_head)
            self._held_head = b""
        if self._mode == _LENGTH and self._remaining:
            _log.error(
                "response body of {exchange!r} ended {missing} bytes short of its "
                "Content-Length; connection dropped",
                exchange=self,
                missing=self._remaining,
            )
            self.abort()
            return
        self._end(_FINISHED)
        self._connection.response_finished(self, self._keep_alive)

    def abort(self, reason: Exception | None = None) -> None:
        """Drop the connection: the response cannot be completed."""
        if self._state in (_FINISHED, _CLOSED):
            return
        if reason is not None:
            _log.info(
                "response to {exchange!r} aborted: {reason}",
                exchange=self,
                reason=reason,
            )
        self._end(_CLOSED)
        self._connection.response_aborted(self)

    def send_local(self, response: LocalResponse) -> None:
        """
        Answer with a whole response made here (an error, a redirect...).

        ``Content-Length``, ``Date`` and ``Connection`` are added as needed;
        ``response`` itself is not changed.
        """
        if self._state != _WAITING or response.status < 200:
            self._refuse("send_local", None)
            return
        self.reason = response.reason
        self._write_local(response)
        self._end(_FINISHED)
        self._connection.response_finished(self, self._keep_alive)

    def send_response(
        self,
        head: ResponseHead,
        framing: BodyFraming,
        body: BodyStream | None,
        *,
        unframed: UnframedFields | None = None,
    ) -> None:
        """
        Relay a whole streamed response: the head, then ``body`` as it comes.

        The same as :meth:`send_head` with ``body`` as producer, then
        ``body.start(self)`` (or :meth:`finish` when ``body`` is ``None``),
        except that the head is written together with the first piece of the
        body when the body has one ready.

        :param unframed: the head's fields were stripped of framing fields
            already, and their list is ours to extend
            (:func:`~edgeproxy.core.response_fields.client_response_fields`): only
            the framing fields are added (see
            :func:`~edgeproxy.core.response_framing.frame_response`).
        """
        data = self._start(head, framing, body, "send_response", unframed)
        if not data:
            return
        connection = self._connection
        if body is None:
            connection.write(data)
            connection.response_started(self, None)
            self.finish()
            return
        connection.response_started(self, body)
        self._held_head = data
        body.start(self)
        if self._held_head:
            # Nothing came with the head (or the client is not reading).
            if self._state == _STREAMING:
                connection.write(self._held_head)
            self._held_head = b""

    def switch_protocols(self, head: ResponseHead, protocol: IProtocol) -> None:
        """
        Send a ``101`` head as it is and hand the connection to ``protocol``.

        ``protocol`` gets ``makeConnection`` with the client's transport, then
        every byte received after the request (those already received first).
        Only for a request with ``Upgrade`` (:attr:`upgrade`).
        """
        if self._state != _WAITING or not self.upgrade or head.status != 101:
            self._refuse("switch_protocols", None)
            return
        self.status = head.status
        self._end(_FINISHED)
        self._connection.write(response_bytes(head))
        self._connection.protocols_switched(protocol)

    # --- the request body's origin (called by the BodyStream) ----------------

    def pause_body(self) -> None:
        """Pause reading the client while the request body waits."""
        self._connection.request_body_paused(True)

    def resume_body(self) -> None:
        """Read the client again."""
        self._connection.request_body_paused(False)

    def abandon_body(self) -> None:
        """The rest of the request body is dropped; the connection closes after."""
        self._persists = False

    def body_wanted(self) -> None:
        """Send ``100 Continue`` if the client waits for it and nothing came yet."""
        body = self.body
        if (
            self._continue_pending
            and self._state == _WAITING
            and body is not None
            and body.received == 0
        ):
            self._continue_pending = False
            self._connection.write(CONTINUE)

    # --- the connection's calls ----------------------------------------------

    def fail_request(self, status: int, reason: str) -> None:
        """
        The request cannot be completed (malformed body, too large, too slow).

        Called by the connection: the body fails, and the client gets
        ``status`` if no response has started (the connection is dropped
        otherwise).  The handler's later calls are ignored.
        """
        if self.body is not None:
            self.body.fail(FramingError(reason, status))
        if self._state == _WAITING:
            self._persists = False
            self.reason = reason
            self._write_local(LocalResponse.text(status, reason))
            self._end(_CLOSED)
            self._connection.response_finished(self, False)
        elif self._state == _STREAMING:
            self._end(_CLOSED)
            self._connection.response_aborted(self)

    def client_gone(self) -> None:
        """The connection was lost: end the exchange, tell the handler."""
        if self.body is not None and not self.request_complete:
            self.body.fail(ConnectionError("the client closed the connection"))
        if self._state in (_WAITING, _STREAMING):
            self._state = _CLOSED
            callback = self.on_client_gone
            self.on_client_gone = None
            if callback is not None:
                try:
                    callback()
                except Exception:
                    _log.failure("on_client_gone of {exchange!r} failed", exchange=self)
            self._ended()

    # --- internals -----------------------------------------------------------

    def _end(self, state: int) -> None:
        """The exchange is over (``_FINISHED`` or ``_CLOSED``)."""
        self._state = state
        # on_client_gone can no longer be called; dropping it breaks the cycle
        # handler -> exchange -> bound method -> handler, so both are freed
        # at once by reference counting instead of by the cyclic collector.
        self.on_client_gone = None
        self._ended()

    def _ended(self) -> None:
        on_end = self.on_end
        if on_end is not None:
            self.on_end = None
            try:
                on_end(self)
            except Exception:
                _log.failure("on_end of {exchange!r} failed", exchange=self)

    def _write_local(self, response: LocalResponse) -> None:
        head = ResponseHead(response.status, b"", Headers(response.headers.pairs))
        request = self.request
        sent, self._keep_alive = frame_response(
            head,
            request.method,
            request.version,
            fixed_length(len(response.body)),
            keep_alive=self._may_persist(),
            date=self._connection.http_date(),
        )
        body = response.body if sent.kind is BodyKind.LENGTH else b""
        self.status = response.status
        self.body_bytes = len(body)
        self._connection.write(response_bytes(head, body))

    def _may_persist(self) -> bool:
        return (
            self._persists
            and self.request_complete
            and not self.upgrade
            and self._connection.may_persist()
        )

    def _refuse(self, what: str, producer: IPushProducer | None) -> None:
        if self._state != _CLOSED:
            _log.error(
                "{what} on {exchange!r} ignored: it has its response already, "
                "or this is not a final response (or a 101 to an Upgrade)",
                what=what,
                exchange=self,
            )
        if producer is not None:
            producer.stopProducing()
