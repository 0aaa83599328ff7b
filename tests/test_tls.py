"""
Tests for edgeproxy.tls: the tls_* keys, certificate checks, SNI, versions, ALPN.

Handshakes run in memory: a Python ``ssl`` client (``SSLObject`` over memory
BIOs) talks to the ``TLSMemoryBIOFactory`` of :func:`tls_server_factory` on a
``StringTransport``, with a ``MemoryReactorClock`` as its clock.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface.verify import verifyObject

from edgeproxy.config.loader import parse_config
from edgeproxy.errors import ConfigError
from edgeproxy.http.listener import http_listener_factory
from edgeproxy.http.server import HTTPServerFactory
from edgeproxy.tls import (
    DEFAULT_CIPHERS,
    CertificateFiles,
    CertificateIndex,
    TLSServerSettings,
    TLSTermination,
    certificate_problems,
    load_certificate,
    parse_certificate_files,
    parse_tls_ciphers,
    parse_tls_min_version,
    tls_server_factory,
)
from tests.http.test_proxy import ProxyHarness, make_config
from tests.integration.certs import Authority, dns_names, self_signed

# --- certificates ----------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """The test CA and the PEM files of the certificates served in these tests."""

    authority: Authority
    site_a: CertificateFiles  # a.example, www.a.example: chain and key in one file
    site_b: CertificateFiles  # b.example: chain and key in two files
    wildcard: CertificateFiles  # *.wild.example
    directory: Path

    def ca_pem(self) -> str:
        """The CA certificate, for a client's trust store."""
        return self.authority.certificate_pem().decode("ascii")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Certificates made once for the module, signed by a throwaway CA."""
    directory = tmp_path_factory.mktemp("certs")
    authority = Authority()
    site_a = authority.issue(["a.example", "www.a.example"]).write(directory / "a.pem")
    chain_b, key_b = authority.issue(["b.example"]).write_pair(
        directory / "b.crt", directory / "b.key"
    )
    wildcard = authority.issue(["*.wild.example"]).write(directory / "wild.pem")
    return Certificates(
        authority,
        CertificateFiles(str(site_a), str(site_a)),
        CertificateFiles(str(chain_b), str(key_b)),
        CertificateFiles(str(wildcard), str(wildcard)),
        directory,
    )


# --- an in-memory client ---------------------------------------------------------


class EchoProtocol(Protocol):
    """Writes back what it receives: the application behind TLS in most tests."""

    def dataReceived(self, data: bytes) -> None:
        """Echo ``data``."""
        assert self.transport is not None
        self.transport.write(data)


class MemoryTLSClient:
    """A Python ``ssl`` client joined to one server connection through memory."""

    def __init__(
        self,
        factory: IProtocolFactory,
        clock: MemoryReactorClock,
        context: ssl.SSLContext,
        server_name: str | None,
    ) -> None:
        self.clock = clock
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", "192.0.2.7", 40000)
        )
        protocol = factory.buildProtocol(self.transport.getPeer())
        assert protocol is not None
        self.server: IProtocol = protocol
        self.server.makeConnection(self.transport)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_name
        )

    def _exchange(self) -> bool:
        """Carry bytes both ways once; whether any moved."""
        self.clock.advance(0)
        moved = False
        if sent := self._outgoing.read():
            self.server.dataReceived(sent)
            self.clock.advance(0)
            moved = True
        if received := self.transport.value():
            self.transport.clear()
            self._incoming.write(received)
            moved = True
        if not moved and self.transport.disconnecting and not self._incoming.eof:
            self._incoming.write_eof()
            moved = True
        return moved

    def handshake(self) -> None:
        """Complete the handshake; raises ``ssl.SSLError`` when it is refused."""
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                if not self._exchange():
                    raise AssertionError("the handshake stalled") from None
            else:
                self._exchange()
                return

    def request(self, data: bytes) -> bytes:
        """Send ``data`` over TLS and return what comes back, decrypted."""
        self.tls.write(data)
        return self.receive()

    def receive(self) -> bytes:
        """What the server sent since the last call, decrypted."""
        received = bytearray()
        while True:
            try:
                received += self.tls.read(65536)
            except ssl.SSLWantReadError:
                if not self._exchange():
                    return bytes(received)
            except ssl.SSLZeroReturnError:
                return bytes(received)

    def peer_names(self) -> list[str]:
        """The DNS names of the certificate the server sent."""
        der = self.tls.getpeercert(binary_form=True)
        assert der is not None
        return dns_names(x509.load_der_x509_certificate(der))


def verifying_client(certs: Certificates) -> ssl.SSLContext:
    """A client that trusts the test CA and checks the name it asks for."""
    return ssl.create_default_context(cadata=certs.ca_pem())


def unverifying_client() -> ssl.SSLContext:
    """A client that takes any certificate (to see which one is sent)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def legacy_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that speaks only TLS ``version`` (1.0 or 1.1), weak ciphers allowed."""
    context = unverifying_client()
    # The ssl module deprecates naming TLS 1.0 and 1.1; naming them is the test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def only_version(version: ssl.TLSVersion) -> ssl.SSLContext:
    """An unverifying client that speaks only TLS ``version`` (1.2 or 1.3)."""
    context = unverifying_client()
    context.minimum_version = version
    context.maximum_version = version
    return context


def connect(
    settings: TLSServerSettings,
    context: ssl.SSLContext,
    server_name: str | None,
    wrapped: Factory | None = None,
    clock: MemoryReactorClock | None = None,
) -> MemoryTLSClient:
    """A client connected (not yet shaken hands) to a TLS echo server or ``wrapped``."""
    clock = clock or MemoryReactorClock()
    factory = tls_server_factory(
        settings, wrapped or Factory.forProtocol(EchoProtocol), clock
    )
    return MemoryTLSClient(factory, clock, context, server_name)


def served(certs: Certificates) -> TLSServerSettings:
    """Settings serving site_a (the default), site_b and the wildcard."""
    return TLSServerSettings((certs.site_a, certs.site_b, certs.wildcard))


# --- the configuration keys ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site.pem", (CertificateFiles("site.pem", "site.pem"),)),
        (
            "/etc/a.pem, /etc/b.crt:/etc/b.key",
            (
                CertificateFiles("/etc/a.pem", "/etc/a.pem"),
                CertificateFiles("/etc/b.crt", "/etc/b.key"),
            ),
        ),
        (" b.crt : b.key ", (CertificateFiles("b.crt", "b.key"),)),
    ],
)
def test_tls_certificates_lists_chain_files_and_optional_key_files(
    text: str, expected: tuple[CertificateFiles, ...]
) -> None:
    """Each item is CHAIN (key inside) or CHAIN:KEY."""
    assert parse_certificate_files(text) == expected


@pytest.mark.parametrize("text", ["a.pem:b.key:c", "a.pem:", ":a.key"])
def test_tls_certificates_refuses_malformed_items(text: str) -> None:
    """An item with an empty side or two colons is a config error."""
    with pytest.raises(ValueError, match=r"CHAIN\.pem:KEY\.pem"):
        parse_certificate_files(text)


def test_certificate_files_print_as_written() -> None:
    """A problem names an item the way the user wrote it."""
    assert [str(f) for f in parse_certificate_files("a.pem, b.crt:b.key")] == [
        "a.pem",
        "b.crt:b.key",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.2", "1.2"), ("1.3", "1.3"), (" TLSv1.3 ", "1.3"), ("tls1.2", "1.2")],
)
def test_tls_min_version_accepts_1_2_and_1_3(text: str, expected: str) -> None:
    """tls_min_version takes 1.2 or 1.3, with or without a TLSv prefix."""
    assert parse_tls_min_version(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.0", "TLS 1.0 is refused"),
        ("1.1", "TLS 1.1 is refused"),
        ("2", "not a TLS version"),
        ("", "not a TLS version"),
    ],
)
def test_tls_min_version_refuses_old_and_unknown_versions(
    text: str, message: str
) -> None:
    """TLS 1.0 and 1.1 cannot be allowed; other values are not versions."""
    with pytest.raises(ValueError, match=message):
        parse_tls_min_version(text)


def test_tls_ciphers_keeps_a_string_that_selects_ciphers() -> None:
    """A cipher string OpenSSL understands is kept; an empty one means the default."""
    assert parse_tls_ciphers(" ECDHE+AESGCM ") == "ECDHE+AESGCM"
    assert parse_tls_ciphers(DEFAULT_CIPHERS) == DEFAULT_CIPHERS
    assert parse_tls_ciphers("") is None


@pytest.mark.parametrize("text", ["NO-SUCH-CIPHER", "TLS_AES_128_GCM_SHA256"])
def test_tls_ciphers_refuses_a_string_that_selects_none(text: str) -> None:
    """A string selecting no TLS 1.2 cipher (or only 1.3 suites) is a config error."""
    with pytest.raises(ValueError, match=r"selects no TLS 1\.2 cipher"):
        parse_tls_ciphers(text)


# --- certificate checks ----------------------------------------------------------


def test_good_certificates_have_no_problems(certs: Certificates) -> None:
    """A combined file and a chain:key pair are both servable, with their names."""
    assert certificate_problems([certs.site_a, certs.site_b, certs.wildcard]) == []
    assert load_certificate(certs.site_a).names == ("a.example", "www.a.example")
    assert load_certificate(certs.wildcard).names == ("*.wild.example",)


def _broken_files(certs: Certificates, case: str) -> CertificateFiles:
    """The files of one broken case, written into the module's directory."""
    directory = certs.directory
    leaf = certs.authority.issue([f"{case}.example"])
    other = certs.authority.issue(["other.example"])
    chain = directory / f"{case}.crt"
    key = directory / f"{case}.key"
    if case == "missing":
        return CertificateFiles(str(directory / "absent.pem"), str(key))
    if case == "missing_key":
        leaf.write_pair(chain, key)
        key.unlink()
    elif case == "no_certificate":
        chain.write_bytes(leaf.key_pem())
        return CertificateFiles(str(chain), str(chain))
    elif case == "no_key":
        chain.write_bytes(leaf.chain_pem())
        return CertificateFiles(str(chain), str(chain))
    elif case == "key_file_without_key":
        chain.write_bytes(leaf.chain_pem())
        key.write_bytes(leaf.chain_pem())
    elif case == "mismatch":
        chain.write_bytes(leaf.chain_pem())
        key.write_bytes(other.key_pem())
    elif case == "no_dns_name":
        certs.authority.issue([], common_name="nameless.example").write_pair(chain, key)
    elif case == "encrypted":
        chain.write_bytes(leaf.chain_pem())
        key.write_bytes(
            leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    elif case == "garbage_certificate":
        chain.write_bytes(
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
            b"-----END CERTIFICATE-----\n"
        )
        key.write_bytes(leaf.key_pem())
    return CertificateFiles(str(chain), str(key))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"cannot read .*absent\.pem: No such file"),
        ("missing_key", r"cannot read .*missing_key\.key"),
        ("no_certificate", r"no_certificate\.crt holds no PEM certificate"),
        ("no_key", r"no_key\.crt holds no PEM private key \(or write CHAIN"),
        ("key_file_without_key", r"key_file_without_key\.key holds no PEM private"),
        ("mismatch", r"the private key in .*mismatch\.key does not match"),
        ("no_dns_name", r"no_dns_name\.crt names no DNS host"),
        ("encrypted", r"encrypted\.key is encrypted"),
        ("garbage_certificate", r"garbage_certificate\.crt: a certificate cannot"),
    ],
)
def test_each_unservable_certificate_is_one_clear_problem(
    certs: Certificates, case: str, message: str
) -> None:
    """Unreadable files, missing or wrong keys, no DNS name: one message each."""
    broken = _broken_files(certs, case)
    problems = certificate_problems([certs.site_a, broken, certs.site_b])
    assert len(problems) == 1
    assert re.search(message, problems[0]), problems[0]


