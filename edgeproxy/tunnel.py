"""
The splice: two connected transports joined byte for byte, both ways.

One :class:`Tunnel` carries one client connection to one server connection;
the TCP balancer and the WebSocket passthrough both end in one.  It has two
ends, :attr:`Tunnel.client` and :attr:`Tunnel.server`, each a protocol for one
of the connections.  An end is attached with ``end.makeConnection(transport)``,
in either order, and at any time in a connection's life: a connection that
already has a protocol (an HTTP server protocol that just sent ``101``) keeps
it, and that protocol forwards ``dataReceived``, ``readConnectionLost``,
``writeConnectionLost`` and ``connectionLost`` to the end, bytes it had already
read first.  Such a forwarding protocol must provide
``IHalfCloseableProtocol`` too, or Twisted turns a half-close into a full one,
and must have unregistered any producer of its own from the transport.

- **Waiting.** Until both ends are attached, what the attached one delivers
  is kept, and it is paused from its first bytes on (a connection that sends
  nothing meanwhile costs no pause and resume); what it still delivers is
  kept too, up to ``pending_limit`` bytes (more ends the tunnel with
  :attr:`EndReason.OVERFLOW`).  On the second attach the kept bytes go first,
  each to the other side.
- **Flow control.** Each end is registered as the streaming producer of the
  other end's transport, as ``twisted.protocols.portforward`` does: when one
  side's write buffer is full, reading the other side pauses until it drains.
  Nothing else is buffered.
- **Half-close.** A side's FIN becomes ``loseWriteConnection`` on the other
  side (when that transport can half-close; otherwise it is closed), and bytes
  still flow the other way.  When both sides have sent FIN the tunnel ends and
  both connections close.
- **Ends.** A side that closes completely ends the tunnel and the other side
  is closed after its buffered bytes are sent (for at most ``close_timeout``
  seconds); a side that is reset ends it and the other side is aborted.  So do
  ``idle_timeout`` (no byte either way), ``max_lifetime`` and
  :meth:`Tunnel.abort`.
- **Accounting.** Bytes are counted each way; ``on_close`` is called once with
  a :class:`TunnelStats` when the tunnel has ended and every attached
  connection is gone.

On a plain TCP connection an end reads up to :data:`READ_SIZE` bytes at once
(Twisted's 64 KiB default costs a reactor turn per 64 KiB) and writes through:
Twisted's transports only buffer a write and send it on the reactor's next
turn, after watching the socket for writability (two ``epoll_ctl`` calls, a
reactor turn and a producer pause and resume per chunk relayed).  When nothing
is queued in the transport, the bytes go to the socket at once, and only what
the socket does not take is left to the transport, in order.  Connections get
``TCP_NODELAY`` (as nginx's stream module does): a relay must not hold back a
small write waiting for an ACK.
"""

from __future__ import annotations

import contextlib
import enum
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableDescriptor,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.http.transport import StreamTransport
from edgeproxy.write_through import plain_tcp_transport, write_through

DEFAULT_PENDING_LIMIT = 256 * 1024
"""Bytes an end keeps while the other end is not attached yet."""

READ_SIZE = 256 * 1024
"""
Bytes a plain TCP connection of a tunnel reads at once once spliced, and
keeps queued for writing before it pauses the other side.  Measured with
``bench/edgebench/profile_tcp.py``: about 40% less CPU per MiB than Twisted's
64 KiB; 512 KiB or 1 MiB gain nothing more and allocate that much per read.
"""


class EndReason(enum.Enum):
    """Why a tunnel ended."""

    CLOSED = "closed"
    """Both sides finished sending, or one side closed its connection."""
    CLIENT_RESET = "client reset"
    """The client's connection was lost uncleanly (reset, error)."""
    SERVER_RESET = "server reset"
    """The server's connection was lost uncleanly (reset, error)."""
    IDLE_TIMEOUT = "idle timeout"
    MAX_LIFETIME = "max lifetime"
    OVERFLOW = "buffer overflow"
    """An end received more than ``pending_limit`` bytes before the splice."""
    STOPPED = "stopped"
    """Its owner called :meth:`Tunnel.close` or :meth:`Tunnel.abort`."""


