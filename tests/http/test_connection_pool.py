"""Tests for edgeproxy.http.connection_pool: connects, reuse, idle limits, TLS."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import (
    ConnectError,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from edgeproxy.core.framing import NO_BODY
from edgeproxy.core.message import RequestHead
from edgeproxy.errors import BadGateway, GatewayTimeout
from edgeproxy.http.client import HTTPClientProtocol, UpstreamResponse
from edgeproxy.http.connection_pool import (
    ConnectionPool,
    UnverifiedTLS,
    UpstreamConnectionSettings,
    tls_client_options,
)
from edgeproxy.http.settings import ClientSettings
from edgeproxy.testing import FakeServer
from tests.http.test_proxy import Upstream, Upstreams

SERVER = FakeServer("10.0.0.1", 9001)
SETTINGS = UpstreamConnectionSettings(connect_timeout=2.0, keepalive_timeout=30.0)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

Acquired = tuple[HTTPClientProtocol, bool]


class Pool:
    """A ConnectionPool on a MemoryReactorClock, and what it was told."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.connections = ConnectionPool(self.reactor)
        self.upstreams = Upstreams(self.reactor)
        self.releases: list[bool] = []

    def acquire(
        self,
        server: Any = SERVER,
        settings: UpstreamConnectionSettings = SETTINGS,
    ) -> Deferred[Acquired]:
        """Ask for a connection; releases are noted in ``releases``."""
        return self.connections.acquire(server, settings, self.releases.append)

    def connected(
        self,
        server: Any = SERVER,
        settings: UpstreamConnectionSettings = SETTINGS,
    ) -> tuple[HTTPClientProtocol, Upstream]:
        """A new connection, accepted by the server."""
        d = self.acquire(server, settings)
        upstream = self.upstreams.accept()
        connection, reused = result_of(d)
        assert not reused
        return connection, upstream

    def serve(self, connection: HTTPClientProtocol, upstream: Upstream) -> None:
        """One GET on ``connection``, answered with an empty 200."""
        responses: list[UpstreamResponse] = []
        connection.send_request(RequestHead(b"GET", b"/"), NO_BODY).addCallback(
            responses.append
        )
        upstream.respond(OK)
        assert [r.head.status for r in responses] == [200]


def result_of(d: Deferred[Any]) -> Any:
    """The result a Deferred has fired with (failing the test otherwise)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def failure_of(d: Deferred[Any]) -> Failure:
    """The failure a Deferred has fired with."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results and isinstance(results[0], Failure)
    return results[0]


@pytest.fixture
def pool() -> Pool:
    """A fresh pool."""
    return Pool()


# --- connecting -------------------------------------------------------------------


def test_new_connection_after_connect(pool: Pool) -> None:
    """acquire connects to the server with the connect timeout, then fires."""
    d = pool.acquire()
    assert pool.upstreams.connects() == [("10.0.0.1", 9001, 2.0)]
    assert not d.called
    upstream = pool.upstreams.accept()
    connection, reused = result_of(d)
    assert not reused
    assert connection.reusable
    assert connection.transport is not None
    connection.send_request(RequestHead(b"GET", b"/x"), NO_BODY)
    assert upstream.received().startswith(b"GET /x HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("host", "connected_to"),
    [
        pytest.param("10.0.0.1", "10.0.0.1", id="IPv4"),
        pytest.param("2001:db8::1", "2001:db8::1", id="IPv6"),
        # MemoryReactorClock resolves every name to 127.0.0.1.
        pytest.param("backend.internal", "127.0.0.1", id="name"),
    ],
)
def test_connects_to_each_kind_of_host(
    pool: Pool, host: str, connected_to: str
) -> None:
    """Addresses are connected to directly; names are resolved first."""
    pool.acquire(FakeServer(host, 9001))
    assert [c[:2] for c in pool.upstreams.connects()] == [(connected_to, 9001)]


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (ConnectionRefusedError(), BadGateway, "connection refused"),
        (ConnectTimeout(), GatewayTimeout, "timed out"),
        (DNSLookupError("no such host"), BadGateway, "no such host"),
        (ConnectError("no route to host"), BadGateway, "no route to host"),
    ],
)
def test_connect_failures_become_gateway_errors(
    pool: Pool, error: Exception, kind: type[Exception], reason: str
) -> None:
    """A failed connect fails with the gateway error the client should get."""
    d = pool.acquire()
    pool.upstreams.refuse(0, error)
    failure = failure_of(d)
    assert failure.type is kind
    assert reason in str(failure.value)
    assert "10.0.0.1:9001" in str(failure.value)


def test_cancelled_connect_stops_connecting(pool: Pool) -> None:
    """Cancelling acquire stops the connect attempt."""
    d = pool.acquire()
    d.cancel()
    assert pool.reactor.connectors[0].stoppedConnecting
    failure_of(d)


