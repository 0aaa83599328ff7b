"""
What a tcp listener adds to or takes from the byte stream, end to end.

PROXY headers written to servers (read back by Twisted's own parser in
servers/proxy_protocol_server.py), PROXY headers read from clients and
stripped, and TLS: terminated on an ``ssl:`` endpoint, passed through on a
``tcp:`` one.  Real processes on loopback; every socket operation is bounded.

Each edgeproxy here also runs its admin endpoint, and the test waits for that
port rather than probing the listener: a probe would be one more client that
the listener counts, balances and logs.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration import test_tcp_balancer
from tests.integration.conftest import EdgeproxyProcess, free_port
from tests.integration.test_tcp_balancer import StartServer, start_echo

start_server = test_tcp_balancer.start_server

PROXY_SERVER = Path(__file__).resolve().parent / "servers" / "proxy_protocol_server.py"
TIMEOUT = 10.0
"""Seconds any one socket operation may take before the test fails."""

PAYLOAD = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n" + bytes(range(256)) * 256
"""Every byte value, after a line that looks like a PROXY header but is data."""

_PIECE = 16 * 1024
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


# --- clients ------------------------------------------------------------------------


class Client:
    """
    One client connection to a listener, from ``source`` (a loopback address).

    With ``tls``, the connection does a TLS handshake for ``localhost`` first.
    """

    def __init__(
        self, port: int, source: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0)
        )
        self.socket: socket.socket = raw
        if tls is not None:
            try:
                self.socket = tls.wrap_socket(raw, server_hostname="localhost")
            except BaseException:
                raw.close()
                raise
        self.reader = self.socket.makefile("rb")

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.reader.close()
        self.socket.close()

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.socket.sendall(data)

    def read(self, size: int) -> bytes:
        """``size`` bytes, or fewer if the connection ends first."""
        return self.reader.read(size)

    def round_trip(self, payload: bytes = PAYLOAD) -> bytes:
        """Send ``payload`` piece by piece to an echo, reading each piece back."""
        echoed = []
        for start in range(0, len(payload), _PIECE):
            piece = payload[start : start + _PIECE]
            self.send(piece)
            echoed.append(self.read(len(piece)))
        return b"".join(echoed)

    def report(self, first: bytes = b"first") -> dict[str, list[Any]]:
        """Send ``first`` to servers/proxy_protocol_server.py; what its header said."""
        self.send(first)
        report: dict[str, list[Any]] = json.loads(self.reader.readline())
        assert self.read(len(first)) == first
        return report

    def wait_closed(self, within: float = 3.0) -> float:
        """Seconds until the peer closes (EOF or reset) without sending a byte."""
        started = time.monotonic()
        self.socket.settimeout(within)
        try:
            data = self.reader.read(1)
        except ConnectionResetError:
            data = b""
        except TimeoutError:
            raise AssertionError(f"the connection is open after {within} s") from None
        assert data == b"", f"got {data!r} where the connection should close"
        return time.monotonic() - started


# --- edgeproxy ----------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """A running edgeproxy: a tcp listener and the admin API, on 127.0.0.1."""

    port: int
    admin_port: int
    process: EdgeproxyProcess


StartListener = Callable[..., Listener]


def listener_config(
    admin_port: int, endpoint: str, servers: list[int], keys: dict[str, str]
) -> str:
    """A config: the admin endpoint and a tcp listener over ``servers``."""
    settings = "".join(f"{key} = {value}\n" for key, value in keys.items())
    listed = ", ".join(f"127.0.0.1:{server}" for server in servers)
    return (
        "[edgeproxy]\n"
        f"admin = tcp:{admin_port}:interface=127.0.0.1\n"
        "[listener:tcp]\n"
        "protocol = tcp\n"
        f"endpoint = {endpoint}\n"
        "upstream = backends\n"
        f"{settings}"
        "[upstream:backends]\n"
        f"servers = {listed}\n"
        "balance = round_robin\n"
        "max_fails = 1\n"
        "fail_timeout = 60s\n"
    )


@pytest.fixture
def start_listener(start_edgeproxy: Any) -> StartListener:
    """
    Start edgeproxy with a tcp listener over ``servers`` and the keys given.

    ``endpoint`` is a format string given the listener's port (default
    ``tcp:{port}:interface=127.0.0.1``); the processes end after the test.
    """

    def start(
        servers: list[int],
        endpoint: str = "tcp:{port}:interface=127.0.0.1",
        **keys: str,
    ) -> Listener:
        port, admin_port = free_port(), free_port()
        config = listener_config(admin_port, endpoint.format(port=port), servers, keys)
        return Listener(port, admin_port, start_edgeproxy(config, admin_port))

    return start


def start_proxy_protocol_server(start_server: StartServer) -> int:
    """servers/proxy_protocol_server.py on a free port."""
    port = free_port()
    start_server(sys.executable, str(PROXY_SERVER), str(port), port=port)
    return port


# --- PROXY headers, as a balancer in front writes them ------------------------------


def v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A version 1 header, written out by hand from the specification."""
    family = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    line = f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}"
    return line.encode() + b"\r\n"