@dataclass(frozen=True, slots=True)
class TunnelStats:
    """
    What one tunnel carried, for stats and accounting.

    :ivar client_to_server: bytes relayed from the client to the server.
    :ivar server_to_client: bytes relayed from the server to the client.
    :ivar reason: why it ended.
    :ivar duration: seconds from the splice (both ends attached) to the end;
        0 if both ends were never attached.
    """

    client_to_server: int
    server_to_client: int
    reason: EndReason
    duration: float


class _HalfCloseable(typing.Protocol):
    def loseWriteConnection(self) -> None: ...


class Tunnel:
    """
    A splice between a client connection and a server connection.

    :param reactor: for the clock and the timers.
    :param idle_timeout: seconds without a byte either way before both
        connections are aborted; ``None`` for no limit.
    :param max_lifetime: seconds from the splice before both connections are
        aborted; ``None`` for no limit.
    :param on_close: called once with the tunnel's :class:`TunnelStats`.
    :param pending_limit: bytes an end keeps before the splice.
    :param close_timeout: seconds a closing connection may take to send what
        it has buffered before it is aborted.
    :ivar client: the end for the client's connection.
    :ivar server: the end for the server's connection.
    :ivar reason: why the tunnel ended, or ``None`` while it lasts.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        idle_timeout: float | None,
        max_lifetime: float | None = None,
        on_close: Callable[[TunnelStats], None] | None = None,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
        close_timeout: float = 30.0,
    ) -> None:
        self._reactor = reactor
        self._seconds = reactor.seconds
        self._idle_timeout = idle_timeout
        self._max_lifetime = max_lifetime
        self._on_close = on_close
        self._pending_limit = pending_limit
        self._close_timeout = close_timeout
        self.client = TunnelEnd(self)
        self.server = TunnelEnd(self)
        self.client.peer = self.server
        self.server.peer = self.client
        self.reason: EndReason | None = None
        self._spliced_at: float | None = None
        self._ended_at = 0.0
        self._last_activity = 0.0
        self._idle_call: IDelayedCall | None = None
        self._lifetime_call: IDelayedCall | None = None
        self._close_call: IDelayedCall | None = None
        self._reported = False

    def __repr__(self) -> str:
        state = "open" if self.reason is None else self.reason.value
        return (
            f"<Tunnel {state} client_to_server={self.client_to_server} "
            f"server_to_client={self.server_to_client}>"
        )

    @property
    def client_to_server(self) -> int:
        """Bytes relayed from the client to the server so far."""
        return self.client.relayed

    @property
    def server_to_client(self) -> int:
        """Bytes relayed from the server to the client so far."""
        return self.server.relayed

    @property
    def spliced(self) -> bool:
        """Whether both ends have been attached (bytes flow)."""
        return self._spliced_at is not None

    def close(self) -> None:
        """End the tunnel; close both connections after their buffered bytes."""
        self._end(EndReason.STOPPED, abort=False)

    def abort(self) -> None:
        """End the tunnel; abort both connections at once."""
        self._end(EndReason.STOPPED, abort=True)

    # --- what the ends tell the tunnel -----------------------------------------------

    def _attached(self, end: TunnelEnd) -> None:
        if self.reason is not None:
            end._close(abort=True)
        elif end.peer.attached:
            self._splice()

    def _splice(self) -> None:
        now = self._reactor.seconds()
        self._spliced_at = self._last_activity = now
        ends = (self.client, self.server)
        for end in ends:
            end._receive_from_peer()
        for end in ends:
            end._flush_pending()
        for end in ends:
            end._waiting = False
            end._apply_pause()
        if self._idle_timeout:
            self._idle_call = self._reactor.callLater(
                self._idle_timeout, self._check_idle
            )
        if self._max_lifetime:
            self._lifetime_call = self._reactor.callLater(
                self._max_lifetime, self._end, EndReason.MAX_LIFETIME, True
            )
        for end in ends:
            if end.read_closed:
                self._read_closed(end)

    def _check_idle(self) -> None:
        assert self._idle_timeout is not None
        idle_for = self._seconds() - self._last_activity
        if idle_for >= self._idle_timeout:
            self._end(EndReason.IDLE_TIMEOUT, abort=True)
            return
        self._idle_call = self._reactor.callLater(
            self._idle_timeout - idle_for, self._check_idle
        )

    def _read_closed(self, end: TunnelEnd) -> None:
        """``end``'s side sent FIN: pass it on; end when both sides have."""
        if self.reason is not None or not self.spliced:
            return
        if end.peer.read_closed:
            # Both sides are done sending (and all they sent was read): the
            # close below sends the last FIN after the buffered bytes, with
            # no half-close first.
            self._end(EndReason.CLOSED, abort=False)
        else:
            end.peer._close_write()

    def _lost(self, end: TunnelEnd, reason: Failure) -> None:
        if self.reason is None:
            if reason.check(ConnectionDone):
                self._end(EndReason.CLOSED, abort=False)
            elif end is self.client:
                self._end(EndReason.CLIENT_RESET, abort=True)
            else:
                self._end(EndReason.SERVER_RESET, abort=True)
        self._report_when_gone()

    def _overflow(self) -> None:
        self._end(EndReason.OVERFLOW, abort=True)

    # --- the end ---------------------------------------------------------------------

    def _end(self, reason: EndReason, abort: bool) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self._ended_at = self._reactor.seconds()
        self._cancel_timers()
        self.client._close(abort)
        self.server._close(abort)
        self._report_when_gone()
        if not abort and not self._reported:
            # Some connection is still sending what it has buffered.
            self._close_call = self._reactor.callLater(
                self._close_timeout, self._abort_stragglers
            )

    def _cancel_timers(self) -> None:
        for timer in (self._idle_call, self._lifetime_call, self._close_call):
            if timer is not None and timer.active():
                timer.cancel()
        self._idle_call = self._lifetime_call = self._close_call = None

    def _abort_stragglers(self) -> None:
        """A graceful close took too long (a peer that reads nothing): abort."""
        for end in (self.client, self.server):
            end._abort_if_open()

    def _report_when_gone(self) -> None:
        if self._reported or self.reason is None:
            return
        client, server = self.client, self.server
        if (client.attached and not client.lost) or (
            server.attached and not server.lost
        ):
            return
        self._reported = True
        self._cancel_timers()
        if self._on_close is not None:
            spliced_at = self._spliced_at
            self._on_close(
                TunnelStats(
                    client_to_server=self.client_to_server,
                    server_to_client=self.server_to_client,
                    reason=self.reason,
                    duration=0.0 if spliced_at is None else self._ended_at - spliced_at,
                )
            )