def test_a_termination_with_an_unservable_certificate_cannot_be_built(
    certs: Certificates,
) -> None:
    """Building the TLS side fails with the same message the check gives."""
    broken = _broken_files(certs, "mismatch")
    with pytest.raises(ValueError, match="does not match"):
        TLSTermination(TLSServerSettings((certs.site_a, broken)))


def test_termination_is_a_server_connection_creator(certs: Certificates) -> None:
    """TLSMemoryBIOFactory gets connections from it as from CertificateOptions."""
    termination = TLSTermination(served(certs))
    assert verifyObject(IOpenSSLServerConnectionCreator, termination)


# --- choosing a certificate ------------------------------------------------------

NAMES: Sequence[Sequence[str]] = (
    ["default.example"],
    ["*.example.com", "shop.example.org"],
    ["api.example.com"],
    ["*.example.com", "second.example"],
    ["SHOP.example.org"],
)


@pytest.mark.parametrize(
    ("server_name", "index"),
    [
        ("api.example.com", 2),  # exact beats a wildcard listed before it
        ("www.example.com", 1),  # first wildcard listed wins
        ("WWW.Example.COM.", 1),  # no case, no trailing dot
        ("a.b.example.com", 0),  # a wildcard covers one label only
        ("example.com", 0),  # nor the name it is under
        ("shop.example.org", 1),  # first exact listed wins
        ("second.example", 3),
        ("unknown.example", 0),
        ("", 0),
        (None, 0),
        ("localhost", 0),
    ],
)
def test_certificate_index_prefers_exact_then_one_label_wildcards(
    server_name: str | None, index: int
) -> None:
    """SNI picks exact names, then *.wildcards; the first certificate is the default."""
    assert CertificateIndex(NAMES).choose(server_name) == index