def test_cancelled_connect_fails_with_cancelled_error(pool: Pool) -> None:
    """Cancelling acquire fails it with CancelledError, not a gateway error."""
    d = pool.acquire()
    d.cancel()
    assert failure_of(d).check(CancelledError)


# --- reuse --------------------------------------------------------------------------


def test_released_connection_is_reused(pool: Pool) -> None:
    """A connection whose request ended cleanly is kept and handed out again."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    assert pool.releases == [True]
    assert pool.connections.idle_count(SERVER.key) == 1
    again, reused = result_of(pool.acquire())
    assert again is connection
    assert reused
    assert pool.connections.idle_count(SERVER.key) == 0
    assert len(pool.upstreams.connects()) == 1


def test_most_recently_used_connection_first(pool: Pool) -> None:
    """Of two idle connections, the one released last is handed out first."""
    first, first_upstream = pool.connected()
    second, second_upstream = pool.connected()
    pool.serve(first, first_upstream)
    pool.serve(second, second_upstream)
    assert result_of(pool.acquire())[0] is second
    assert result_of(pool.acquire())[0] is first


def test_idle_connections_per_server_are_capped(pool: Pool) -> None:
    """Beyond keepalive idle connections, a released one is closed."""
    settings = UpstreamConnectionSettings(keepalive=1)
    kept, kept_upstream = pool.connected(settings=settings)
    extra, extra_upstream = pool.connected(settings=settings)
    pool.serve(kept, kept_upstream)
    pool.serve(extra, extra_upstream)
    assert pool.releases == [True, False]
    assert not kept_upstream.closing
    assert extra_upstream.closing
    assert pool.connections.idle_count(SERVER.key) == 1


def test_connection_not_reusable_is_let_go(pool: Pool) -> None:
    """A response with Connection: close releases the connection unkept."""
    connection, upstream = pool.connected()
    connection.send_request(RequestHead(b"GET", b"/"), NO_BODY)
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    assert pool.releases == [False]
    assert pool.connections.idle_count(SERVER.key) == 0
    assert upstream.closing


def test_idle_connection_expires(pool: Pool) -> None:
    """An idle connection is closed after keepalive_timeout and not handed out."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    pool.reactor.advance(29.9)
    assert not upstream.closing
    pool.reactor.advance(0.1)
    assert upstream.closing
    assert pool.connections.idle_count(SERVER.key) == 0
    pool.acquire()
    assert len(pool.upstreams.connects()) == 2


def test_reuse_stops_the_expiry_timer(pool: Pool) -> None:
    """A connection taken from the idle list is not closed by its old timer."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    pool.reactor.advance(20)
    result_of(pool.acquire())
    pool.reactor.advance(20)
    assert not upstream.closing


def test_idle_connection_closed_by_the_server_is_forgotten(pool: Pool) -> None:
    """An idle connection the server closes leaves the pool with its timer."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    upstream.close()
    assert pool.connections.idle_count(SERVER.key) == 0
    assert 30.0 not in [call.getTime() for call in pool.reactor.getDelayedCalls()]


def test_idle_connection_gone_bad_is_skipped(pool: Pool) -> None:
    """An idle connection that turned unusable is closed, and a new one made."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    upstream.respond(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # unsolicited
    d = pool.acquire()
    assert len(pool.upstreams.connects()) == 2
    assert upstream.closing
    pool.upstreams.accept()
    again, reused = result_of(d)
    assert again is not connection
    assert not reused


def test_connections_are_kept_per_server(pool: Pool) -> None:
    """An idle connection to one server is never handed out for another."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    pool.acquire(FakeServer("10.0.0.2", 9001))
    assert len(pool.upstreams.connects()) == 2
    assert pool.connections.idle_count(SERVER.key) == 1


def test_close_idle_closes_every_idle_connection(pool: Pool) -> None:
    """close_idle (at shutdown) closes the idle connections and their timers."""
    one, one_upstream = pool.connected()
    two, two_upstream = pool.connected(FakeServer("10.0.0.2", 9001))
    busy, busy_upstream = pool.connected()
    pool.serve(one, one_upstream)
    pool.serve(two, two_upstream)
    busy.send_request(RequestHead(b"GET", b"/"), NO_BODY)
    pool.connections.close_idle()
    assert one_upstream.closing
    assert two_upstream.closing
    assert not busy_upstream.closing
    assert pool.connections.idle_count(SERVER.key) == 0
    # The expiry timers were due at 30s (the others are the busy request's).
    assert 30.0 not in [call.getTime() for call in pool.reactor.getDelayedCalls()]


def test_plain_connection_is_not_reused_for_a_tls_server(pool: Pool) -> None:
    """An idle plaintext connection to host:port never carries an https request."""
    connection, upstream = pool.connected(FakeServer("10.0.0.1", 9001))
    pool.serve(connection, upstream)
    settings = UpstreamConnectionSettings(tls_verify=False)
    d = pool.acquire(FakeServer("10.0.0.1", 9001, tls=True), settings)
    assert not d.called
    assert len(pool.upstreams.connects()) == 2


