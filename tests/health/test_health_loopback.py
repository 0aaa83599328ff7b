"""The built-in checks over real loopback connections to in-process Twisted servers."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from edgeproxy.core.health import HealthResult
from edgeproxy.health.http_get import http_get_check_factory
from edgeproxy.health.tcp import tcp_check_factory
from edgeproxy.testing import FakeServer, environment

AsyncTest = TypeVar("AsyncTest", bound=Callable[..., Awaitable[None]])


def on_reactor(test: AsyncTest) -> AsyncTest:
    """Run an ``async`` test on the reactor that pytest-twisted drives."""
    marked: AsyncTest = pytest_twisted.ensureDeferred(test)
    return marked


@pytest.fixture
def reactor() -> Any:
    """The running reactor that pytest-twisted drives (tests only use it here)."""
    from twisted.internet import reactor as running

    return running


class Health(Resource):
    """``/health`` answers 200 ``all ok``; ``/sick`` answers 503."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/sick":
            request.setResponseCode(503)
            return b"down for maintenance"
        return b"all ok"


class Silent(Protocol):
    """Accepts a connection and never answers; tells when the peer goes."""

    def __init__(self, gone: Deferred[None]) -> None:
        self.gone = gone

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.gone.callback(None)


class SilentFactory(Factory):
    """Makes :class:`Silent` protocols that report to ``gone``."""

    def __init__(self, gone: Deferred[None]) -> None:
        self.gone = gone

    def buildProtocol(self, addr: object) -> Silent:
        return Silent(self.gone)


@implementer(IOpenSSLServerConnectionCreator)
class SelfSigned:
    """Server TLS with a fresh self-signed ``localhost`` certificate."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        self._context = SSL.Context(SSL.TLS_METHOD)
        self._context.use_certificate(certificate)
        self._context.use_privatekey(key)

    def serverConnectionForTLS(self, tls_protocol: object) -> SSL.Connection:
        """A server-side TLS connection with the certificate."""
        return SSL.Connection(self._context, None)


def port_of(listening: IListeningPort) -> int:
    """The TCP port a listening port was given."""
    address = listening.getHost()
    assert isinstance(address, IPv4Address)
    return address.port


@on_reactor
async def test_http_get_over_the_network(reactor: Any) -> None:
    """http_get sees a real web server's status and body."""
    listening = reactor.listenTCP(0, Site(Health()), interface="127.0.0.1")
    try:
        server = FakeServer("127.0.0.1", port_of(listening))
        env = environment(reactor)
        healthy = http_get_check_factory.build({"path": "/health", "body": "ok"}, env)
        sick = http_get_check_factory.build({"path": "/sick"}, env)
        up = await healthy.check(server, 5.0)
        down = await sick.check(server, 5.0)
    finally:
        await listening.stopListening()
    assert (up.up, up.reason) == (True, "status 200, body has 'ok'")
    assert 0 <= up.latency < 5.0
    assert (down.up, down.reason) == (False, "status 503, expected 200-399")


@on_reactor
async def test_tcp_over_the_network(reactor: Any) -> None:
    """tcp is up on a listening port (by address and by name), refused once closed."""
    listening = reactor.listenTCP(0, Site(Health()), interface="127.0.0.1")
    port = port_of(listening)
    check = tcp_check_factory.build({}, environment(reactor))
    try:
        up = await check.check(FakeServer("127.0.0.1", port), 5.0)
        by_name = await check.check(FakeServer("localhost", port), 5.0)
    finally:
        await listening.stopListening()
    refused = await check.check(FakeServer("127.0.0.1", port), 5.0)
    assert (up.up, up.reason) == (True, "connected")
    assert (by_name.up, by_name.reason) == (True, "connected")
    assert (refused.up, refused.reason) == (False, "connection refused")


@on_reactor
async def test_a_silent_server_times_out_and_is_hung_up_on(reactor: Any) -> None:
    """A server that never answers is down at the timeout and is hung up on."""
    gone: Deferred[None] = Deferred()
    listening = reactor.listenTCP(0, SilentFactory(gone), interface="127.0.0.1")
    check = http_get_check_factory.build({}, environment(reactor))
    try:
        result = await check.check(FakeServer("127.0.0.1", port_of(listening)), 0.1)
        await gone
    finally:
        await listening.stopListening()
    assert result == HealthResult(False, "timed out after 0.1s", result.latency)
    assert result.latency >= 0.1


@on_reactor
async def test_http_get_verifies_tls(reactor: Any) -> None:
    """An https server is probed over TLS, and an untrusted certificate is down."""
    listening = reactor.listenSSL(
        0, Site(Health()), SelfSigned(), interface="127.0.0.1"
    )
    check = http_get_check_factory.build({}, environment(reactor))
    try:
        server = FakeServer("localhost", port_of(listening), tls=True)
        result = await check.check(server, 5.0)
    finally:
        await listening.stopListening()
    assert (result.up, result.reason) == (
        False,
        "TLS failed: certificate verify failed",
    )
