"""
TLS as a user runs it: edgeproxy terminating TLS for clients, and verifying
``https://`` origins.

Certificates are made at test time by a throwaway CA (tests/integration/certs.py).
Clients are Python's ``ssl`` module over the raw client of http_client.py; the
https origins are servers/tls_origin.py (twisted.web on an ``ssl:`` endpoint),
which report the SNI they were sent.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.integration.certs import Authority, Leaf, dns_names, self_signed
from tests.integration.conftest import (
    EdgeproxyProcess,
    free_port,
    run_twistd,
    stop,
    wait_for_port,
)
from tests.integration.http_client import (
    TIMEOUT,
    ClientConnection,
    OriginProcess,
    Response,
    get,
    request_bytes,
)

TLS_ORIGIN = Path(__file__).resolve().parent / "servers" / "tls_origin.py"


# --- certificates and origins ----------------------------------------------------


@dataclass(frozen=True)
class PKI:
    """A throwaway CA, its PEM file, and where the tests write certificates."""

    authority: Authority
    ca_file: Path
    directory: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The module's CA."""
    directory = tmp_path_factory.mktemp("pki")
    authority = Authority()
    return PKI(authority, authority.write(directory / "ca.pem"), directory)


class TLSOrigin:
    """A running servers/tls_origin.py with a given certificate."""

    def __init__(self, name: str, leaf: Leaf, directory: Path) -> None:
        self.name = name
        self.port = free_port()
        chain, key = leaf.write_pair(
            directory / f"{name}.crt", directory / f"{name}.key"
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(TLS_ORIGIN),
                str(self.port),
                str(chain),
                str(key),
                name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.process)
        except AssertionError:
            stop(self.process)
            raise

    def stop(self) -> None:
        """End the process."""
        stop(self.process)


@pytest.fixture(scope="module")
def tls_origins(pki: PKI) -> Iterator[dict[str, TLSOrigin]]:
    """
    Three https origins: ``localhost`` (CA-signed for localhost), ``renamed``
    (CA-signed for origin.test only) and ``selfsigned`` (localhost, no CA).
    """
    started: dict[str, TLSOrigin] = {}
    leaves = {
        "localhost": pki.authority.issue(["localhost"]),
        "renamed": pki.authority.issue(["origin.test"]),
        "selfsigned": self_signed(["localhost"]),
    }
    try:
        for name, leaf in leaves.items():
            started[name] = TLSOrigin(name, leaf, pki.directory)
        yield started
    finally:
        for origin in started.values():
            origin.stop()


# --- edgeproxy as an https client ------------------------------------------------

UPSTREAM_ROUTE = """
[route:{name}]
host = {name}.test
upstream = {name}

[upstream:{name}]
servers = https://localhost:{port}{server_options}
retries = 0
max_fails = 0
{keys}
"""

# name -> (origin, server options, upstream keys)
UPSTREAM_CASES = {
    "trusted": ("localhost", "", "tls_ca_file = {ca}"),
    "system_roots": ("localhost", "", ""),
    "wrong_name": ("renamed", "", "tls_ca_file = {ca}"),
    "server_name": ("renamed", " server_name=origin.test", "tls_ca_file = {ca}"),
    "unverified": ("selfsigned", "", "tls_verify = no"),
    "self_signed_verified": ("selfsigned", "", "tls_ca_file = {ca}"),
}


@pytest.fixture(scope="module")
def client_side(
    pki: PKI,
    tls_origins: dict[str, TLSOrigin],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, EdgeproxyProcess]]:
    """An edgeproxy whose plain listener routes ``NAME.test`` to each upstream case."""
    port = free_port()
    text = f"""
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = {", ".join(UPSTREAM_CASES)}
"""
    for name, (origin, server_options, keys) in UPSTREAM_CASES.items():
        text += UPSTREAM_ROUTE.format(
            name=name,
            port=tls_origins[origin].port,
            server_options=server_options,
            keys=keys.format(ca=pki.ca_file),
        )
    config = tmp_path_factory.mktemp("client-side") / "edgeproxy.ini"
    config.write_text(text)
    process = EdgeproxyProcess(config, port)
    try:
        yield port, process
    finally:
        process.stop()


