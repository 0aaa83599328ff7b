"""
Keep-alive connections to upstream servers, reused across requests.

One :class:`ConnectionPool` serves every upstream of a process; idle
connections are kept per server key, most recently used first, up to the
upstream's ``keepalive`` count, each closed after ``keepalive_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL
from twisted.internet import error as internet_error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
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


class _OneConnection(Factory):
    """Connects one given protocol, quietly (no log line per connection)."""

    noisy = False

    def __init__(self, protocol: HTTPClientProtocol) -> None:
        self.connection = protocol

    def buildProtocol(self, addr: object) -> HTTPClientProtocol:
        """The protocol given."""
        return self.connection


class _Idle:
    """An idle connection and the timer that closes it."""

    __slots__ = ("connection", "timer")

    def __init__(self, connection: HTTPClientProtocol, timer: IDelayedCall) -> None:
        self.connection = connection
        self.timer = timer


class ConnectionPool:
    """
    Hands out connections to upstream servers, new or reused.

    The pool is each connection's :class:`~edgeproxy.http.client.ConnectionListener`:
    it hears when a request is over and whether the connection may be reused.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._idle: dict[_PoolKey, list[_Idle]] = {}
        self._released: dict[HTTPClientProtocol, ReleaseCallback] = {}
        self._home: dict[HTTPClientProtocol, _PoolKey] = {}
        self._tls: dict[tuple[str, bool, str | None], Any] = {}

    def idle_count(self, key: str) -> int:
        """How many idle connections to the server ``key`` are kept now."""
        return sum(len(idle) for home, idle in self._idle.items() if home[0] == key)

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
        home: _PoolKey = (server.key, server.tls, server.server_name, settings)
        idle = None if fresh else self._idle.get(home)
        while idle:
            entry = idle.pop()
            entry.timer.cancel()
            if entry.connection.reusable:
                self._released[entry.connection] = on_release
                return _succeed((entry.connection, True))
            entry.connection.close()
        protocol = HTTPClientProtocol(self._reactor, settings.client, listener=self)
        try:
            endpoint = self._endpoint(server, settings)
        except (OSError, ValueError) as error:
            log.error(
                "cannot connect to {server}: {error}", server=server.key, error=error
            )
            failed: Deferred[tuple[HTTPClientProtocol, bool]] = Deferred()
            failed.errback(
                BadGateway(f"TLS settings for {server.key} unusable: {error}")
            )
            return failed
        d: Deferred[Any] = endpoint.connect(_OneConnection(protocol))

        def connected(_: object) -> tuple[HTTPClientProtocol, bool]:
            self._home[protocol] = home
            self._released[protocol] = on_release
            return protocol, False

        d.addCallbacks(connected, _connect_failed, errbackArgs=(server,))
        return d

    # --- ConnectionListener ------------------------------------------------

    def connection_released(
        self, connection: HTTPClientProtocol, reusable: bool
    ) -> None:
        """A request is over: keep the connection idle, or let it go."""
        home = self._home.get(connection)
        kept = False
        if reusable and home is not None:
            settings = home[3]
            idle = self._idle.setdefault(home, [])
            if len(idle) < settings.keepalive:
                timer = self._reactor.callLater(
                    settings.keepalive_timeout, self._expire, home, connection
                )
                idle.append(_Idle(connection, timer))
                kept = True
        if not kept:
            self._home.pop(connection, None)
            if reusable:
                connection.close()
        callback = self._released.pop(connection, None)
        if callback is not None:
            callback(kept)

    def connection_lost(self, connection: HTTPClientProtocol) -> None:
        """A connection closed: forget it."""
        home = self._home.pop(connection, None)
        if home is not None:
            idle = self._idle.get(home, [])
            for entry in idle:
                if entry.connection is connection:
                    entry.timer.cancel()
                    idle.remove(entry)
                    break

    def close_idle(self) -> None:
        """Close every idle connection (at shutdown)."""
        for idle in self._idle.values():
            for entry in idle:
                entry.timer.cancel()
                entry.connection.close()
        self._idle.clear()

    def _expire(self, home: _PoolKey, connection: HTTPClientProtocol) -> None:
        idle = self._idle.get(home, [])
        for entry in idle:
            if entry.connection is connection:
                idle.remove(entry)
                break
        connection.close()

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


def _succeed(
    value: tuple[HTTPClientProtocol, bool],
) -> Deferred[tuple[HTTPClientProtocol, bool]]:
    d: Deferred[tuple[HTTPClientProtocol, bool]] = Deferred()
    d.callback(value)
    return d


def _connect_failed(failure: Failure, server: IUpstreamServer) -> Failure:
    if failure.check(CancelledError, internet_error.ConnectingCancelledError):
        raise CancelledError()
    if failure.check(internet_error.TimeoutError):
        raise GatewayTimeout(f"connecting to {server.key} timed out")
    detail = failure.getErrorMessage()
    if failure.check(internet_error.ConnectionRefusedError):
        detail = "connection refused"
    raise BadGateway(f"cannot connect to {server.key}: {detail}")
