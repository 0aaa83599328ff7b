"""Tests for edgeproxy.tcp: admission, PROXY headers, failover, accounting, splice."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, capturedLogs
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.access_log.record import SessionRecord
from edgeproxy.access_log.sink import AccessLog
from edgeproxy.config.loader import parse_config
from edgeproxy.core.proxy_protocol import build_v1, build_v2
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.registry import discover
from edgeproxy.snapshot import SnapshotHolder, build_snapshot
from edgeproxy.tcp import TCPListenerFactory, TCPListenerSettings
from edgeproxy.upstream.pool import UpstreamPool
from tests.test_tunnel import TCPLikeTransport

CONFIG = """
[listener:db]
protocol = tcp
endpoint = tcp:5433
upstream = pg
[upstream:pg]
servers = {servers}
"""
SERVERS = "10.0.0.1:5432, 10.0.0.2:5432, 10.0.0.3:5432"
LISTENER = IPv4Address("TCP", "203.0.113.1", 5433)
CLEAN = Failure(ConnectionDone())
RESET = Failure(ConnectionLost())
REGISTRY = discover()


class Harness:
    """A TCP listener factory on a memory reactor, with helpers to drive it."""

    def __init__(
        self, settings: TCPListenerSettings | None = None, servers: str = SERVERS
    ) -> None:
        self.reactor = MemoryReactorClock()
        self.holder = SnapshotHolder(self.snapshot(servers))
        self.factory = TCPListenerFactory(
            self.holder, "db", settings or TCPListenerSettings(), self.reactor
        )

    def snapshot(self, servers: str) -> Any:
        """A snapshot of the test config with ``servers``."""
        config = parse_config(CONFIG.format(servers=servers))
        environment = PluginEnvironment(self.reactor, Path("."))
        return build_snapshot(config, REGISTRY, environment)

    @property
    def pool(self) -> UpstreamPool:
        """The pool of the current snapshot."""
        return self.holder.current.pools["pg"]

    def client(
        self, host: str = "192.0.2.7", port: int = 40000
    ) -> tuple[Protocol, TCPLikeTransport]:
        """Accept a client connection from ``host``."""
        kind = IPv6Address if ":" in host else IPv4Address
        peer = kind("TCP", host, port)
        transport = TCPLikeTransport(hostAddress=LISTENER, peerAddress=peer)
        protocol = self.factory.buildProtocol(peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def connects(self) -> list[tuple[str, int, float]]:
        """Host, port and timeout of every connect made so far."""
        return [(h, p, t) for h, p, _, t, _ in self.reactor.tcpClients]

    def accept(self, index: int = -1) -> tuple[Protocol, TCPLikeTransport]:
        """The server of connect ``index`` accepts."""
        host, port, factory, _, _ = self.reactor.tcpClients[index]
        transport = TCPLikeTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol = cast(Protocol, factory.buildProtocol(transport.getPeer()))
        protocol.makeConnection(transport)
        return protocol, transport

    def refuse(self, index: int = -1, error: Exception | None = None) -> None:
        """Connect ``index`` fails."""
        _, _, factory, _, _ = self.reactor.tcpClients[index]
        connector = self.reactor.connectors[index]
        factory.clientConnectionFailed(connector, Failure(error or refused_error()))


def refused_error() -> Exception:
    """A refused connect, as the reactor reports it."""
    return ConnectionRefusedError("Connection refused")


def active(harness: Harness) -> list[int]:
    """Connections in flight on each server of the pool."""
    return [server.active for server in harness.pool.servers]


def test_a_connection_is_spliced_to_the_picked_server() -> None:
    """Client bytes wait (paused) while connecting, then flow both ways."""
    harness = Harness(TCPListenerSettings(connect_timeout=2.5))
    client, client_transport = harness.client()
    assert harness.connects() == [("10.0.0.1", 5432, 2.5)]
    client.dataReceived(b"*1\r\n$4\r\nPING\r\n")
    assert client_transport.producerState == "paused"
    server, server_transport = harness.accept()
    assert server_transport.value() == b"*1\r\n$4\r\nPING\r\n"
    assert client_transport.producerState == "producing"
    server.dataReceived(b"+PONG\r\n")
    assert client_transport.value() == b"+PONG\r\n"
    assert active(harness) == [1, 0, 0]


def test_the_tunnel_end_settles_the_pool_with_the_connect_time() -> None:
    """When both connections are gone the server is released; latency = connect."""
    harness = Harness()
    client, _ = harness.client()
    harness.reactor.advance(0.25)
    server, _ = harness.accept()
    harness.reactor.advance(100)
    client.connectionLost(CLEAN)
    assert active(harness) == [1, 0, 0]
    server.connectionLost(CLEAN)
    assert active(harness) == [0, 0, 0]
    stats = harness.pool.servers[0].stats(harness.reactor.seconds())
    assert (stats.latency_ewma, stats.failures, stats.status) == (0.25, 0, "up")


def test_a_server_reset_after_connecting_is_not_a_failure() -> None:
    """A session the server ended by a reset was served: passive health ignores it."""
    harness = Harness()
    client, client_transport = harness.client()
    server, _ = harness.accept()
    server.connectionLost(RESET)
    assert client_transport.disconnected
    client.connectionLost(Failure(ConnectionLost()))
    assert harness.pool.servers[0].stats(0).failures == 0
    assert harness.pool.servers[0].active == 0


@pytest.mark.parametrize("error", [refused_error(), ConnectTimeout()])
def test_a_failed_connect_moves_on_to_the_next_server(error: Exception) -> None:
    """Refused or timed out: the server is marked failed and the next one tried."""
    harness = Harness()
    client, client_transport = harness.client()
    client.dataReceived(b"hello")
    harness.reactor.advance(1.5)
    with capturedLogs() as events:
        harness.refuse(error=error)
    first, second = (c[0] for c in harness.connects())
    assert first == "10.0.0.1" and second != first
    failed = harness.pool.servers[0].stats(harness.reactor.seconds())
    assert (failed.failures, failed.status, failed.active) == (1, "down", 0)
    assert [e["server"] for e in events] == ["10.0.0.1:5432"]
    assert events[0]["client"] == "192.0.2.7:40000"
    assert "log_failure" not in events[0]
    _, server_transport = harness.accept()
    assert server_transport.value() == b"hello"
    assert not client_transport.disconnecting


def test_every_server_is_tried_once_then_the_client_is_closed() -> None:
    """With all servers failing, each is tried once and the client closed."""
    harness = Harness(servers="10.0.0.1:1, 10.0.0.2:1")
    client, client_transport = harness.client()
    harness.refuse()
    harness.refuse()
    assert [c[0] for c in harness.connects()] == ["10.0.0.1", "10.0.0.2"]
    assert client_transport.disconnecting
    client.connectionLost(CLEAN)
    assert active(harness) == [0, 0]


def test_no_server_available_closes_the_client_at_once() -> None:
    """With every server disabled, the client is closed and nothing connects."""
    harness = Harness(servers="10.0.0.1:1 down")
    with capturedLogs() as events:
        _, client_transport = harness.client()
    assert client_transport.disconnecting
    assert harness.connects() == []
    assert "no server is available" in events[-1]["reason"]


def test_the_client_leaving_while_connecting_cancels_the_connect() -> None:
    """The connect is stopped, the server not blamed, a late accept dropped."""
    harness = Harness()
    client, _ = harness.client()
    client.connectionLost(CLEAN)
    # The fake connector only records that disconnect() was called.
    assert harness.reactor.connectors[0]._disconnected
    assert active(harness) == [0, 0, 0]
    assert harness.pool.servers[0].stats(0).failures == 0
    _, server_transport = harness.accept()
    assert server_transport.disconnecting
    assert server_transport.value() == b""


@pytest.mark.parametrize(
    ("allow", "deny", "host", "admitted"),
    [
        ((), (), "192.0.2.7", True),
        (("192.0.2.0/24",), (), "192.0.2.7", True),
        (("192.0.2.0/24",), (), "198.51.100.7", False),
        ((), ("192.0.2.7",), "192.0.2.7", False),
        ((), ("192.0.2.7",), "192.0.2.8", True),
        (("192.0.2.0/24",), ("192.0.2.7",), "192.0.2.7", False),
        (("2001:db8::/32",), (), "2001:db8::1", True),
        (("192.0.2.0/24",), (), "::ffff:192.0.2.7", True),
    ],
)
def test_allow_and_deny(
    allow: tuple[str, ...], deny: tuple[str, ...], host: str, admitted: bool
) -> None:
    """Deny wins, an empty allow allows all; refused clients are closed at once."""
    harness = Harness(TCPListenerSettings(allow=allow, deny=deny))
    _, transport = harness.client(host)
    assert transport.disconnecting is not admitted
    assert len(harness.connects()) == int(admitted)


def test_max_connections_caps_the_listener() -> None:
    """Beyond max_connections new clients are closed; a closed one frees a slot."""
    harness = Harness(TCPListenerSettings(max_connections=2))
    first, _ = harness.client("192.0.2.1")
    harness.client("192.0.2.2")
    third, third_transport = harness.client("192.0.2.3")
    assert third_transport.disconnecting
    third.connectionLost(CLEAN)
    first.connectionLost(CLEAN)
    assert harness.factory.open_connections == 1
    _, transport = harness.client("192.0.2.4")
    assert not transport.disconnecting


def test_max_connections_per_ip_caps_each_address() -> None:
    """One address gets max_connections_per_ip; others are unaffected."""
    harness = Harness(TCPListenerSettings(max_connections_per_ip=2))
    first, _ = harness.client("192.0.2.1", 1)
    harness.client("::ffff:192.0.2.1", 2)
    _, refused = harness.client("192.0.2.1", 3)
    _, other = harness.client("192.0.2.2", 1)
    assert refused.disconnecting and not other.disconnecting
    first.connectionLost(CLEAN)
    _, again = harness.client("192.0.2.1", 4)
    assert not again.disconnecting


def test_the_proxy_header_source_is_the_client() -> None:
    """An accepted PROXY header is stripped; its source is checked and forwarded."""
    settings = TCPListenerSettings(
        accept_proxy_protocol=True,
        send_proxy_protocol="v2",
        deny=("198.51.100.0/24",),
        max_connections_per_ip=1,
    )
    harness = Harness(settings)
    header = build_v1(("192.0.2.7", 50000), ("203.0.113.9", 6379))
    client, client_transport = harness.client("10.9.9.9")
    client.dataReceived(header[:10])
    assert harness.connects() == []
    client.dataReceived(header[10:] + b"PING\r\n")
    _, server_transport = harness.accept()
    expected = build_v2(("192.0.2.7", 50000), ("203.0.113.9", 6379))
    assert server_transport.value() == expected + b"PING\r\n"
    denied, denied_transport = harness.client("10.9.9.9")
    denied.dataReceived(build_v1(("198.51.100.1", 1), ("203.0.113.9", 6379)))
    assert denied_transport.disconnecting
    capped, capped_transport = harness.client("10.9.9.9")
    capped.dataReceived(header)
    assert capped_transport.disconnecting
    assert not client_transport.disconnecting


def test_a_local_proxy_header_keeps_the_real_addresses() -> None:
    """A v2 LOCAL header (a health check) means the connection's own addresses."""
    harness = Harness(
        TCPListenerSettings(accept_proxy_protocol=True, send_proxy_protocol="v1")
    )
    client, _ = harness.client("10.9.9.9", 1234)
    client.dataReceived(build_v2(None, None, local=True))
    _, server_transport = harness.accept()
    assert server_transport.value() == b"PROXY TCP4 10.9.9.9 203.0.113.1 1234 5433\r\n"


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"PROXY TCP4 1.2.3.4\r\n", b"PROXY UNKNOWN" + b"x" * 200],
)
def test_a_malformed_proxy_header_closes_the_client(data: bytes) -> None:
    """Bad or oversized PROXY headers close the connection; nothing connects."""
    harness = Harness(TCPListenerSettings(accept_proxy_protocol=True))
    client, transport = harness.client()
    client.dataReceived(data)
    assert transport.disconnecting
    assert harness.connects() == []


