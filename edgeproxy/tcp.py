"""
The TCP (L4) listener: ``protocol = tcp`` balances connections over an upstream.

For each accepted connection :class:`TCPListenerFactory` reads the current
snapshot once, then:

1. refuses the connection at once when the listener is at ``max_connections``;
2. with ``accept_proxy_protocol``, reads and strips the PROXY header (v1 or v2,
   bounded in size and in time: ``proxy_protocol_timeout``), whose source is
   then the client's address;
3. refuses a client that ``deny`` lists or ``allow`` does not (deny wins; an
   empty ``allow`` allows all), or whose address is at
   ``max_connections_per_ip``;
4. picks a server from the listener's upstream pool and connects to it (at
   most ``connect_timeout``); a failed connect counts against the server
   (passive health) and the next server is tried, each server at most once;
   with no server left, the client is closed.  Meanwhile the client is paused
   and what it sent waits in the tunnel (bounded);
5. sends the PROXY header (``send_proxy_protocol``) to the server, then
   splices the two connections with :class:`~edgeproxy.tunnel.Tunnel`
   (``idle_timeout``).

The server's connection counts as a request in flight on the pool from the
connect until the tunnel ends; its latency is the connect time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTCP,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.access_log.record import SessionRecord
from edgeproxy.access_log.sink import AccessLog
from edgeproxy.core.addresses import AddressSet, parse_address
from edgeproxy.core.context import RequestContext
from edgeproxy.core.proxy_protocol import (
    ProxyProtocolError,
    SocketAddress,
    build_v1,
    build_v2,
    parse_proxy_header,
)
from edgeproxy.errors import NoServerAvailable
from edgeproxy.snapshot import SnapshotHolder
from edgeproxy.tunnel import Tunnel, TunnelEnd, TunnelStats
from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import UpstreamServer
from edgeproxy.upstream.server_list import format_address

_log = Logger()

_PROXY_HEADER_BUILDERS = {"v1": build_v1, "v2": build_v2}

# Client addresses repeat (a few load balancers, clients reconnecting), and
# parsing one costs more than the rest of admission: recent answers are
# remembered, and simply forgotten when there are this many.
_HOST_MEMO_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class TCPListenerSettings:
    """
    The settings of one ``protocol = tcp`` listener (keys of ``[listener:NAME]``).

    :ivar accept_proxy_protocol: whether clients start with a PROXY header
        (v1 or v2), whose source address is then the client's address;
        connections without a valid header are closed.
    :ivar send_proxy_protocol: ``"v1"`` or ``"v2"`` to send servers a PROXY
        header with the client's address; ``None`` to send none.
    :ivar max_connections: client connections open at once; 0 for no cap.
    :ivar max_connections_per_ip: client connections open at once from one
        address; 0 for no cap.
    :ivar allow: addresses and CIDR networks allowed; empty allows all.
    :ivar deny: addresses and CIDR networks refused (deny wins over allow).
    :ivar connect_timeout: seconds to connect to a server before trying the
        next one.
    :ivar idle_timeout: seconds without a byte either way before both
        connections are dropped; 0 for no limit.
    :ivar proxy_protocol_timeout: seconds for the PROXY header to arrive.
    """

    accept_proxy_protocol: bool = False
    send_proxy_protocol: str | None = None
    max_connections: int = 0
    max_connections_per_ip: int = 0
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    idle_timeout: float = 3600.0
    proxy_protocol_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.send_proxy_protocol not in (None, *_PROXY_HEADER_BUILDERS):
            raise ValueError(
                f"send_proxy_protocol is {self.send_proxy_protocol!r}, not v1 or v2"
            )
        if min(self.max_connections, self.max_connections_per_ip) < 0:
            raise ValueError("connection caps must be 0 or more")
        if min(self.connect_timeout, self.proxy_protocol_timeout) <= 0:
            raise ValueError("connect and PROXY header timeouts must be more than 0")
        if self.idle_timeout < 0:
            raise ValueError("idle_timeout must be 0 or more")


class TCPListenerFactory(Factory):
    """
    The protocol factory of one ``protocol = tcp`` listener.

    :param holder: the holder of the running configuration; read once per
        connection.
    :param listener_name: the listener's name (``[listener:NAME]``).
    :param settings: its settings.
    :param reactor: connects to servers and keeps time.
    :param access_log: gets a record of each connection when it closes.
    :raises ValueError: if ``allow`` or ``deny`` has an entry that is not an
        address or CIDR network.
    :ivar open_connections: client connections open now (those refused for
        ``max_connections`` aside).
    """

    noisy = False

    def __init__(
        self,
        holder: SnapshotHolder,
        listener_name: str,
        settings: TCPListenerSettings,
        reactor: IReactorTCP,
        counts: ConnectionCounts | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.holder = holder
        self.access_log = access_log
        self.listener_name = listener_name
        self.settings = settings
        self.reactor = reactor
        self.clock = IReactorTime(reactor)
        self.allow = AddressSet(settings.allow)
        self.deny = AddressSet(settings.deny)
        self.counts = counts if counts is not None else ConnectionCounts()
        self._hosts: dict[str, str] = {}

    @property
    def open_connections(self) -> int:
        """Client connections open now on this listener."""
        return self.counts.open

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """A protocol for one accepted client connection."""
        return _ClientConnection(self)

    def _host_of(self, address: str) -> str:
        """The canonical form of a client address (IPv4-mapped IPv6 unmapped)."""
        hosts = self._hosts
        host = hosts.get(address)
        if host is None:
            parsed = parse_address(address)
            host = address if parsed is None else str(parsed)
            if len(hosts) >= _HOST_MEMO_LIMIT:
                hosts.clear()
            hosts[address] = host
        return host

    def _admits(self, host: str) -> str | None:
        """Why a client at ``host`` is refused, or ``None``; counts it when not."""
        if self.deny.contains(host) or (self.allow and not self.allow.contains(host)):
            return "denied by allow/deny"
        cap = self.settings.max_connections_per_ip
        per_address = self.counts.per_address
        count = per_address.get(host, 0)
        if cap and count >= cap:
            return f"{count} connections from this address (max_connections_per_ip)"
        per_address[host] = count + 1
        return None

    def _release(self, host: str) -> None:
        per_address = self.counts.per_address
        count = per_address.pop(host) - 1
        if count:
            per_address[host] = count


@dataclass
class ConnectionCounts:
    """
    The connections open on one listening socket, kept across reloads.

    :ivar open: client connections open now.
    :ivar per_address: client connections open now, by client address.
    """

    open: int = 0
    per_address: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class _Attempt:
    """One connect to one server."""

    server: UpstreamServer
    started: float
    connector: IConnector | None = None
    elapsed: float = 0.0


@implementer(IHalfCloseableProtocol)
class _ClientConnection(Protocol):
    """One client connection: admission, PROXY header, connect, then the tunnel."""

    def __init__(self, factory: TCPListenerFactory) -> None:
        self._factory = factory
        self._settings = factory.settings
        self._clock = factory.clock
        self._pool: UpstreamPool | None = None
        self._header: bytes | None = None
        self._header_timer: IDelayedCall | None = None
        self._client: SocketAddress | None = None
        self._local: SocketAddress | None = None
        self._counted_open = False
        self._counted_host: str | None = None
        self._host = ""
        self._tunnel: Tunnel | None = None
        self._tried: frozenset[str] = frozenset()
        self._attempt: _Attempt | None = None
        self._connected: _Attempt | None = None
        self._accepted = 0.0
        self._failure: str | None = None

    def connectionMade(self) -> None:
        """Refuse or admit the client; wait for its PROXY header if need be."""
        factory = self._factory
        transport = self._transport
        self._accepted = self._clock.seconds()
        self._client = _socket_address(transport.getPeer())
        if self._settings.send_proxy_protocol is not None:
            # Only a PROXY header sends the local address: skip the syscall.
            self._local = _socket_address(transport.getHost())
        cap = self._settings.max_connections
        if cap and factory.open_connections >= cap:
            self._refuse(f"{cap} connections are open (max_connections)")
            return
        factory.counts.open += 1
        self._counted_open = True
        snapshot = factory.holder.current
        listener = snapshot.config.listeners.get(factory.listener_name)
        upstream = listener.upstream if listener is not None else None
        self._pool = snapshot.pools.get(upstream) if upstream is not None else None
        if self._pool is None:
            _log.warn(
                "tcp listener {listener}: no upstream pool is configured",
                listener=factory.listener_name,
            )
            transport.loseConnection()
            return
        if self._settings.accept_proxy_protocol:
            self._header = b""
            self._header_timer = self._clock.callLater(
                self._settings.proxy_protocol_timeout,
                self._refuse,
                "no complete PROXY header in time",
            )
            return
        self._admit(b"")

    @property
    def _transport(self) -> ITransport:
        assert self.transport is not None
        return self.transport

    def dataReceived(self, data: bytes) -> None:
        """Pass bytes to the tunnel, or read the PROXY header from them."""
        if self._tunnel is not None:
            self._tunnel.client.dataReceived(data)
        elif self._header is not None:
            self._header_received(self._header + data)

    def _header_received(self, data: bytes) -> None:
        try:
            header = parse_proxy_header(data)
        except ProxyProtocolError as error:
            self._refuse(str(error))
            return
        if header is None:
            self._header = data
            return
        self._header = None
        self._cancel_header_timer()
        if header.command == "PROXY" and header.source is not None:
            self._client = header.source
            self._local = header.destination
        self._admit(data[header.size :])

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None and self._header_timer.active():
            self._header_timer.cancel()
        self._header_timer = None

    def _refuse(self, reason: str) -> None:
        self._header = None
        self._cancel_header_timer()
        _log.info(
            "tcp listener {listener}: refused {client}: {reason}",
            listener=self._factory.listener_name,
            client=_format(self._client),
            reason=reason,
        )
        self._log_session(None, 0, 0, f"refused: {reason}")
        self._transport.loseConnection()

    def _log_session(
        self, upstream: str | None, bytes_in: int, bytes_out: int, end: str
    ) -> None:
        access_log = self._factory.access_log
        if access_log is None or not access_log.enabled:
            return
        now = self._clock.seconds()
        client = self._client
        record = SessionRecord(
            client=self._client_host(),
            client_port=client[1] if client is not None else 0,
            listener=self._factory.listener_name,
            upstream=upstream,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration=max(0.0, now - self._accepted),
            end=end,
        )
        access_log.log(record, now)

    def _admit(self, first_bytes: bytes) -> None:
        host = self._client_host()
        refusal = self._factory._admits(host)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._counted_host = self._host = host
        idle_timeout = self._settings.idle_timeout or None
        tunnel = Tunnel(self._clock, idle_timeout=idle_timeout, on_close=self._closed)
        self._tunnel = tunnel
        tunnel.client.makeConnection(self._transport)
        if first_bytes:
            tunnel.client.dataReceived(first_bytes)
        self._connect_next()

    def _client_host(self) -> str:
        client = self._client
        return "" if client is None else self._factory._host_of(client[0])

    # --- connecting ---------------------------------------------------------------

    def _connect_next(self) -> None:
        assert self._pool is not None and self._tunnel is not None
        if self._tunnel.reason is not None:
            return
        pool = self._pool
        now = self._clock.seconds()
        port = self._client[1] if self._client is not None else 0
        context = RequestContext(self._host, port, started=now)
        try:
            server = pool.pick(context, now, self._tried)
        except NoServerAvailable as error:
            _log.warn(
                "tcp listener {listener}: closing {client}: {reason}",
                listener=self._factory.listener_name,
                client=_format(self._client),
                reason=str(error),
            )
            self._failure = "no server available"
            self._tunnel.close()
            return
        pool.started(server, now)
        attempt = _Attempt(server, now)
        self._attempt = attempt
        attempt.connector = self._factory.reactor.connectTCP(
            server.host,
            server.port,
            _UpstreamFactory(self, attempt),
            timeout=self._settings.connect_timeout,
            bindAddress=None,
        )

    def _server_connected(
        self, attempt: _Attempt, transport: ITransport
    ) -> TunnelEnd | None:
        """The server accepted: the end to attach it to, or ``None`` if too late."""
        if attempt is not self._attempt or self._tunnel is None:
            return None
        # If the tunnel ended meanwhile, it aborts the connection on attach
        # and settles the accounting once it is gone.
        self._attempt = None
        self._connected = attempt
        attempt.elapsed = self._clock.seconds() - attempt.started
        version = self._settings.send_proxy_protocol
        if version is not None:
            transport.write(_PROXY_HEADER_BUILDERS[version](self._client, self._local))
        return self._tunnel.server

    def _connect_failed(self, attempt: _Attempt, reason: Failure) -> None:
        if attempt is not self._attempt:
            return
        assert self._pool is not None
        self._attempt = None
        now = self._clock.seconds()
        server = attempt.server
        self._pool.finished(server, now, now - attempt.started, failed=True)
        self._tried |= {server.key}
        _log.warn(
            "tcp listener {listener}: connect to {server} for {client} failed: "
            "{reason}",
            listener=self._factory.listener_name,
            server=server.key,
            client=_format(self._client),
            reason=reason.getErrorMessage(),
        )
        self._connect_next()

    def _closed(self, stats: TunnelStats) -> None:
        """The tunnel ended: settle the pool's accounting."""
        assert self._pool is not None
        now = self._clock.seconds()
        attempt = self._attempt
        if attempt is not None:
            # The client left while we were connecting: not the server's fault.
            self._attempt = None
            if attempt.connector is not None:
                attempt.connector.disconnect()
            self._pool.finished(attempt.server, now, now - attempt.started, False)
        connected = self._connected
        if connected is not None:
            self._connected = None
            # Passive health counts failed connects only (as nginx's stream
            # module does): a session the server ended, even by a reset, was
            # served.
            self._pool.finished(connected.server, now, connected.elapsed, False)
        self._log_session(
            connected.server.key if connected is not None else None,
            stats.client_to_server,
            stats.server_to_client,
            self._failure or stats.reason.value,
        )

    # --- the rest of IProtocol / IHalfCloseableProtocol ----------------------------

    def readConnectionLost(self) -> None:
        """The client sent FIN: pass it on, or give up on a missing header."""
        if self._tunnel is not None:
            self._tunnel.client.readConnectionLost()
        elif self._header is not None:
            self._refuse("the client closed before its PROXY header was complete")

    def writeConnectionLost(self) -> None:
        """The client's half-close is complete."""
        if self._tunnel is not None:
            self._tunnel.client.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The client is gone: release its counts and end the tunnel."""
        self._header = None
        self._cancel_header_timer()
        if self._counted_open:
            self._counted_open = False
            self._factory.counts.open -= 1
        if self._counted_host is not None:
            self._factory._release(self._counted_host)
            self._counted_host = None
        if self._tunnel is not None:
            self._tunnel.client.connectionLost(reason)


class _UpstreamFactory(ClientFactory):
    """Connects one attempt; reports its outcome to the client connection."""

    noisy = False

    def __init__(self, owner: _ClientConnection, attempt: _Attempt) -> None:
        self._owner = owner
        self._attempt = attempt

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """The protocol of the server connection."""
        return _ServerConnection(self._owner, self._attempt)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """The connect failed or timed out."""
        self._owner._connect_failed(self._attempt, reason)


@implementer(IHalfCloseableProtocol)
class _ServerConnection(Protocol):
    """A server connection: becomes the tunnel's server end once connected."""

    def __init__(self, owner: _ClientConnection, attempt: _Attempt) -> None:
        self._owner = owner
        self._attempt = attempt
        self._end: TunnelEnd | None = None

    def connectionMade(self) -> None:
        """Join the tunnel, or drop a connection that came too late."""
        assert self.transport is not None
        end = self._owner._server_connected(self._attempt, self.transport)
        if end is None:
            self.transport.loseConnection()
            return
        self._end = end
        end.makeConnection(self.transport)
        if getattr(self.transport, "protocol", None) is self:
            # Twisted's own transports call their ``protocol``: the end takes
            # its place, and the calls below are left for other transports.
            cast(Any, self.transport).protocol = end

    def dataReceived(self, data: bytes) -> None:
        """Relay the server's bytes."""
        if self._end is not None:
            self._end.dataReceived(data)

    def readConnectionLost(self) -> None:
        """The server sent FIN."""
        if self._end is not None:
            self._end.readConnectionLost()

    def writeConnectionLost(self) -> None:
        """The half-close passed to the server is complete."""
        if self._end is not None:
            self._end.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The server connection is gone."""
        if self._end is not None:
            self._end.connectionLost(reason)


def _socket_address(address: IAddress) -> SocketAddress | None:
    """``(host, port)`` of an IP address; ``None`` for others (UNIX sockets)."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if isinstance(host, str) and isinstance(port, int):
        return (host, port)
    return None


def _format(address: SocketAddress | None) -> str:
    return "-" if address is None else format_address(*address)