def via_edgeproxy(client_side: tuple[int, EdgeproxyProcess], case: str) -> Response:
    """A GET through edgeproxy to the upstream of ``case``."""
    port, _ = client_side
    return get(port, b"/hello", host=f"{case}.test".encode())


def test_an_origin_signed_by_tls_ca_file_is_reached(
    client_side: tuple[int, EdgeproxyProcess],
) -> None:
    """An https origin with a CA-signed certificate for its name answers through."""
    response = via_edgeproxy(client_side, "trusted")
    assert response.status == 200
    assert response.json()["server"] == "localhost"
    assert response.json()["path"] == "/hello"


def test_the_origin_sees_the_server_name_as_sni(
    client_side: tuple[int, EdgeproxyProcess],
) -> None:
    """edgeproxy sends the server's host name as SNI."""
    assert via_edgeproxy(client_side, "trusted").json()["sni"] == "localhost"


@pytest.mark.parametrize(
    "case",
    [
        "system_roots",  # the test CA is not in the system's trust store
        "wrong_name",  # the certificate names origin.test, not localhost
        "self_signed_verified",  # no CA signed it
    ],
)
def test_an_origin_that_fails_verification_is_a_502(
    client_side: tuple[int, EdgeproxyProcess], case: str
) -> None:
    """An untrusted or misnamed origin certificate is refused: 502, nothing served."""
    response = via_edgeproxy(client_side, case)
    assert response.status == 502
    assert b"localhost" not in response.body


def test_server_name_verifies_and_sends_another_name(
    client_side: tuple[int, EdgeproxyProcess],
) -> None:
    """server_name= makes edgeproxy verify, and send as SNI, the name it gives."""
    response = via_edgeproxy(client_side, "server_name")
    assert response.status == 200
    assert response.json()["server"] == "renamed"
    assert response.json()["sni"] == "origin.test"


def test_tls_verify_no_reaches_a_self_signed_origin(
    client_side: tuple[int, EdgeproxyProcess],
) -> None:
    """tls_verify = no takes any certificate, and still sends SNI."""
    response = via_edgeproxy(client_side, "unverified")
    assert response.status == 200
    assert response.json()["server"] == "selfsigned"
    assert response.json()["sni"] == "localhost"


def test_tls_verify_no_is_logged_as_a_warning_at_startup(
    client_side: tuple[int, EdgeproxyProcess],
) -> None:
    """An upstream that does not verify its servers is named in a startup warning."""
    _, process = client_side
    lines = process.log_text().splitlines()
    warned = [line for line in lines if "#warn]" in line]
    assert any("upstream:unverified: tls_verify = no" in w for w in warned), lines
    assert not any("upstream:trusted" in w for w in warned)


# --- edgeproxy terminating TLS ---------------------------------------------------


class TLSClientConnection(ClientConnection):
    """The raw HTTP client of http_client.py, over TLS."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext,
        server_name: str | None,
        timeout: float = TIMEOUT,
    ) -> None:
        super().__init__(port, timeout)
        self.socket = context.wrap_socket(self.socket, server_hostname=server_name)

    def __enter__(self) -> TLSClientConnection:
        return self

    @property
    def tls(self) -> ssl.SSLSocket:
        """The TLS socket."""
        assert isinstance(self.socket, ssl.SSLSocket)
        return self.socket

    def peer_names(self) -> list[str]:
        """The DNS names of the certificate edgeproxy sent."""
        der = self.tls.getpeercert(binary_form=True)
        assert der is not None
        return dns_names(x509.load_der_x509_certificate(der))


def unverifying() -> ssl.SSLContext:
    """A client context that takes any certificate (to see which one is sent)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def speaking_only(version: ssl.TLSVersion) -> ssl.SSLContext:
    """An unverifying client context limited to TLS ``version``."""
    context = unverifying()
    # The ssl module deprecates naming TLS 1.0 and 1.1; naming them is the test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@dataclass(frozen=True)
class Terminating:
    """An edgeproxy terminating TLS on two listeners, and the origin behind it."""

    port: int  # tls_certificates = a.pem, b.crt:b.key, wild.pem
    strict_port: int  # the same with tls_min_version = 1.3
    origin: OriginProcess