def test_a_proxy_header_must_arrive_in_time() -> None:
    """Without a complete header within proxy_protocol_timeout, the client is closed."""
    harness = Harness(
        TCPListenerSettings(accept_proxy_protocol=True, proxy_protocol_timeout=3)
    )
    client, transport = harness.client()
    client.dataReceived(b"PROXY TCP4 ")
    harness.reactor.advance(2.9)
    assert not transport.disconnecting
    harness.reactor.advance(0.1)
    assert transport.disconnecting
    client.connectionLost(CLEAN)
    assert harness.reactor.getDelayedCalls() == []


def test_a_client_fin_before_its_proxy_header_closes_it() -> None:
    """A client that half-closes before its header is complete is closed."""
    harness = Harness(TCPListenerSettings(accept_proxy_protocol=True))
    client, transport = harness.client()
    client.readConnectionLost()  # type: ignore[attr-defined]
    assert transport.disconnecting


def test_a_client_fin_is_passed_on_to_the_server() -> None:
    """Half-close crosses the listener: client FIN -> server write side closed."""
    harness = Harness()
    client, client_transport = harness.client()
    server, server_transport = harness.accept()
    client.readConnectionLost()  # type: ignore[attr-defined]
    assert server_transport.write_closed
    server.dataReceived(b"late reply")
    assert client_transport.value() == b"late reply"


