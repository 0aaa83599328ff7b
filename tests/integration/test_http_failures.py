"""
Upstream failures as a client of twistd edgeproxy sees them: 502, 503, 504 and
cut connections, each in bounded time, with short error bodies.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import free_port
from tests.integration.http_client import (
    OriginProcess,
    Response,
    get,
    request_bytes,
)

StartOrigin = Callable[[str], OriginProcess]


@pytest.fixture
def start_origin(tmp_path: Path) -> Iterator[StartOrigin]:
    """Start origins by name; every one is ended after the test."""
    started: list[OriginProcess] = []

    def start(name: str) -> OriginProcess:
        origin = OriginProcess(name, tmp_path / f"{name}.log")
        started.append(origin)
        return origin

    yield start
    for origin in started:
        origin.stop()


@pytest.fixture
def proxy(start_edgeproxy: Any) -> Iterator[Callable[..., int]]:
    """Start an edgeproxy before ``servers`` with extra upstream keys; its port."""
    started: list[Any] = []

    def start(servers: str, **upstream_keys: str) -> int:
        port = free_port()
        keys = "".join(f"{key} = {value}\n" for key, value in upstream_keys.items())
        config = (
            "[listener:web]\nprotocol = http\n"
            f"endpoint = tcp:{port}:interface=127.0.0.1\nroutes = site\n"
            "[route:site]\nupstream = app\n"
            f"[upstream:app]\nservers = {servers}\n{keys}"
        )
        started.append(start_edgeproxy(config, port))
        return port

    yield start
    for process in started:
        log = process.log_text()
        assert "Traceback" not in log, log


def assert_short_error(response: Response, status: int) -> None:
    """An error answer: the status, a short body, nothing of our insides."""
    assert response.status == status, response
    assert len(response.body) < 512, response.body
    for leak in (b"Traceback", b'File "', b"twisted", b"edgeproxy/"):
        assert leak not in response.body, response.body


def timed_get(port: int, target: bytes = b"/echo") -> tuple[Response, float]:
    """A GET and the seconds its answer took."""
    started = time.monotonic()
    response = get(port, target)
    return response, time.monotonic() - started


def test_closed_upstream_port_is_502(proxy: Callable[..., int]) -> None:
    """A server whose port refuses connections gets every request a quick 502."""
    port = proxy(f"127.0.0.1:{free_port()}", max_fails="0")
    for _ in range(3):
        response, took = timed_get(port)
        assert_short_error(response, 502)
        assert took < 5


def test_a_server_failed_by_passive_health_leaves_503(
    proxy: Callable[..., int],
) -> None:
    """After connect failures take every server out, the next request is 503 at once."""
    servers = f"127.0.0.1:{free_port()}, 127.0.0.1:{free_port()}"
    port = proxy(servers, max_fails="1", fail_timeout="60s")
    assert_short_error(get(port, b"/echo"), 502)
    response, took = timed_get(port)
    assert_short_error(response, 503)
    assert took < 1


def test_the_only_server_is_never_taken_out(proxy: Callable[..., int]) -> None:
    """As nginx: a pool of one server keeps trying it (502, never 503)."""
    port = proxy(f"127.0.0.1:{free_port()}", max_fails="1", fail_timeout="60s")
    for _ in range(3):
        assert_short_error(get(port, b"/echo"), 502)


def test_one_dead_server_of_two_is_retried_on_the_other(
    proxy: Callable[..., int], start_origin: StartOrigin
) -> None:
    """With one of two servers down, every GET is answered by the live one."""
    alpha = start_origin("alpha")
    port = proxy(f"127.0.0.1:{free_port()}, {alpha.address}", max_fails="0")
    for _ in range(6):
        response = get(port, b"/echo")
        assert response.status == 200
        assert response.json()["server"] == "alpha"


def test_every_server_configured_down_is_503_at_once(
    proxy: Callable[..., int], start_origin: StartOrigin
) -> None:
    """When no server is up by configuration, the answer is 503 at once."""
    alpha = start_origin("alpha")
    port = proxy(f"{alpha.address} down, 127.0.0.1:{free_port()} down")
    response, took = timed_get(port)
    assert_short_error(response, 503)
    assert took < 1
    assert alpha.received() == ""


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A listening socket that accepts (in its backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_an_upstream_that_never_answers_is_504(
    proxy: Callable[..., int], silent_server: str
) -> None:
    """A server that accepts and says nothing gets a 504 after first_byte_timeout."""
    port = proxy(silent_server, first_byte_timeout="1s", retries="0")
    response, took = timed_get(port)
    assert_short_error(response, 504)
    assert 0.9 < took < 4


def test_a_slow_head_is_504_after_first_byte_timeout(
    proxy: Callable[..., int], start_origin: StartOrigin
) -> None:
    """An origin slower than first_byte_timeout gets the client a 504 in time."""
    alpha = start_origin("alpha")
    port = proxy(alpha.address, first_byte_timeout="1s", retries="0")
    response, took = timed_get(port, b"/slow-head/30")
    assert_short_error(response, 504)
    assert 0.9 < took < 4


def test_garbage_from_the_upstream_is_502(
    proxy: Callable[..., int], start_origin: StartOrigin
) -> None:
    """An answer that is not HTTP gets a quick 502."""
    alpha = start_origin("alpha")
    port = proxy(alpha.address, first_byte_timeout="10s")
    response, took = timed_get(port, b"/garbage")
    assert_short_error(response, 502)
    assert took < 5


def read_until_closed(port: int, target: bytes) -> tuple[bytes, float]:
    """
    GET ``target`` and read until edgeproxy closes the connection (FIN or
    reset); the bytes received and the seconds it took.  Fails if the
    connection is still open after 10 s.
    """
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request_bytes(b"GET", target))
        try:
            while data := client.recv(65536):
                received += data
        except ConnectionResetError:
            pass  # a reset is a close too; what came before it may be lost
    return received, time.monotonic() - started


def assert_cut_short(received: bytes) -> None:
    """
    What came before the close is not a whole response: nothing, a 502, or the
    200 head with less than its Content-Length of body.
    """
    if not received or received.startswith(b"HTTP/1.1 502 "):
        return
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), received
    assert b"\r\nContent-Length: 1000\r\n" in head + b"\r\n", received
    assert len(body) < 1000


def test_an_upstream_dying_mid_body_cuts_the_client_connection(
    proxy: Callable[..., int], start_origin: StartOrigin
) -> None:
    """The client sees its connection closed before the Content-Length is complete."""
    alpha = start_origin("alpha")
    port = proxy(alpha.address)
    received, took = read_until_closed(port, b"/die-mid-body")
    assert_cut_short(received)
    assert took < 5


def test_an_upstream_stalling_mid_body_is_cut_after_read_timeout(
    proxy: Callable[..., int], start_origin: StartOrigin
) -> None:
    """A body that stops arriving for read_timeout ends the client connection."""
    alpha = start_origin("alpha")
    port = proxy(alpha.address, read_timeout="1s")
    received, took = read_until_closed(port, b"/stall-body")
    assert_cut_short(received)
    assert 0.9 < took < 5