# --- handshakes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "names"),
    [
        ("a.example", ["a.example", "www.a.example"]),
        ("www.a.example", ["a.example", "www.a.example"]),
        ("b.example", ["b.example"]),
        ("shop.wild.example", ["*.wild.example"]),
    ],
)
def test_sni_picks_the_certificate_that_names_the_host(
    certs: Certificates, server_name: str, names: list[str]
) -> None:
    """A verifying client gets, and accepts, the certificate for the name it sent."""
    client = connect(served(certs), verifying_client(certs), server_name)
    client.handshake()
    assert client.peer_names() == names


@pytest.mark.parametrize("server_name", [None, "unknown.example", "a.b.wild.example"])
def test_no_or_unknown_sni_gets_the_first_certificate(
    certs: Certificates, server_name: str | None
) -> None:
    """Without SNI, or with a name no certificate covers, the first one is sent."""
    client = connect(served(certs), unverifying_client(), server_name)
    client.handshake()
    assert client.peer_names() == ["a.example", "www.a.example"]


def test_data_flows_both_ways_after_the_handshake(certs: Certificates) -> None:
    """The wrapped protocol receives the decrypted bytes and its answer arrives."""
    client = connect(served(certs), verifying_client(certs), "b.example")
    client.handshake()
    assert client.request(b"hello over TLS") == b"hello over TLS"