def test_idle_connections_are_dropped_after_idle_timeout() -> None:
    """No byte either way for idle_timeout drops both connections."""
    harness = Harness(TCPListenerSettings(idle_timeout=30))
    _, client_transport = harness.client()
    _, server_transport = harness.accept()
    harness.reactor.advance(30)
    assert client_transport.disconnected and server_transport.disconnected


def test_each_connection_reads_the_snapshot_when_accepted() -> None:
    """After a reload new connections use the new pool; old ones keep theirs."""
    harness = Harness()
    old_client, _ = harness.client()
    harness.holder.swap(harness.snapshot("10.0.0.9:5432"))
    harness.client()
    assert [c[0] for c in harness.connects()] == ["10.0.0.1", "10.0.0.9"]
    old_client.connectionLost(CLEAN)


@pytest.mark.parametrize(
    "settings",
    [
        {"send_proxy_protocol": "v3"},
        {"max_connections": -1},
        {"connect_timeout": 0},
        {"idle_timeout": -1},
    ],
)
def test_settings_refuse_nonsense(settings: dict[str, Any]) -> None:
    """Impossible settings are a ValueError, not a silent misbehaviour."""
    with pytest.raises(ValueError, match=r"v1 or v2|0 or more|more than 0"):
        TCPListenerSettings(**settings)


