"""
The transport side shared by both HTTP protocols: flow control and hand-over.

:class:`FlowControlledProtocol` registers itself as its transport's producer
and passes the transport's pause, resume and stop on to whatever produces the
bytes being written (the portforward pattern); pauses its own reading when its
subclass says so; and can hand the connection over to another protocol (a
WebSocket tunnel) together with the bytes it read ahead.

On a plain TCP connection it also writes through
(:mod:`edgeproxy.write_through`; Twisted's own write path was measured as a
fifth of a proxied request's calls).  The connection then gets
``TCP_NODELAY``, as nginx's keep-alive connections do, so that a second small
write is never held back waiting for an ACK.
"""

from __future__ import annotations

import typing
from typing import Any, cast

from twisted.internet.interfaces import IAddress, IProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from edgeproxy.write_through import plain_tcp_transport, write_through


class StreamTransport(typing.Protocol):
    """
    A connected stream transport (TCP, TLS, UNIX) seen as one object.

    Twisted spreads these over ``ITransport``, ``ITCPTransport``,
    ``IConsumer`` and ``IPushProducer``; every stream transport has them all.
    """

    def write(self, data: bytes) -> None:
        """Send bytes."""

    def loseConnection(self) -> None:
        """Close once everything written has been sent."""

    def abortConnection(self) -> None:
        """Close now, dropping what is not sent yet."""

    def getPeer(self) -> IAddress:
        """The remote address."""

    def pauseProducing(self) -> None:
        """Stop reading."""

    def resumeProducing(self) -> None:
        """Read again."""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        """Have ``producer`` paused while the write buffer is full."""

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""


@implementer(IPushProducer)
class FlowControlledProtocol(Protocol):
    """
    A protocol that relays its transport's back-pressure and can step aside.

    The ``IPushProducer`` methods are the transport's calls: its write buffer
    filled, drained, or the connection is going.  Subclasses set the producer
    to relay them to with :meth:`_follow`, pause reading with
    :meth:`_pause_reading`, set ``_closing`` once they close (the transport is
    left alone from then on), and forward to ``_tunnel`` once set.
    """

    def __init__(self) -> None:
        self._stream: StreamTransport | None = None
        self._producer: IPushProducer | None = None
        self._writing_paused = False
        self._reading_paused = False
        self._closing = False
        self._tunnel: IProtocol | None = None
        # The transport to write through, when it is a plain TCP connection.
        self._direct: Any = None

    def connectionMade(self) -> None:
        """Become the transport's producer; write through on plain TCP."""
        self._stream = cast(StreamTransport, self.transport)
        self._stream.registerProducer(self, True)
        direct = plain_tcp_transport(self.transport)
        if direct is not None:
            direct.setTcpNoDelay(True)
            self._direct = direct

    def pauseProducing(self) -> None:
        """The peer's socket is full: pause what produces our writes."""
        self._writing_paused = True
        if self._producer is not None:
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The peer's socket drained: resume what produces our writes."""
        self._writing_paused = False
        if self._producer is not None:
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        """The connection is going: stop what produces our writes."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    def write(self, data: bytes) -> None:
        """Write to the peer (nothing once the connection is lost)."""
        direct = self._direct
        if direct is not None:
            data = write_through(direct, data)
            if not data:
                return
        if self._stream is not None:
            self._stream.write(data)

    def _follow(self, producer: IPushProducer | None) -> None:
        """Relay back-pressure to ``producer`` (paused at once if need be)."""
        self._producer = producer
        if producer is not None and self._writing_paused:
            producer.pauseProducing()

    def _pause_reading(self, paused: bool) -> None:
        if paused == self._reading_paused or self._stream is None or self._closing:
            return
        self._reading_paused = paused
        if paused:
            self._stream.pauseProducing()
        else:
            self._stream.resumeProducing()

    def _hand_over(self, protocol: IProtocol, held: bytes) -> None:
        """Give the connection to ``protocol``, the bytes read ahead first."""
        if self.transport is None or self._stream is None:
            return
        self._producer = None
        self._tunnel = protocol
        self._stream.unregisterProducer()
        self._pause_reading(False)
        protocol.makeConnection(self.transport)
        if held:
            protocol.dataReceived(held)
