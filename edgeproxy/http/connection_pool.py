"""
Keep-alive connections to upstream servers, reused across requests.

One :class:`ConnectionPool` serves every upstream of a process; idle
connections are kept per server key, most recently used first, up to the
upstream's ``keepalive`` count, each closed after ``keepalive_timeout``.

Handing out and taking back a connection happens on every proxied request, so
both are kept to a few operations: an idle connection is handed over without
a ``Deferred`` (:meth:`ConnectionPool.take_idle`), the idle lists are found
without hashing the settings (by their identity, after a first look-up by
equality), and expiry costs no timer per request: idle connections note when
they went idle, and one sweep timer for the whole pool closes the ones past
their ``keepalive_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL
from twisted.internet import error as internet_error
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IConnector,
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import ClientFactory, Factory
from twisted.internet.ssl import Certificate, CertificateOptions, optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.addresses import parse_address
from edgeproxy.errors import BadGateway, GatewayTimeout
from edgeproxy.http.client import HTTPClientProtocol
from edgeproxy.http.settings import ClientSettings
from edgeproxy.interfaces import IUpstreamServer

log = Logger()

ReleaseCallback = Callable[[bool], None]


@dataclass(frozen=True)
class UpstreamConnectionSettings:
    """
    How edgeproxy connects to the servers of one upstream.

    :ivar client: the HTTP client's limits and timeouts.
    :ivar connect_timeout: seconds to establish a connection.
    :ivar keepalive: idle connections kept per server.
    :ivar keepalive_timeout: seconds an idle connection is kept.
    :ivar tls_verify: whether ``https://`` servers' certificates are verified.
    :ivar tls_ca_file: a PEM file of trusted CAs, or ``None`` for the system's.
    """

    client: ClientSettings = field(default_factory=ClientSettings)
    connect_timeout: float = 5.0
    keepalive: int = 32
    keepalive_timeout: float = 60.0
    tls_verify: bool = True
    tls_ca_file: str | None = None


# Idle connections serve only requests for the same server, TLS and settings.
_PoolKey = tuple[str, bool, str, "UpstreamConnectionSettings"]
# The same with the settings' identity: hashing it costs no Python call.
_FastKey = tuple[str, bool, str, int]
# Aliases are dropped (and found again by equality) beyond this many: each
# keeps its settings object alive, and reloads make new ones.
_MAX_ALIASES = 4096


class _OneConnection(Factory):
    """Connects one given protocol, quietly (no log line per connection)."""

    noisy = False

    def __init__(self, protocol: HTTPClientProtocol) -> None:
        self.connection = protocol

    def buildProtocol(self, addr: object) -> HTTPClientProtocol:
        """The protocol given."""
        return self.connection


class _DirectConnect(ClientFactory):
    """
    Connects one given protocol over plain TCP, without an endpoint.

    An endpoint wraps the protocol in one of its own, which adds a call to
    every read of the connection's life.  :attr:`d` fires when the protocol
    is connected or fails with the connect's failure; cancelling it stops the
    connect (and fails it with ``CancelledError``).
    """

    noisy = False

    def __init__(self, protocol: HTTPClientProtocol) -> None:
        self.connection = protocol
        self.d: Deferred[None] = Deferred(self._cancel)
        self._connector: IConnector | None = None
        self._cancelled = False
        protocol.on_connected = self._connected

    def connect(self, reactor: Any, host: str, port: int, timeout: float) -> None:
        """Start connecting to ``host`` (an IP address) and ``port``."""
        self._connector = reactor.connectTCP(host, port, self, timeout=timeout)

    def buildProtocol(self, addr: object) -> HTTPClientProtocol:
        """The protocol given."""
        return self.connection

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """Fail :attr:`d` (with ``CancelledError`` when it was cancelled)."""
        if not self.d.called:
            self.d.errback(CancelledError() if self._cancelled else reason)

    def _connected(self) -> None:
        if not self.d.called:
            self.d.callback(None)

    def _cancel(self, d: Deferred[None]) -> None:
        self._cancelled = True
        if self._connector is not None:
            self._connector.stopConnecting()


class _Home:
    """
    The idle connections for one server, TLS and settings.

    :ivar idle: each idle connection with the reactor time it went idle,
        oldest first (the most recently used is taken first, from the end).
    """

    __slots__ = ("idle", "keepalive", "key", "timeout")

    def __init__(self, key: _PoolKey) -> None:
        settings = key[3]
        self.key = key
        self.keepalive = settings.keepalive
        self.timeout = settings.keepalive_timeout
        self.idle: list[tuple[HTTPClientProtocol, float]] = []


class ConnectionPool:
    """
    Hands out connections to upstream servers, new or reused.

    The pool is each connection's :class:`~edgeproxy.http.client.ConnectionListener`:
    it hears when a request is over and whether the connection may be reused.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._homes: dict[_PoolKey, _Home] = {}
        # By the settings' identity; each value keeps its settings object
        # alive, so that no other object can take its id meanwhile.
        self._aliases: dict[_FastKey, tuple[UpstreamConnectionSettings, _Home]] = {}
        self._released: dict[HTTPClientProtocol, ReleaseCallback] = {}
        self._home_of: dict[HTTPClientProtocol, _Home] = {}
        self._tls: dict[tuple[str, bool, str | None], Any] = {}
        self._sweep: IDelayedCall | None = None

    def idle_count(self, key: str) -> int:
        """How many idle connections to the server ``key`` are kept now."""
        return sum(
            len(home.idle) for home in self._homes.values() if home.key[0] == key
        )

    def take_idle(
        self,
        server: IUpstreamServer,
        settings: UpstreamConnectionSettings,
        on_release: ReleaseCallback,
    ) -> HTTPClientProtocol | None:
        """
        An idle connection to ``server`` for one request, or ``None``.

        The same as :meth:`acquire` for a reused connection, without the
        ``Deferred``: call :meth:`acquire` when this returns ``None``.
        """
        found = self._aliases.get(
            (server.key, server.tls, server.server_name, id(settings))
        )
        idle = found[1].idle if found is not None else self._home(server, settings).idle
        while idle:
            connection = idle.pop()[0]
            if connection.reusable:
                self._released[connection] = on_release
                return connection
            connection.close()
        return None

    def acquire(
        self,
        server: IUpstreamServer,
        settings: UpstreamConnectionSettings,
        on_release: ReleaseCallback,
        fresh: bool = False,
    ) -> Deferred[tuple[HTTPClientProtocol, bool]]:
        """
        A connection to ``server`` for one request: an idle one if there is any.

        Idle connections are shared only between requests that want the same
        server, the same TLS and the same settings.

        :param on_release: called once, with whether the connection was kept
            for reuse, when the request on it is over.
        :param fresh: open a new connection even when an idle one exists (a
            retry after a kept-alive connection turned out closed).
        :return: a ``Deferred`` firing with the connection and whether it was
            reused, or failing with ``BadGateway`` (refused, unreachable, TLS
            settings unusable), ``GatewayTimeout`` (connect timeout) or
            ``CancelledError``.
        """
        if not fresh:
            kept = self.take_idle(server, settings, on_release)
            if kept is not None:
                return succeed((kept, True))
        home = self._home(server, settings)
        protocol = HTTPClientProtocol(self._reactor, settings.client, listener=self)

        def connected(_: object) -> tuple[HTTPClientProtocol, bool]:
            self._home_of[protocol] = home
            self._released[protocol] = on_release
            return protocol, False

        connecting: Deferred[Any]
        if not server.tls and parse_address(server.host) is not None:
            # An address in plain TCP: no endpoint, whose wrapping protocol
            # would add a call to every read of the connection's life.
            direct = _DirectConnect(protocol)
            direct.connect(
                self._reactor, server.host, server.port, settings.connect_timeout
            )
            connecting = direct.d
        else:
            try:
                endpoint = self._endpoint(server, settings)
            except (OSError, ValueError) as error:
                log.error(
                    "cannot connect to {server}: {error}",
                    server=server.key,
                    error=error,
                )
                failed: Deferred[tuple[HTTPClientProtocol, bool]] = Deferred()
                failed.errback(
                    BadGateway(f"TLS settings for {server.key} unusable: {error}")
                )
                return failed
            connecting = endpoint.connect(_OneConnection(protocol))
        d: Deferred[tuple[HTTPClientProtocol, bool]] = connecting.addCallbacks(
            connected, _connect_failed, errbackArgs=(server,)
        )
        return d

    # --- ConnectionListener ------------------------------------------------

    def connection_released(
        self, connection: HTTPClientProtocol, reusable: bool
    ) -> None:
        """A request is over: keep the connection idle, or let it go."""
        home = self._home_of.get(connection)
        kept = False
        if reusable and home is not None:
            idle = home.idle
            if len(idle) < home.keepalive:
                idle.append((connection, self._reactor.seconds()))
                if self._sweep is None:
                    self._sweep = self._reactor.callLater(
                        home.timeout, self._sweep_idle
                    )
                kept = True
        if not kept:
            self._home_of.pop(connection, None)
            if reusable:
                connection.close()
        callback = self._released.pop(connection, None)
        if callback is not None:
            callback(kept)

    def connection_lost(self, connection: HTTPClientProtocol) -> None:
        """A connection closed: forget it."""
        home = self._home_of.pop(connection, None)
        if home is None:
            return
        idle = home.idle
        for index, entry in enumerate(idle):
            if entry[0] is connection:
                del idle[index]
                break
        if self._sweep is not None and not any(
            home.idle for home in self._homes.values()
        ):
            self._stop_sweep()

    def close_idle(self) -> None:
        """Close every idle connection (at shutdown)."""
        for home in self._homes.values():
            idle, home.idle = home.idle, []
            for connection, _ in idle:
                connection.close()
        self._stop_sweep()

    # --- internals -----------------------------------------------------------

    def _home(
        self, server: IUpstreamServer, settings: UpstreamConnectionSettings
    ) -> _Home:
        """The idle list for ``server`` and ``settings`` (made on first use)."""
        key: _PoolKey = (server.key, server.tls, server.server_name, settings)
        home = self._homes.get(key)
        if home is None:
            home = self._homes[key] = _Home(key)
        if len(self._aliases) >= _MAX_ALIASES:
            self._aliases.clear()
        fast: _FastKey = (server.key, server.tls, server.server_name, id(settings))
        self._aliases[fast] = (settings, home)
        return home

    def _sweep_idle(self) -> None:
        """Close the connections idle for their whole timeout; sweep again later."""
        self._sweep = None
        now = self._reactor.seconds()
        soonest: float | None = None
        for home in self._homes.values():
            idle = home.idle
            timeout = home.timeout
            expired = 0
            while expired < len(idle) and idle[expired][1] + timeout <= now:
                expired += 1
            if expired:
                closing = idle[:expired]
                del idle[:expired]
                for connection, _ in closing:
                    connection.close()
            if idle:
                due = idle[0][1] + timeout
                if soonest is None or due < soonest:
                    soonest = due
        if soonest is not None and self._sweep is None:
            self._sweep = self._reactor.callLater(
                max(0.0, soonest - now), self._sweep_idle
            )

    def _stop_sweep(self) -> None:
        sweep, self._sweep = self._sweep, None
        if sweep is not None and sweep.active():
            sweep.cancel()

    def _endpoint(
        self, server: IUpstreamServer, settings: UpstreamConnectionSettings
    ) -> IStreamClientEndpoint:
        timeout = settings.connect_timeout
        address = parse_address(server.host)
        endpoint: IStreamClientEndpoint
        if address is None:
            endpoint = HostnameEndpoint(
                self._reactor, server.host, server.port, timeout=timeout
            )
        elif address.version == 6:
            endpoint = TCP6ClientEndpoint(
                self._reactor, server.host, server.port, timeout=timeout
            )
        else:
            endpoint = TCP4ClientEndpoint(
                self._reactor, server.host, server.port, timeout=timeout
            )
        if not server.tls:
            return endpoint
        return wrapClientTLS(self._tls_options(server, settings), endpoint)

    def _tls_options(
        self, server: IUpstreamServer, settings: UpstreamConnectionSettings
    ) -> Any:
        name: str = server.server_name
        cache_key = (name, settings.tls_verify, settings.tls_ca_file)
        options = self._tls.get(cache_key)
        if options is None:
            options = self._tls[cache_key] = tls_client_options(
                name, settings.tls_verify, settings.tls_ca_file
            )
        return options