def test_the_legacy_client_can_speak_tls_1_1(certs: Certificates) -> None:
    """Control: the TLS 1.1 client of the next test works with a server allowing it."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_context.minimum_version = ssl.TLSVersion.TLSv1
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_context.load_cert_chain(certs.site_a.chain)
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    outgoing, incoming = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = legacy_client(ssl.TLSVersion.TLSv1_1).wrap_bio(incoming, outgoing)
    for _ in range(10):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        to_server.write(outgoing.read())
        incoming.write(to_client.read())
    assert client.version() == "TLSv1.1"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
@pytest.mark.parametrize("ciphers", [None, "ALL:@SECLEVEL=0"])
def test_tls_1_0_and_1_1_clients_are_refused(
    certs: Certificates, version: ssl.TLSVersion, ciphers: str | None
) -> None:
    """The default floor is TLS 1.2: older clients fail, whatever the ciphers."""
    settings = TLSServerSettings((certs.site_a,), ciphers=ciphers)
    client = connect(settings, legacy_client(version), "a.example")
    with pytest.raises(ssl.SSLError):
        client.handshake()
    assert client.transport.disconnecting


@pytest.mark.parametrize(
    ("min_version", "client_version", "accepted"),
    [
        ("1.2", ssl.TLSVersion.TLSv1_2, True),
        ("1.2", ssl.TLSVersion.TLSv1_3, True),
        ("1.3", ssl.TLSVersion.TLSv1_2, False),
        ("1.3", ssl.TLSVersion.TLSv1_3, True),
    ],
)
def test_tls_min_version_sets_the_floor(
    certs: Certificates,
    min_version: str,
    client_version: ssl.TLSVersion,
    accepted: bool,
) -> None:
    """1.2 takes 1.2 and 1.3 clients; 1.3 refuses 1.2 clients."""
    settings = TLSServerSettings((certs.site_a,), min_version=min_version)
    client = connect(settings, only_version(client_version), "a.example")
    if not accepted:
        with pytest.raises(ssl.SSLError):
            client.handshake()
        return
    client.handshake()
    assert client.tls.version() == client_version.name.replace("_", ".")


def test_sni_switch_keeps_the_version_floor(certs: Certificates) -> None:
    """A certificate chosen by SNI refuses old versions too, not only the default."""
    settings = TLSServerSettings((certs.site_a, certs.site_b), min_version="1.3")
    client = connect(settings, only_version(ssl.TLSVersion.TLSv1_2), "b.example")
    with pytest.raises(ssl.SSLError):
        client.handshake()


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (["h2", "http/1.1"], "http/1.1"),
        (["http/1.1"], "http/1.1"),
        (["h2"], None),
        ([], None),
    ],
)
def test_alpn_agrees_to_http_1_1_only(
    certs: Certificates, offered: list[str], selected: str | None
) -> None:
    """ALPN selects http/1.1; a client offering only h2 goes on without ALPN."""
    context = verifying_client(certs)
    if offered:
        context.set_alpn_protocols(offered)
    client = connect(served(certs), context, "b.example")
    client.handshake()
    assert client.tls.selected_alpn_protocol() == selected


@pytest.mark.parametrize(
    ("client_cipher", "accepted"),
    [
        ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
        ("ECDHE-ECDSA-AES128-GCM-SHA256", False),
    ],
)
def test_tls_ciphers_limits_tls_1_2_ciphers(
    certs: Certificates, client_cipher: str, accepted: bool
) -> None:
    """With tls_ciphers, a TLS 1.2 client offering none of them is refused."""
    settings = TLSServerSettings((certs.site_a,), ciphers="ECDHE+CHACHA20")
    context = only_version(ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(client_cipher)
    client = connect(settings, context, "a.example")
    if not accepted:
        with pytest.raises(ssl.SSLError):
            client.handshake()
        return
    client.handshake()
    cipher = client.tls.cipher()
    assert cipher is not None
    assert cipher[0] == client_cipher


@pytest.mark.parametrize(
    "client_cipher", ["AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"]
)
def test_default_ciphers_refuse_static_rsa_and_cbc(
    certs: Certificates, client_cipher: str
) -> None:
    """By default a TLS 1.2 client must offer a forward-secret AEAD cipher."""
    context = only_version(ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(client_cipher)
    client = connect(served(certs), context, "a.example")
    with pytest.raises(ssl.SSLError):
        client.handshake()


def test_a_self_signed_certificate_is_servable(tmp_path: Path) -> None:
    """A certificate without a CA (a test setup) is served as any other."""
    path = self_signed(["self.example"]).write(tmp_path / "self.pem")
    files = CertificateFiles(str(path), str(path))
    client = connect(TLSServerSettings((files,)), unverifying_client(), "x.example")
    client.handshake()
    assert client.peer_names() == ["self.example"]


# --- behind an http listener -----------------------------------------------------


def test_http_request_over_tls_reaches_the_upstream_as_https(
    certs: Certificates,
) -> None:
    """An HTTP listener behind TLS proxies the request with X-Forwarded-Proto: https."""
    proxy = ProxyHarness(scheme=b"https")
    http = HTTPServerFactory(proxy.reactor, proxy.handler)
    client = connect(
        served(certs), verifying_client(certs), "a.example", http, proxy.reactor
    )
    client.handshake()
    assert client.request(b"GET /page HTTP/1.1\r\nHost: a.example\r\n\r\n") == b""
    upstream = proxy.upstreams.accept()
    sent = upstream.received()
    assert sent.startswith(b"GET /page HTTP/1.1\r\n")
    assert b"\r\nX-Forwarded-Proto: https\r\n" in sent
    assert b";proto=https;" in sent
    assert b"\r\nX-Forwarded-For: 192.0.2.7\r\n" in sent
    upstream.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    response = client.receive()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"\r\n\r\nok")


# --- the listener keys, once wired (edgeproxy/config, edgeproxy/http/listener.py) --


LISTENER = """
[listener:secure]
protocol = http
endpoint = tcp:8443
routes = site
{keys}