@pytest.fixture(scope="module")
def certificate_files(pki: PKI) -> str:
    """The tls_certificates value: a combined file, a chain:key pair, a wildcard."""
    directory = pki.directory
    site_a = pki.authority.issue(["a.example", "www.a.example"])
    site_b = pki.authority.issue(["b.example"])
    wildcard = pki.authority.issue(["*.wild.example"])
    a_pem = site_a.write(directory / "a.pem")
    b_chain, b_key = site_b.write_pair(directory / "b.crt", directory / "b.key")
    wild_pem = wildcard.write(directory / "wild.pem")
    return f"{a_pem}, {b_chain}:{b_key}, {wild_pem}"


@pytest.fixture(scope="module")
def terminating(
    certificate_files: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Terminating]:
    """edgeproxy with two TLS listeners before one plain origin."""
    directory = tmp_path_factory.mktemp("terminating")
    origin = OriginProcess("plain", directory / "origin.log")
    port, strict_port = free_port(), free_port()
    config = directory / "edgeproxy.ini"
    config.write_text(
        f"""
[listener:secure]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = site
tls_certificates = {certificate_files}

[listener:strict]
protocol = http
endpoint = tcp:{strict_port}:interface=127.0.0.1
routes = site
tls_certificates = {certificate_files}
tls_min_version = 1.3

[route:site]
path_prefix = /
upstream = plain

[upstream:plain]
servers = {origin.address}
"""
    )
    try:
        process = EdgeproxyProcess(config, port)
    except AssertionError:
        origin.stop()
        raise
    try:
        wait_for_port(strict_port, process.process)
        yield Terminating(port, strict_port, origin)
    finally:
        process.stop()
        origin.stop()


def echo_over_tls(
    port: int, context: ssl.SSLContext, server_name: str | None, host: bytes
) -> tuple[list[str], Any]:
    """The certificate names sent and the origin's echo of one GET over TLS."""
    with TLSClientConnection(port, context, server_name) as connection:
        connection.send(request_bytes(b"GET", b"/echo", host))
        response = connection.read_response()
        assert response.status == 200, response
        return connection.peer_names(), response.json()


@pytest.mark.parametrize(
    ("server_name", "names"),
    [
        ("a.example", ["a.example", "www.a.example"]),
        ("www.a.example", ["a.example", "www.a.example"]),
        ("b.example", ["b.example"]),
        ("api.wild.example", ["*.wild.example"]),
    ],
)
def test_sni_picks_the_certificate(
    terminating: Terminating, pki: PKI, server_name: str, names: list[str]
) -> None:
    """A verifying client gets the certificate for the name it sends, and proxies."""
    peer, echo = echo_over_tls(
        terminating.port, pki.context(), server_name, server_name.encode()
    )
    assert peer == names
    assert echo["server"] == "plain"


def test_without_sni_the_first_certificate_is_sent(terminating: Terminating) -> None:
    """A client that sends no server name gets the first certificate listed."""
    peer, _ = echo_over_tls(terminating.port, unverifying(), None, b"a.example")
    assert peer == ["a.example", "www.a.example"]


