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
from dataclasses import dataclass
from typing import cast

import httptools
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IProtocol, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.framing import BodyKind, FramingError, inspect_request
from edgeproxy.core.message import Headers, LocalResponse, RequestHead
from edgeproxy.http.body import BodyStream
from edgeproxy.http.deadline import Deadline
from edgeproxy.http.message_reader import MessageError, MessageReader
from edgeproxy.http.server_exchange import ServerExchange, StreamTransport

_log = Logger()

_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
_FORWARDED_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """
    Limits and timeouts of one HTTP listener (defaults in the spirit of nginx).

    :ivar max_head_size: bytes of request line and fields (431 beyond).
    :ivar max_field_count: header fields (431 beyond).
    :ivar max_target_length: bytes of the request target (414 beyond).
    :ivar max_body_size: bytes of a request body (413 beyond); 0 for no limit.
    :ivar head_timeout: seconds for a head to arrive (408).
    :ivar body_timeout: seconds a request body may pause (408).
    :ivar keep_alive_timeout: seconds an idle connection is kept.
    :ivar send_timeout: seconds a client may leave its socket full.
    :ivar body_buffer_size: bytes of request body kept while nobody reads
        it, before the client is paused.
    """

    max_head_size: int = 16 * 1024
    max_field_count: int = 100
    max_target_length: int = 8 * 1024
    max_body_size: int = 1024 * 1024
    head_timeout: float = 60.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 75.0
    send_timeout: float = 60.0
    body_buffer_size: int = 64 * 1024


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


@implementer(IPushProducer)
class HTTPServerProtocol(Protocol):
    """
    One client connection speaking HTTP/1.0 or 1.1.

    The protocol is its transport's producer: when the client's socket is
    full, the transport pauses it and it pauses the producer of the response
    being sent (see :meth:`ServerExchange.send_head`).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        handler: RequestHandler,
        settings: ServerSettings | None = None,
    ) -> None:
        self._reactor = reactor
        self._handler = handler
        self._settings = settings = settings or ServerSettings()
        self._reader = MessageReader(
            httptools.HttpRequestParser,
            _nothing,
            self._head_received,
            self._body_received,
            self._message_complete,
            max_head_size=settings.max_head_size,
            max_field_count=settings.max_field_count,
            max_target_length=settings.max_target_length,
        )
        self._stream: StreamTransport | None = None
        self._queue: deque[ServerExchange] = deque()
        self._active: ServerExchange | None = None
        self._receiving: ServerExchange | None = None
        self._pending_error: MessageError | None = None
        self._parsing = True
        self._closing = False
        self._dispatching = False
        self._held: list[bytes] = []
        self._held_size = 0
        self._tunnel: IProtocol | None = None
        self._body_pauses = 0
        self._reading_paused = False
        self._writing_paused = False
        self._producer: IPushProducer | None = None
        self._deadline: Deadline[_Timer] = Deadline(reactor, self._timed_out)
        self._send_deadline: Deadline[_Timer] = Deadline(reactor, self._timed_out)
        self._served = 0
        self._client_host = ""
        self._client_port = 0

    # --- Twisted's side --------------------------------------------------------

    def connectionMade(self) -> None:
        """Start the head timer and become the transport's producer."""
        stream = self._stream = cast(StreamTransport, self.transport)
        peer: IAddress = stream.getPeer()
        if isinstance(peer, IPv4Address | IPv6Address):
            self._client_host, self._client_port = peer.host, peer.port
        stream.registerProducer(self, True)
        self._update_timer()

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
                "request parsing failed unexpectedly",
                Failure(error.__context__ or error),
            )
            self._reject(MessageError(500, "internal error"))
        except httptools.HttpParserError as error:
            self._reject(MessageError(400, f"malformed request: {error}"))
        self._dispatch()

    def connectionLost(self, reason: Failure = _nothing_failure()) -> None:  # type: ignore[has-type]
        """Fail what is in progress; forget what was waiting."""