def v2_header(
    source: tuple[str, int], destination: tuple[str, int], tlvs: bytes = b""
) -> bytes:
    """A version 2 PROXY/STREAM header, packed by hand from the specification."""
    source_ip = ipaddress.ip_address(source[0])
    destination_ip = ipaddress.ip_address(destination[0])
    family = 0x11 if source_ip.version == 4 else 0x21
    block = (
        source_ip.packed
        + destination_ip.packed
        + struct.pack("!HH", source[1], destination[1])
        + tlvs
    )
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(block)) + block


HEADERS = {"v1": v1_header, "v2": v2_header}
MADE_UP_SOURCE = ("203.0.113.7", 4242)
MADE_UP_DESTINATION = ("198.51.100.1", 5432)


# --- sending ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_sent_header_names_the_real_client(
    version: str, start_server: StartServer, start_listener: StartListener
) -> None:
    """send_proxy_protocol: the server's parser sees the client and the listener."""
    server = start_proxy_protocol_server(start_server)
    listener = start_listener([server], send_proxy_protocol=version)
    with Client(listener.port, source="127.0.0.2") as client:
        client_port = client.socket.getsockname()[1]
        assert client.report() == {
            "source": ["TCP", "127.0.0.2", client_port],
            "destination": ["TCP", "127.0.0.1", listener.port],
        }
        assert client.round_trip() == PAYLOAD


# --- accepting ----------------------------------------------------------------------


V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"
"""A version 2 LOCAL header: a balancer's own connection (a health check)."""

ACCEPTED_HEADERS = {
    "v1": v1_header(MADE_UP_SOURCE, MADE_UP_DESTINATION),
    "v1-tcp6": v1_header(("2001:db8::7", 4242), ("2001:db8::1", 5432)),
    "v1-unknown": b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    "v2": v2_header(MADE_UP_SOURCE, MADE_UP_DESTINATION),
    # PP2_TYPE_AUTHORITY, as a TLS-terminating balancer sends the SNI.
    "v2-tlv": v2_header(MADE_UP_SOURCE, MADE_UP_DESTINATION, b"\x02\x00\x03a.b"),
    "v2-local": V2_LOCAL,
}


def test_accepted_headers_are_stripped(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """accept_proxy_protocol: the server gets the bytes after the header, only."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([echo_port], accept_proxy_protocol="yes")
    for name, header in ACCEPTED_HEADERS.items():
        with Client(listener.port) as client:
            # Part of the header alone, then its rest with the first bytes.
            client.send(header[:7])
            time.sleep(0.05)
            client.send(header[7:] + PAYLOAD[:100])
            assert client.read(100) == PAYLOAD[:100], name
            assert client.round_trip() == PAYLOAD, name


def test_a_header_without_addresses_leaves_the_real_ones(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """v1 UNKNOWN and v2 LOCAL: the server is sent the socket's own addresses."""
    server = start_proxy_protocol_server(start_server)
    listener = start_listener(
        [server], accept_proxy_protocol="yes", send_proxy_protocol="v2"
    )
    for header in (b"PROXY UNKNOWN\r\n", V2_LOCAL):
        with Client(listener.port, source="127.0.0.2") as client:
            client.send(header)
            assert client.report() == {
                "source": ["TCP", "127.0.0.2", client.socket.getsockname()[1]],
                "destination": ["TCP", "127.0.0.1", listener.port],
            }, header


@pytest.mark.parametrize(
    ("accepted", "sent", "source", "destination"),
    [
        ("v1", "v2", MADE_UP_SOURCE, MADE_UP_DESTINATION),
        ("v2", "v1", ("2001:db8::7", 4242), ("2001:db8::1", 5432)),
    ],
)
def test_accepted_source_is_passed_on(
    accepted: str,
    sent: str,
    source: tuple[str, int],
    destination: tuple[str, int],
    start_server: StartServer,
    start_listener: StartListener,
) -> None:
    """Accept and send: the server sees the addresses of the incoming header."""
    server = start_proxy_protocol_server(start_server)
    listener = start_listener(
        [server], accept_proxy_protocol="yes", send_proxy_protocol=sent
    )
    with Client(listener.port) as client:
        client.send(HEADERS[accepted](source, destination))
        assert client.report() == {
            "source": ["TCP", *source],
            "destination": ["TCP", *destination],
        }
        assert client.round_trip() == PAYLOAD


INVALID_HEADERS = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"PROXY TCP4 203.0.113.7 198.51.100.1 4242 5432\n",
    b"PROXY TCP4 203.0.113.7 198.51.100.1 4242 99999\r\n",
    V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12),
]
"""Not a header; a bare LF; a port out of range; a version 2 header saying v1."""