def tls_client_options(name: str, verify: bool, ca_file: str | None) -> Any:
    """
    TLS options for connecting to a server called ``name``.

    Verified with service-identity against ``name`` (and the CAs of
    ``ca_file`` when given); unverified only when ``verify`` is false.
    """
    if not verify:
        return UnverifiedTLS(name)
    if ca_file is None:
        return optionsForClientTLS(name)
    with open(ca_file, "rb") as handle:
        authority = Certificate.loadPEM(handle.read())
    return optionsForClientTLS(name, trustRoot=authority)


@implementer(IOpenSSLClientConnectionCreator)
class UnverifiedTLS:
    """Client TLS without certificate checks (``tls_verify = no``), still with SNI."""

    def __init__(self, name: str) -> None:
        self._name = name.encode("idna")
        self._context = CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        """The TLS connection for one client protocol."""
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(protocol)
        connection.set_tlsext_host_name(self._name)
        connection.set_connect_state()
        return connection


def _connect_failed(failure: Failure, server: IUpstreamServer) -> Failure:
    if failure.check(CancelledError, internet_error.ConnectingCancelledError):
        raise CancelledError()
    if failure.check(internet_error.TimeoutError):
        raise GatewayTimeout(f"connecting to {server.key} timed out")
    detail = failure.getErrorMessage()
    if failure.check(internet_error.ConnectionRefusedError):
        detail = "connection refused"
    raise BadGateway(f"cannot connect to {server.key}: {detail}")