def test_reused_connection_has_the_settings_asked_for(pool: Pool) -> None:
    """A connection made for one upstream's timeouts does not serve another's."""
    quick = UpstreamConnectionSettings(client=ClientSettings(first_byte_timeout=5))
    patient = UpstreamConnectionSettings(client=ClientSettings(first_byte_timeout=300))
    connection, upstream = pool.connected(settings=quick)
    pool.serve(connection, upstream)
    d = pool.acquire(settings=patient)
    if not d.called:
        upstream = pool.upstreams.accept()
    connection, _ = result_of(d)
    failures: list[Failure] = []
    connection.send_request(RequestHead(b"GET", b"/report"), NO_BODY).addErrback(
        failures.append
    )
    pool.reactor.advance(60)
    assert failures == []


# --- TLS ----------------------------------------------------------------------------


def test_tls_server_gets_a_client_hello_with_its_name(pool: Pool) -> None:
    """An https:// server is spoken to in TLS, with its server_name in SNI."""
    server = FakeServer("10.0.0.1", 9443, tls=True)
    server.server_name = "api.internal"
    pool.acquire(server, UpstreamConnectionSettings(tls_verify=False))
    upstream = pool.upstreams.accept()
    hello = upstream.received()
    assert hello[:1] == b"\x16"  # a TLS handshake record
    assert b"api.internal" in hello


def self_signed_ca(directory: Path) -> Path:
    """A PEM file holding one self-signed CA certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("verify", [True, False])
def test_tls_options_make_client_connections(verify: bool) -> None:
    """Verified or not, the options make TLS client connections with SNI."""
    options = tls_client_options("api.internal", verify, None)
    assert IOpenSSLClientConnectionCreator.providedBy(options)
    assert isinstance(options, UnverifiedTLS) is not verify


def test_tls_options_trust_the_given_ca(tmp_path: Path) -> None:
    """A CA file is loaded as the trust root."""
    options = tls_client_options("api.internal", True, str(self_signed_ca(tmp_path)))
    assert IOpenSSLClientConnectionCreator.providedBy(options)


def test_unreadable_ca_file_fails_the_connect(pool: Pool, tmp_path: Path) -> None:
    """A CA file that cannot be read fails acquire's Deferred with BadGateway."""
    settings = UpstreamConnectionSettings(tls_ca_file=str(tmp_path / "missing.pem"))
    d = pool.acquire(FakeServer("10.0.0.1", 9443, tls=True), settings)
    assert failure_of(d).check(BadGateway)


# --- taking idle connections, expiry ------------------------------------------------


def test_take_idle_hands_over_an_idle_connection(pool: Pool) -> None:
    """take_idle gives the idle connection at once, or None when there is none."""
    connection, upstream = pool.connected()
    assert pool.connections.take_idle(SERVER, SETTINGS, pool.releases.append) is None
    pool.serve(connection, upstream)
    taken = pool.connections.take_idle(SERVER, SETTINGS, pool.releases.append)
    assert taken is connection
    pool.serve(connection, upstream)
    assert pool.releases == [True, True]


def test_each_idle_connection_expires_on_its_own_time(pool: Pool) -> None:
    """Connections idle since different times each close keepalive_timeout later."""
    first, first_upstream = pool.connected()
    second, second_upstream = pool.connected()
    pool.serve(first, first_upstream)
    pool.reactor.advance(10)
    pool.serve(second, second_upstream)
    pool.reactor.advance(20)
    assert first_upstream.closing
    assert not second_upstream.closing
    pool.reactor.advance(9.9)
    assert not second_upstream.closing
    pool.reactor.advance(0.1)
    assert second_upstream.closing
    assert pool.connections.idle_count(SERVER.key) == 0


def test_equal_settings_share_idle_connections(pool: Pool) -> None:
    """Settings equal to the ones a connection was made with reuse it (a reload)."""
    connection, upstream = pool.connected()
    pool.serve(connection, upstream)
    equal = UpstreamConnectionSettings(connect_timeout=2.0, keepalive_timeout=30.0)
    assert equal is not SETTINGS
    assert result_of(pool.acquire(settings=equal)) == (connection, True)


def test_a_connect_failing_after_cancel_is_cancelled(pool: Pool) -> None:
    """A connect that its connector fails as it stops reports CancelledError."""
    d = pool.acquire()
    factory = pool.reactor.tcpClients[0][2]
    connector = pool.reactor.connectors[0]
    connector.stopConnecting = lambda: factory.clientConnectionFailed(  # type: ignore[method-assign]
        connector, Failure(ConnectError("user cancelled"))
    )
    d.cancel()
    assert failure_of(d).check(CancelledError)
