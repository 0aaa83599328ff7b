"""Tests for edgeproxy.health.tcp: the tcp check on a fake reactor, and its helpers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError, NoRouteError
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IResolutionReceiver,
)
from twisted.internet.protocol import ClientFactory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.health import HealthResult
from edgeproxy.errors import OptionError
from edgeproxy.health.tcp import probe_within, tcp_check_factory
from edgeproxy.testing import FakeServer, environment


def start_probe(
    server: FakeServer | None = None,
    timeout: float = 2.0,
    reactor: MemoryReactorClock | None = None,
) -> tuple[MemoryReactorClock, list[HealthResult]]:
    """Start one tcp probe on a fake reactor; return it and the results so far."""
    reactor = reactor if reactor is not None else MemoryReactorClock()
    check = tcp_check_factory.build({}, environment(reactor))
    results: list[HealthResult] = []
    target = server if server is not None else FakeServer("10.0.0.1", 9001)
    check.check(target, timeout).addCallback(results.append)
    return reactor, results


def connect_by_hand(
    factory: ClientFactory, transport: StringTransport, host: str, port: int
) -> None:
    """Complete a connection that a probe asked for, over ``transport``."""
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    assert protocol is not None
    protocol.makeConnection(transport)


def connecting_factory(reactor: MemoryReactorClock) -> ClientFactory:
    """The factory of the one connection the probe asked for."""
    [(_host, _port, factory, _timeout, _bind)] = reactor.tcpClients
    assert isinstance(factory, ClientFactory)
    return factory


def test_options_are_refused() -> None:
    """The tcp check takes no options; each given one is reported."""
    with pytest.raises(OptionError) as raised:
        tcp_check_factory.build({"path": "/", "port": "1"}, environment())
    assert raised.value.problems == (
        ("path", "unknown option (this check takes no options)"),
        ("port", "unknown option (this check takes no options)"),
    )


def test_a_made_connection_is_up_and_closed_at_once() -> None:
    """The probe connects to host:port, is up when connected, and closes at once."""
    reactor, results = start_probe()
    [(host, port, factory, _timeout, _bind)] = reactor.tcpClients
    assert (host, port) == ("10.0.0.1", 9001)
    reactor.advance(0.25)
    transport = StringTransport()
    connect_by_hand(factory, transport, host, port)
    assert results == [HealthResult(True, "connected", 0.25)]
    assert transport.disconnecting
    assert transport.value() == b""
    assert reactor.getDelayedCalls() == []


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(), "connection refused"),
        (NoRouteError(), "no route to host"),
        (ValueError("odd"), "ValueError: odd"),
    ],
)
def test_a_failed_connect_is_down_with_its_reason(
    error: Exception, reason: str
) -> None:
    """A connect that fails is a down result saying why, with no timer left."""
    reactor, results = start_probe()
    reactor.advance(0.5)
    connecting_factory(reactor).clientConnectionFailed(
        reactor.connectors[0], Failure(error)
    )
    assert results == [HealthResult(False, reason, 0.5)]
    assert reactor.getDelayedCalls() == []


def test_a_slow_connect_times_out_and_is_stopped() -> None:
    """A connect still pending after timeout is stopped and reported as timed out."""
    reactor, results = start_probe(timeout=2.0)
    reactor.advance(1.99)
    assert results == []
    reactor.advance(0.01)
    assert results == [HealthResult(False, "timed out after 2.0s", 2.0)]
    assert reactor.connectors[0].stoppedConnecting


def test_an_ipv6_server_is_connected_to_by_address() -> None:
    """An IPv6 literal is connected to as it is."""
    reactor, _results = start_probe(FakeServer("::1", 9001))
    [(host, port, *_rest)] = reactor.tcpClients
    assert (host, port) == ("::1", 9001)


def test_a_tls_server_gets_a_plain_connect() -> None:
    """The tcp check of an https server only connects: it sends no TLS handshake."""
    reactor, results = start_probe(FakeServer("10.0.0.1", 443, tls=True))
    transport = StringTransport()
    connect_by_hand(connecting_factory(reactor), transport, "10.0.0.1", 443)
    assert results[0].up
    assert transport.value() == b""


@implementer(IHostnameResolver)
class NoAddresses:
    """A name resolver that finds no address for any name."""

    # The argument names are the interface's (callers pass some by keyword).
    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,  # noqa: N803
        hostName: str,  # noqa: N803
        portNumber: int = 0,  # noqa: N803
        addressTypes: Sequence[type[IAddress]] | None = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> IHostResolution:
        resolution = Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IHostResolution)
class Resolution:
    """A finished name resolution."""

    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        """Nothing to cancel."""


def test_a_name_that_does_not_resolve_is_down() -> None:
    """A host name without addresses is a down result naming the lookup."""
    reactor = MemoryReactorClock()
    reactor.installNameResolver(NoAddresses())
    _reactor, results = start_probe(FakeServer("db.internal", 5432), reactor=reactor)
    reactor.advance(0)
    assert results == [HealthResult(False, "DNS lookup of db.internal failed", 0.0)]
    assert reactor.tcpClients == []


def test_a_name_is_resolved_through_the_reactor() -> None:
    """A host name is resolved with the reactor's resolver, then connected to."""
    reactor, results = start_probe(FakeServer("db.internal", 5432))
    reactor.advance(0)
    [(host, port, factory, _timeout, _bind)] = reactor.tcpClients
    assert (host, port) == ("127.0.0.1", 5432)  # what the fake resolver answers
    connect_by_hand(factory, StringTransport(), host, port)
    assert results == [HealthResult(True, "connected", 0.0)]


def test_probe_within_turns_a_raising_attempt_into_a_down_result() -> None:
    """An attempt that raises at once is a down result, not an exception."""

    def attempt() -> Deferred[HealthResult]:
        raise RuntimeError("no socket")

    reactor = MemoryReactorClock()
    results: list[HealthResult] = []
    probe_within(reactor, 1.0, attempt, lambda f: f.getErrorMessage()).addCallback(
        results.append
    )
    assert results == [HealthResult(False, "no socket", 0.0)]
    assert reactor.getDelayedCalls() == []


def test_probe_within_cancels_an_attempt_at_the_timeout() -> None:
    """An attempt still pending at the timeout is cancelled; the result says so."""
    cancelled: list[Deferred[HealthResult]] = []
    pending: Deferred[HealthResult] = Deferred(cancelled.append)
    reactor = MemoryReactorClock()
    results: list[HealthResult] = []
    probe_within(reactor, 0.25, lambda: pending, str).addCallback(results.append)
    reactor.advance(0.25)
    assert cancelled == [pending]
    assert results == [HealthResult(False, "timed out after 0.25s", 0.25)]
