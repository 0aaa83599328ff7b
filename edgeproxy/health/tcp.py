"""
The ``tcp`` health check, and the connect-and-give-up machinery other checks share.

A probe connects to the server and counts it up as soon as the connection is
made; it then closes the connection at once.  ``https://`` servers are probed
the same way, without a TLS handshake: a listening port is what ``tcp``
checks (use ``http_get`` to check the TLS and HTTP layers too).

Every probe is bounded by :func:`probe_within`: after ``timeout`` seconds the
attempt is cancelled (which stops the connect or drops the connection) and the
probe reports ``timed out after 2.0s``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
    NoRouteError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.health import HealthResult
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import IHealthCheck, IHealthCheckFactory, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment


def unknown_option_problems(
    options: Mapping[str, str], known: Sequence[str]
) -> list[tuple[str, str]]:
    """
    The problems of the keys of ``options`` that are not in ``known``.

    Each message lists the known options, so that a typo is easy to fix.
    """
    if known:
        hint = "known options: " + ", ".join(known)
    else:
        hint = "this check takes no options"
    return [(key, f"unknown option ({hint})") for key in options if key not in known]


def server_endpoint(reactor: Any, host: str, port: int) -> IStreamClientEndpoint:
    """
    A plain TCP endpoint for ``host``:``port`` on ``reactor``.

    Address literals connect directly; a host name goes through the reactor's
    name resolver (IPv6 and IPv4 addresses, tried as RFC 8305 says), so that
    a failed lookup is a :class:`~twisted.internet.error.DNSLookupError`.

    :param reactor: provides ``IReactorTCP``, ``IReactorTime`` and
        ``IReactorPluggableNameResolver``.
    """
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port)
    return HostnameEndpoint(reactor, host, port)


def describe_connect_failure(failure: Failure, host: str) -> str:
    """Say in a few words why connecting to ``host`` failed."""
    if failure.check(ConnectionRefusedError):
        return "connection refused"
    if failure.check(DNSLookupError):
        return f"DNS lookup of {host} failed"
    if failure.check(NoRouteError):
        return "no route to host"
    if failure.check(TCPTimedOutError, TimeoutError):
        return "connect timed out"
    if failure.check(CancelledError, ConnectingCancelledError):
        return "probe cancelled"
    if failure.check(ConnectError):
        return f"connect failed: {failure.getErrorMessage()}"
    name = failure.type.__name__ if failure.type is not None else "error"
    return f"{name}: {failure.getErrorMessage()}"


def probe_within(
    reactor: Any,
    timeout: float,
    attempt: Callable[[], Deferred[HealthResult]],
    explain: Callable[[Failure], str],
) -> Deferred[HealthResult]:
    """
    Run one probe attempt, bounded in time; fire with a result, never a failure.

    :param reactor: provides ``IReactorTime``; its clock measures the latency.
    :param timeout: seconds after which the attempt is cancelled and the
        probe reports ``timed out after ...``.
    :param attempt: starts the probe; its ``Deferred`` fires with the verdict
        (the latency is filled in here), and cancelling it must stop its I/O.
    :param explain: words for a failure of the attempt (other than the timeout).
    :return: a ``Deferred`` that fires with a :class:`HealthResult` within
        ``timeout`` seconds.
    """
    started: float = reactor.seconds()
    try:
        pending = attempt()
    except Exception:
        pending = fail()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        pending.cancel()

    timer = reactor.callLater(timeout, expire)

    def settle(outcome: HealthResult | Failure) -> HealthResult:
        if timer.active():
            timer.cancel()
        latency = reactor.seconds() - started
        if isinstance(outcome, Failure):
            if expired:
                reason = f"timed out after {float(timeout)}s"
            else:
                reason = explain(outcome)
            return HealthResult(False, reason, latency)
        return replace(outcome, latency=latency)

    return pending.addBoth(settle)


class _CloseAtOnce(Protocol):
    """Closes the connection as soon as it is made: connecting was the test."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class _CloseAtOnceFactory(Factory):
    """Makes :class:`_CloseAtOnce` protocols, without a log line per probe."""

    protocol = _CloseAtOnce
    noisy = False


def _connected(protocol: IProtocol) -> HealthResult:
    """The verdict of a probe whose connection was made."""
    return HealthResult(True, "connected")


@implementer(IHealthCheck)
class TcpCheck:
    """
    Probe a server by connecting to its port.

    :param reactor: the reactor to connect and time with.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def __repr__(self) -> str:
        return "<TcpCheck>"

    def check(self, server: IUpstreamServer, timeout: float) -> Deferred[HealthResult]:
        """
        Connect to ``server`` and close at once.

        Up (``connected``) when the connection is made; down with ``connection
        refused``, ``DNS lookup of HOST failed``, ``timed out after 2.0s``...
        otherwise.
        """
        host: str = server.host

        def attempt() -> Deferred[HealthResult]:
            endpoint = server_endpoint(self._reactor, host, server.port)
            connecting = endpoint.connect(_CloseAtOnceFactory())
            return connecting.addCallback(_connected)

        return probe_within(
            self._reactor,
            timeout,
            attempt,
            lambda failure: describe_connect_failure(failure, host),
        )


@implementer(IPlugin, IHealthCheckFactory)
class TcpCheckFactory:
    """
    The ``tcp`` health-check plugin; it takes no options.

    :ivar name: ``"tcp"``.
    :ivar description: one line for ``--list-plugins``.
    """

    name = "tcp"
    description = "Up when a TCP connection to the server can be made."

    def __repr__(self) -> str:
        return "<TcpCheckFactory tcp>"

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> TcpCheck:
        """
        Make a ``tcp`` check that uses the environment's reactor.

        :raises OptionError: for any option (it takes none).
        """
        problems = unknown_option_problems(options, ())
        if problems:
            raise OptionError(problems)
        return TcpCheck(environment.reactor)


tcp_check_factory = TcpCheckFactory()
"""The ``tcp`` plugin object."""