def test_bad_networks_are_refused_when_the_factory_is_built() -> None:
    """A bad allow/deny entry is a ValueError naming it."""
    with pytest.raises(ValueError, match="not-a-network"):
        Harness(TCPListenerSettings(deny=("not-a-network",)))


# --- the access log ----------------------------------------------------------------


@implementer(ILogObserver)
class SessionRecords:
    """The records an access log publishes, as an observer of it."""

    def __init__(self, access_log: AccessLog) -> None:
        self.records: list[SessionRecord] = []
        access_log.add_observer(self)

    def __call__(self, event: Any) -> None:
        self.records.append(event["record"])


def logged_harness(
    settings: TCPListenerSettings | None = None, servers: str = SERVERS
) -> tuple[Harness, list[SessionRecord]]:
    """A harness whose listener logs each connection, and its records."""
    harness = Harness(settings, servers)
    access_log = AccessLog()
    harness.factory.access_log = access_log
    return harness, SessionRecords(access_log).records


def test_a_closed_session_is_logged_with_its_server_bytes_and_end() -> None:
    """One record per connection: client, server, bytes each way, time, end."""
    harness, records = logged_harness()
    client, _ = harness.client(port=40001)
    harness.reactor.advance(0.5)
    server, _ = harness.accept()
    client.dataReceived(b"12345")
    server.dataReceived(b"abc")
    harness.reactor.advance(2)
    assert records == []
    client.connectionLost(CLEAN)
    server.connectionLost(CLEAN)
    [record] = records
    assert (record.client, record.client_port, record.listener) == (
        "192.0.2.7",
        40001,
        "db",
    )
    assert (record.upstream, record.bytes_in, record.bytes_out) == (
        "10.0.0.1:5432",
        5,
        3,
    )
    assert (record.duration, record.end) == (2.5, "closed")


def test_a_refused_connection_is_logged_with_why() -> None:
    """A client refused by allow/deny is one record with no server."""
    harness, records = logged_harness(TCPListenerSettings(deny=("192.0.2.0/24",)))
    harness.client()
    [record] = records
    assert record.upstream is None
    assert record.end == "refused: denied by allow/deny"


def test_no_server_left_is_logged_as_such() -> None:
    """When every server refused, the record says no server was available."""
    harness, records = logged_harness(servers="10.0.0.1:5432")
    client, client_transport = harness.client()
    harness.refuse()
    assert client_transport.disconnecting
    client.connectionLost(CLEAN)
    [record] = records
    assert (record.upstream, record.end) == (None, "no server available")
