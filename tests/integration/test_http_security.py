"""
Malformed, ambiguous and oversized requests, sent as raw bytes to twistd edgeproxy.

Each is refused with a 4xx and nothing of it reaches the origin: every request
carries a fresh marker, and the origin's log of the heads it received must not
contain it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.conftest import EdgeproxyProcess, free_port
from tests.integration.http_client import ClientConnection, OriginProcess, exchange


class Gateway:
    """An edgeproxy with small limits before one origin."""

    def __init__(self, port: int, origin: OriginProcess) -> None:
        self.port = port
        self.origin = origin

    def origin_saw(self, marker: str) -> bool:
        """Whether the origin received any request carrying ``marker``."""
        # Whatever edgeproxy forwards, it forwards at once: give it a moment.
        time.sleep(0.3)
        return marker in self.origin.received()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The module's edgeproxy (4KB heads, 1KB targets, 1KB bodies) and origin."""
    directory = tmp_path_factory.mktemp("security")
    origin = OriginProcess("alpha", directory / "origin.log")
    port = free_port()
    config = directory / "edgeproxy.ini"
    config.write_text(
        f"""
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = site
max_head_size = 4KB
max_uri_length = 1KB
max_body_size = 1KB

[route:site]
host = a.example
upstream = app

[upstream:app]
servers = {origin.address}
"""
    )
    try:
        process = EdgeproxyProcess(config, port)
    except AssertionError:
        origin.stop()
        raise
    yield Gateway(port, origin)
    process.stop()
    origin.stop()


def test_a_valid_request_with_a_marker_reaches_the_origin(gateway: Gateway) -> None:
    """The control: a well-formed request and its marker do reach the origin."""
    marker = uuid.uuid4().hex
    data = f"GET /echo?m={marker} HTTP/1.1\r\nHost: a.example\r\n\r\n".encode()
    response = exchange(gateway.port, data)
    assert response.status == 200
    assert gateway.origin_saw(marker)


HOST = b"Host: a.example\r\n"
REFUSED = [
    pytest.param(
        b"POST /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        id="content-length-and-transfer-encoding",
    ),
    pytest.param(
        b"POST /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n"
        b"Content-Length: 6\r\n\r\nhello!",
        400,
        id="two-content-lengths",
    ),
    pytest.param(
        b"POST /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n"
        b"\r\nhello",
        400,
        id="transfer-encoding-not-ending-in-chunked",
    ),
    pytest.param(
        b"POST /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
        b"\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
        id="bad-chunk-size",
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"X-Folded: a\r\n b\r\n\r\n",
        400,
        id="obs-fold",
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"X-Bad : 1\r\n\r\n",
        400,
        id="space-before-colon",
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\nHost: a.example\n\n", 400, id="bare-lf"
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\r\nHost: a.example\nX-A: 1\r\n\r\n",
        400,
        id="one-bare-lf",
    ),
    pytest.param(
        b"\x16\x03\x01\x02\x00\x01 MARKER\r\n\r\n", 400, id="garbage-request-line"
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1 extra\r\n" + HOST + b"\r\n",
        400,
        id="request-line-with-extra-word",
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\r\n" + HOST + HOST + b"\r\n",
        400,
        id="two-hosts",
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, id="http-1-1-no-host"
    ),
    pytest.param(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
        b"X-Marker: MARKER\r\n\r\n",
        405,
        id="connect",
    ),
    pytest.param(
        b"GET /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"X-Big: " + b"x" * 8000 + b"\r\n"
        b"\r\n",
        431,
        id="oversized-head",
    ),
    pytest.param(
        b"GET /echo?m=MARKER&pad=" + b"p" * 2000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        414,
        id="too-long-uri",
    ),
    pytest.param(
        b"POST /echo?m=MARKER HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 2048\r\n\r\n"
        + b"b" * 2048,
        413,
        id="content-length-body-over-max-body-size",
    ),
    pytest.param(
        b"POST /echo?m=MARKER HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
        b"\r\n800\r\n" + b"b" * 2048 + b"\r\n0\r\n\r\n",
        413,
        id="chunked-body-over-max-body-size",
    ),
]


@pytest.mark.parametrize(("data", "status"), REFUSED)
def test_bad_request_is_refused_and_the_connection_closed(
    gateway: Gateway, data: bytes, status: int
) -> None:
    """A request whose framing or form is in doubt gets its 4xx and a close."""
    marker = uuid.uuid4().hex
    with ClientConnection(gateway.port) as connection:
        connection.send(data.replace(b"MARKER", marker.encode()))
        response = connection.read_response(timeout=5)
        assert response.status == status, response
        assert len(response.body) < 512
        assert b"Traceback" not in response.body
        assert connection.closed_by_peer(), "the connection stayed open"
    assert not gateway.origin_saw(marker)


def test_absolute_form_for_a_host_not_served_is_not_proxied(gateway: Gateway) -> None:
    """GET http://elsewhere/ is no open proxy: a 4xx, and the origin sees nothing."""
    marker = uuid.uuid4().hex
    data = f"GET http://evil.example/echo?m={marker} HTTP/1.1\r\n"
    response = exchange(gateway.port, (data + "Host: a.example\r\n\r\n").encode())
    assert 400 <= response.status < 500
    assert len(response.body) < 512
    assert not gateway.origin_saw(marker)


def test_absolute_form_for_a_served_host_goes_out_in_origin_form(
    gateway: Gateway,
) -> None:
    """GET http://a.example/x goes up as /x with Host a.example, whatever Host said."""
    data = b"GET http://a.example/echo?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n"
    response = exchange(gateway.port, data)
    assert response.status == 200
    echo = response.json()
    assert echo["target"] == "/echo?q=1"
    assert [v for n, v in echo["headers"] if n.lower() == "host"] == ["a.example"]