[route:site]
upstream = web

[upstream:web]
servers = 10.0.0.1:80
"""


def problems_of(text: str) -> list[tuple[str, str, str]]:
    """Section, key and message of each problem the loader finds in ``text``."""
    try:
        parse_config(text)
    except ConfigError as error:
        return [(p.section, p.key, p.message) for p in error.problems]
    return []


def test_listener_keys_reach_the_config(certs: Certificates) -> None:
    """tls_certificates, tls_min_version and tls_ciphers become listener fields."""
    keys = (
        f"tls_certificates = {certs.site_a}, {certs.site_b}\n"
        "tls_min_version = 1.3\ntls_ciphers = ECDHE+AESGCM"
    )
    listener = parse_config(LISTENER.format(keys=keys)).listeners["secure"]
    assert getattr(listener, "tls_certificates", None) == (
        certs.site_a,
        certs.site_b,
    )
    assert getattr(listener, "tls_min_version", None) == "1.3"
    assert getattr(listener, "tls_ciphers", None) == "ECDHE+AESGCM"


def test_loader_reports_unservable_certificates_by_section_and_key(
    certs: Certificates,
) -> None:
    """Each certificate that cannot be served is a problem of tls_certificates."""
    mismatch = _broken_files(certs, "mismatch")
    keys = f"tls_certificates = {certs.site_a}, {mismatch}, {certs.directory}/x.pem"
    found = problems_of(LISTENER.format(keys=keys))
    assert [(section, key) for section, key, _ in found] == [
        ("listener:secure", "tls_certificates"),
        ("listener:secure", "tls_certificates"),
    ]
    assert "does not match" in found[0][2]
    assert "cannot read" in found[1][2]


@pytest.mark.parametrize(
    ("keys", "key", "message"),
    [
        ("tls_min_version = 1.3", "tls_min_version", "needs tls_certificates"),
        ("tls_ciphers = ECDHE+AESGCM", "tls_ciphers", "needs tls_certificates"),
        ("tls_min_version = 1.1", "tls_min_version", "TLS 1.1 is refused"),
    ],
)
def test_loader_refuses_tls_options_alone_or_weak(
    keys: str, key: str, message: str
) -> None:
    """TLS options without tls_certificates, or TLS 1.1, are config errors."""
    found = problems_of(LISTENER.format(keys=keys))
    assert [(s, k) for s, k, _ in found] == [("listener:secure", key)]
    assert message in found[0][2]


def test_loader_refuses_certificates_on_an_ssl_endpoint(certs: Certificates) -> None:
    """edgeproxy's own TLS and an ssl: endpoint cannot be stacked."""
    text = LISTENER.format(keys=f"tls_certificates = {certs.site_a}").replace(
        "endpoint = tcp:8443",
        f"endpoint = ssl:8443:privateKey={certs.site_a.key}",
    )
    found = problems_of(text)
    assert [(s, k) for s, k, _ in found] == [("listener:secure", "endpoint")]


def test_listener_factory_terminates_tls_and_forwards_https(
    certs: Certificates,
) -> None:
    """A listener with tls_certificates speaks TLS and tells the upstream https."""
    config = make_config().replace(
        "endpoint = tcp:8080",
        f"endpoint = tcp:8080\ntls_certificates = {certs.site_a}, {certs.site_b}",
    )
    proxy = ProxyHarness(config)
    listener = proxy.holder.current.config.listeners["web"]
    factory = http_listener_factory(
        proxy.holder, listener, proxy.reactor, proxy.connections
    )
    client = MemoryTLSClient(
        factory, proxy.reactor, verifying_client(certs), "b.example"
    )
    client.handshake()
    assert client.peer_names() == ["b.example"]
    client.request(b"GET /page HTTP/1.1\r\nHost: b.example\r\n\r\n")
    assert b"\r\nX-Forwarded-Proto: https\r\n" in proxy.upstreams.accept().received()