@implementer(IHalfCloseableProtocol, IPushProducer)
class TunnelEnd(Protocol):
    """
    One side of a :class:`Tunnel`: the protocol of one of its connections.

    As a producer it is registered on the other side's transport, which
    pauses it (stops reading this side) while its write buffer is full.

    :ivar peer: the other end.
    :ivar relayed: bytes received on this side and written to the other.
    :ivar read_closed: whether this side has sent FIN.
    :ivar lost: whether this side's connection is gone.
    """

    peer: TunnelEnd

    def __init__(self, tunnel: Tunnel) -> None:
        self._tunnel = tunnel
        self._stream: StreamTransport | None = None
        # The transport to write through, when it is a plain TCP connection.
        self._direct: Any = None
        self.relayed = 0
        self.read_closed = False
        self.lost = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        # Reading is paused while either holds; _reading_paused is what the
        # transport was last told.
        self._waiting = True
        self._throttled = False
        self._reading_paused = False
        self._closing = False
        self._producer_registered = False

    @property
    def attached(self) -> bool:
        """Whether a connection has been attached to this end."""
        return self._stream is not None

    # --- IProtocol -------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Attach this end's connection; splice if the other end is attached."""
        self._stream = cast(StreamTransport, self.transport)
        direct = plain_tcp_transport(self.transport)
        if direct is not None:
            with contextlib.suppress(OSError):  # reset already: its reader finds out
                direct.setTcpNoDelay(True)
            self._direct = direct
        self._tunnel._attached(self)

    def dataReceived(self, data: bytes) -> None:
        """Relay ``data`` to the other side (or keep it until the splice)."""
        tunnel = self._tunnel
        if tunnel.reason is not None or self._closing:
            return
        if tunnel._spliced_at is not None:
            # Only a timestamp per chunk: the idle timer re-checks it lazily.
            tunnel._last_activity = tunnel._seconds()
            self.relayed += len(data)
            self.peer._write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > tunnel._pending_limit:
            tunnel._overflow()
        else:
            self._apply_pause()

    def readConnectionLost(self) -> None:
        """This side sent FIN: half-close the other side's writing."""
        self.read_closed = True
        self._tunnel._read_closed(self)

    def writeConnectionLost(self) -> None:
        """The half-close passed on to this side is complete."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """This side's connection is gone: the tunnel ends if it has not."""
        self.lost = True
        self._closing = True
        self._tunnel._lost(self, reason)

    # --- IPushProducer (for the other side's transport) ------------------------------

    def pauseProducing(self) -> None:
        """The other side's write buffer is full: stop reading this side."""
        self._throttled = True
        self._apply_pause()

    def resumeProducing(self) -> None:
        """The other side's write buffer drained: read this side again."""
        self._throttled = False
        self._apply_pause()

    def stopProducing(self) -> None:
        """The other side's connection is gone (its end ends the tunnel)."""

    # --- what the tunnel asks of an end ----------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._stream is None or self._closing:
            return
        if self._direct is not None:
            data = write_through(self._direct, data)
            if not data:
                return
        self._stream.write(data)

    def _receive_from_peer(self) -> None:
        assert self._stream is not None
        if self._direct is not None:
            # Large reads from the splice on; until then, no more than
            # Twisted's 64 KiB is read before the pause.
            self._direct.bufferSize = READ_SIZE
        self._stream.registerProducer(self.peer, True)
        self._producer_registered = True

    def _flush_pending(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            self.relayed += len(data)
            self.peer._write(data)

    def _apply_pause(self) -> None:
        stream = self._stream
        if stream is None or self._closing or self.read_closed:
            return
        paused = self._waiting or self._throttled
        if paused != self._reading_paused:
            self._reading_paused = paused
            if paused:
                stream.pauseProducing()
            else:
                stream.resumeProducing()

    def _unregister_producer(self) -> None:
        if self._producer_registered and self._stream is not None:
            self._producer_registered = False
            self._stream.unregisterProducer()

    def _close_write(self) -> None:
        """The other side finished sending: send FIN here, after the buffer."""
        stream = self._stream
        if stream is None or self._closing:
            return
        # The other side produces nothing more for this transport; a producer
        # left registered would hold back the FIN.
        self._unregister_producer()
        if IHalfCloseableDescriptor.providedBy(stream):
            cast(_HalfCloseable, stream).loseWriteConnection()
        else:
            self._close(abort=False)

    def _close(self, abort: bool) -> None:
        stream = self._stream
        if stream is None or self._closing:
            return
        self._closing = True
        # A transport with a producer registered never finishes closing.
        self._unregister_producer()
        if abort:
            stream.abortConnection()
        else:
            stream.loseConnection()

    def _abort_if_open(self) -> None:
        if self._stream is not None and not self.lost:
            self._stream.abortConnection()