def test_an_invalid_header_is_closed_at_once(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """A connection that starts with anything but a valid header is closed unserved."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([echo_port], accept_proxy_protocol="yes")
    for sent in INVALID_HEADERS:
        with Client(listener.port) as client:
            client.send(sent + b"payload")
            assert client.wait_closed() < 1.0, sent
    assert listener.process.log_text().count("refused") == len(INVALID_HEADERS)


def test_a_missing_header_is_closed_after_proxy_protocol_timeout(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """A silent client, or one stalling mid-header, is closed after the timeout."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener(
        [echo_port], accept_proxy_protocol="yes", proxy_protocol_timeout="1s"
    )
    with Client(listener.port) as silent, Client(listener.port) as stalling:
        stalling.send(b"PROXY TCP4 203.0.113.7")
        assert 0.8 <= silent.wait_closed(within=4.0) <= 2.5
        assert stalling.wait_closed() <= 1.0
    assert listener.process.log_text().count("no complete PROXY header in time") == 2


def test_allow_deny_and_per_address_cap_see_the_header_source(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """allow, deny and max_connections_per_ip judge the header's source address."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener(
        [echo_port],
        accept_proxy_protocol="yes",
        allow="198.51.100.0/24",
        deny="198.51.100.7",
        max_connections_per_ip="1",
    )

    def client_from(host: str) -> Client:
        client = Client(listener.port)
        client.send(v2_header((host, 4242), MADE_UP_DESTINATION))
        return client

    # Every socket comes from 127.0.0.1, which allow does not list.
    with client_from("198.51.100.9") as served:
        assert served.round_trip() == PAYLOAD
        for refused in ("198.51.100.7", "203.0.113.7", "198.51.100.9"):
            with client_from(refused) as client:
                assert client.wait_closed() < 1.0, refused
        with client_from("198.51.100.10") as other:
            assert other.round_trip() == PAYLOAD
        assert served.round_trip() == PAYLOAD
    log = listener.process.log_text()
    assert "refused 198.51.100.7:4242: denied by allow/deny" in log
    assert "refused 203.0.113.7:4242: denied by allow/deny" in log
    assert "refused 198.51.100.9:4242: 1 connections from this address" in log


# --- TLS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, in PEM files."""

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate only."""
        return ssl.create_default_context(cafile=str(self.cert))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    """A fresh self-signed certificate, written to ``tmp_path``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(tmp_path / "cert.pem", tmp_path / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def endpoint_value(path: Path) -> str:
    """``path`` escaped for a Twisted endpoint string."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def test_tls_is_terminated_on_an_ssl_endpoint(
    certificate: Certificate, start_server: StartServer, start_listener: StartListener
) -> None:
    """An ssl: endpoint decrypts: a plain echo server answers a TLS client."""
    echo_port, _ = start_echo(start_server)
    endpoint = (
        "ssl:{port}:interface=127.0.0.1"
        f":privateKey={endpoint_value(certificate.key)}"
        f":certKey={endpoint_value(certificate.cert)}"
    )
    listener = start_listener([echo_port], endpoint=endpoint)
    with Client(listener.port, tls=certificate.client_context()) as client:
        # Had the ciphertext reached the echo server, the handshake would fail.
        assert client.round_trip() == PAYLOAD


@pytest.fixture
def tls_echo_server(certificate: Certificate) -> Iterator[int]:
    """A TLS echo server (one connection, in a thread) on 127.0.0.1; its port."""
    context = certificate.server_context()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(TIMEOUT)
            with context.wrap_socket(connection, server_side=True) as tls:
                while data := tls.recv(65536):
                    tls.sendall(data)
        except OSError:
            # The client's side of the test reports what went wrong.
            return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    # Wakes a thread still blocked in accept().
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(TIMEOUT)


def test_tls_passes_through_a_tcp_endpoint(
    certificate: Certificate, tls_echo_server: int, start_listener: StartListener
) -> None:
    """A tcp: endpoint relays the handshake: the client verifies the server's cert."""
    listener = start_listener([tls_echo_server])
    with Client(listener.port, tls=certificate.client_context()) as client:
        assert isinstance(client.socket, ssl.SSLSocket)
        presented = client.socket.getpeercert(binary_form=True)
        expected = ssl.PEM_cert_to_DER_cert(certificate.cert.read_text())
        assert presented == expected
        assert client.round_trip() == PAYLOAD