def test_the_request_reaches_the_upstream_as_https(
    terminating: Terminating, pki: PKI
) -> None:
    """The origin is told the client came over https (X-Forwarded-Proto, Forwarded)."""
    _, echo = echo_over_tls(terminating.port, pki.context(), "b.example", b"b.example")
    headers = {name.lower(): value for name, value in echo["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    assert "proto=https" in headers["forwarded"]
    assert headers["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["1.0", "1.1"]
)
def test_tls_1_0_and_1_1_clients_are_refused(
    terminating: Terminating, version: ssl.TLSVersion
) -> None:
    """The default floor is TLS 1.2: an older client's handshake fails."""
    with pytest.raises(ssl.SSLError):
        TLSClientConnection(terminating.port, speaking_only(version), "a.example")


@pytest.mark.parametrize(
    ("listener", "version", "accepted"),
    [
        ("port", ssl.TLSVersion.TLSv1_2, True),
        ("port", ssl.TLSVersion.TLSv1_3, True),
        ("strict_port", ssl.TLSVersion.TLSv1_2, False),
        ("strict_port", ssl.TLSVersion.TLSv1_3, True),
    ],
    ids=["1.2-takes-1.2", "1.2-takes-1.3", "1.3-refuses-1.2", "1.3-takes-1.3"],
)
def test_tls_min_version_sets_the_floor(
    terminating: Terminating, listener: str, version: ssl.TLSVersion, accepted: bool
) -> None:
    """TLS 1.2 and 1.3 work by default; tls_min_version = 1.3 refuses 1.2."""
    port = getattr(terminating, listener)
    if not accepted:
        with pytest.raises(ssl.SSLError):
            TLSClientConnection(port, speaking_only(version), "a.example")
        return
    with TLSClientConnection(port, speaking_only(version), "a.example") as connection:
        assert connection.tls.version() == version.name.replace("_", ".")
        connection.send(request_bytes(b"GET", b"/echo", b"a.example"))
        assert connection.read_response().status == 200


def test_alpn_selects_http_1_1(terminating: Terminating, pki: PKI) -> None:
    """A client offering h2 and http/1.1 gets http/1.1."""
    context = pki.context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with TLSClientConnection(terminating.port, context, "a.example") as connection:
        assert connection.tls.selected_alpn_protocol() == "http/1.1"


def test_plain_http_to_a_tls_listener_gets_no_http_answer(
    terminating: Terminating,
) -> None:
    """Cleartext HTTP sent to a TLS listener is not served (the handshake fails)."""
    with socket.create_connection(("127.0.0.1", terminating.port), timeout=5) as raw:
        raw.sendall(request_bytes(b"GET", b"/echo", b"a.example"))
        answer = b""
        try:
            while chunk := raw.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1" not in answer
    assert b'"server": "plain"' not in answer


# --- --check -----------------------------------------------------------------------


def test_check_reports_each_unservable_certificate(pki: PKI, tmp_path: Path) -> None:
    """--check names file, section and key for each certificate that cannot serve."""
    good = pki.authority.issue(["good.example"]).write(tmp_path / "good.pem")
    nameless = pki.authority.issue([], common_name="nameless").write(
        tmp_path / "nameless.pem"
    )
    mismatch_chain = tmp_path / "mismatch.crt"
    mismatch_chain.write_bytes(pki.authority.issue(["m.example"]).chain_pem())
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pki.authority.issue(["o.example"]).key_pem())
    keyless = tmp_path / "keyless.pem"
    keyless.write_bytes(pki.authority.issue(["k.example"]).chain_pem())
    config = tmp_path / "edgeproxy.ini"
    config.write_text(
        f"""
[listener:secure]
protocol = http
endpoint = tcp:8443
routes = site
tls_certificates = {good}, {tmp_path / "absent.pem"}, {keyless},
    {mismatch_chain}:{other_key}, {nameless}

[route:site]
upstream = plain

[upstream:plain]
servers = 127.0.0.1:8080
"""
    )
    result = run_twistd("-n", "edgeproxy", "-c", str(config), "--check")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    where = f"{config}: [listener:secure] "
    expected = [
        f"{where}tls_certificates: cannot read {tmp_path / 'absent.pem'}",
        f"{where}tls_certificates: {keyless} holds no PEM private key",
        f"{where}tls_certificates: the private key in {other_key} does not match",
        f"{where}tls_certificates: the certificate in {nameless} names no DNS host",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert not any(str(good) in line for line in lines)


def test_check_refuses_tls_1_1_and_options_without_certificates(
    tmp_path: Path,
) -> None:
    """tls_min_version = 1.1 is an error; so are TLS options with no certificates."""
    config = tmp_path / "edgeproxy.ini"
    config.write_text(
        """
[listener:secure]
protocol = http
endpoint = tcp:8443
routes = site
tls_min_version = 1.1

[listener:plain]
protocol = http
endpoint = tcp:8080
routes = site
tls_ciphers = ECDHE+AESGCM

[route:site]
upstream = plain

[upstream:plain]
servers = 127.0.0.1:8080
"""
    )
    result = run_twistd("-n", "edgeproxy", "-c", str(config), "--check")
    assert result.returncode == 1
    assert f"{config}: [listener:secure] tls_min_version: TLS 1.1 is refused" in (
        result.stderr
    )
    assert f"{config}: [listener:plain] tls_ciphers: this key needs" in result.stderr
