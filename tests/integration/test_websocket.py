"""The WebSocket passthrough as a user runs it: real client, server and edgeproxy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection as AsyncClientConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.integration.conftest import EdgeproxyProcess, free_port, stop, wait_for_port

ECHO = Path(__file__).resolve().parent / "servers" / "ws_echo.py"
TIMEOUT = 30.0
"""Seconds any one handshake, send or receive may take."""

MIB = 1024 * 1024
SIZES = [0, 1, 125, 126, 65535, 65536, MIB, 16 * MIB]
"""Around the frame-length encodings (7-bit, 16-bit, 64-bit) and beyond."""

CONCURRENT = 500
CONCURRENT_DEADLINE = 60.0
FILE_LIMIT = 4096
"""Open files the test process and its children need for CONCURRENT tunnels."""

NO_UPGRADE_ANSWER = "plain HTTP: the request had no Upgrade header\n"
REJECT_ANSWER = "rejected by the upstream\n"


def raise_file_limit(wanted: int) -> None:
    """Raise this process's open-file soft limit to ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """The port of a ws_echo.py server shared by the module's tests."""
    raise_file_limit(FILE_LIMIT)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ECHO), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process)


def proxy_config(port: int, echo_port: int, ws_route_extra: str = "") -> str:
    """One listener: a websocket route under /ws, a plain route for the rest."""
    return f"""
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = ws, plain

[route:ws]
path_prefix = /ws
upstream = wsapp
websocket = yes
filters = stamp
{ws_route_extra}
[route:plain]
upstream = wsapp

[filter:stamp]
plugin = headers
request.set = X-Through: edgeproxy

[upstream:wsapp]
servers = 127.0.0.1:{echo_port}
"""


@pytest.fixture(scope="module")
def shared_proxy(
    echo_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EdgeproxyProcess, int]]:
    """An edgeproxy process (and its port) before the echo server, for the module."""
    port = free_port()
    config = tmp_path_factory.mktemp("websocket") / "edgeproxy.ini"
    config.write_text(proxy_config(port, echo_port))
    process = EdgeproxyProcess(config, port)
    try:
        yield process, port
    finally:
        process.stop()


def assert_no_failure_logged(process: EdgeproxyProcess) -> None:
    """Fail when edgeproxy logged a traceback or an unhandled error."""
    text = process.log_text()
    for sign in ("Traceback", "Unhandled"):
        assert sign not in text, text


@pytest.fixture
def proxy(shared_proxy: tuple[EdgeproxyProcess, int]) -> Iterator[int]:
    """The shared proxy's port; the test fails if the proxy logs a traceback."""
    process, port = shared_proxy
    yield port
    assert_no_failure_logged(process)


def open_client(port: int, path: str) -> ClientConnection:
    """A synchronous WebSocket client through the proxy, every wait bounded."""
    return connect(
        f"ws://127.0.0.1:{port}{path}",
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        max_size=None,
        compression=None,
        ping_interval=None,
    )


def text_of_size(size: int) -> str:
    """A text of exactly ``size`` UTF-8 bytes, with 1- to 4-byte characters."""
    unit = "a\u00e9\u20ac\U0001d11e "
    encoded = (unit * (size // len(unit.encode()) + 1)).encode()[:size]
    text = encoded.decode(errors="ignore")
    return text + "a" * (size - len(text.encode()))


def digest(message: str | bytes) -> tuple[type, int, str]:
    """Type, length and SHA-256 of a message: compared instead of megabytes."""
    data = message.encode() if isinstance(message, str) else message
    return type(message), len(data), hashlib.sha256(data).hexdigest()


def close_report(port: int, name: str) -> dict[str, Any]:
    """What the echo server received when connection ``name`` closed."""
    with open_client(port, f"/ws/close-report?id={name}") as client:
        report: dict[str, Any] = json.loads(client.recv(timeout=TIMEOUT))
    return report


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_a_message_comes_back_byte_identical(proxy: int, kind: str, size: int) -> None:
    """A text or binary message of any frame-length class is echoed unchanged."""
    message = text_of_size(size) if kind == "text" else os.urandom(size)
    with open_client(proxy, "/ws/echo") as client:
        client.send(message)
        echoed = client.recv(timeout=TIMEOUT)
    assert digest(echoed) == digest(message)


def test_messages_in_flight_both_ways_keep_their_order(proxy: int) -> None:
    """Every size sent back to back, without waiting, comes back in order."""
    messages: list[str | bytes] = [os.urandom(size) for size in SIZES[:-1]]
    messages += [text_of_size(size) for size in SIZES[:-1]]
    with open_client(proxy, "/ws/echo") as client:
        for message in messages:
            client.send(message)
        echoed = [client.recv(timeout=TIMEOUT) for _ in messages]
    assert [digest(m) for m in echoed] == [digest(m) for m in messages]


BINARY_FRAGMENTS = [b"\x00\x01", b"", os.urandom(70000), b"\xff"]


@pytest.mark.parametrize(
    ("fragments", "whole"),
    [
        (["frag", "", "men", "t\u00e9d"], "fragment\u00e9d"),
        (BINARY_FRAGMENTS, b"".join(BINARY_FRAGMENTS)),
    ],
    ids=["text", "binary"],
)
def test_a_fragmented_message_is_reassembled(
    proxy: int, fragments: list[str] | list[bytes], whole: str | bytes
) -> None:
    """A message sent as continuation frames arrives as the one whole message."""
    with open_client(proxy, "/ws/echo") as client:
        client.send(fragments)
        echoed = client.recv(timeout=TIMEOUT)
    assert digest(echoed) == digest(whole)


def test_a_ping_gets_its_pong(proxy: int) -> None:
    """A ping crosses the proxy and the server's pong comes back."""
    with open_client(proxy, "/ws/echo") as client:
        pong = client.ping(b"are you there")
        assert pong.wait(TIMEOUT)
        client.send("still usable")
        assert client.recv(timeout=TIMEOUT) == "still usable"


def test_the_clients_close_code_and_reason_reach_the_server(proxy: int) -> None:
    """A client closing with 4001 and a reason: the server receives exactly that."""
    name = uuid.uuid4().hex
    with open_client(proxy, f"/ws/echo?id={name}") as client:
        client.send("hello")
        assert client.recv(timeout=TIMEOUT) == "hello"
        closing = time.monotonic()
        client.close(4001, "client leaves")
        # The close handshake and the TCP close cross the proxy at once
        # (a FIN held back would make close() wait for its close_timeout).
        assert time.monotonic() - closing < 5.0
        received = client.protocol.close_rcvd
    assert received is not None and received.code == 4001
    assert close_report(proxy, name) == {
        "closed": True,
        "code": 4001,
        "reason": "client leaves",
    }


def test_the_servers_close_code_and_reason_reach_the_client(proxy: int) -> None:
    """A server closing with 4002 "bye": the client receives exactly that."""
    with open_client(proxy, "/ws/echo") as client:
        client.send("close:4002:bye")
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=TIMEOUT)
    received = closed.value.rcvd
    assert received is not None
    assert (received.code, received.reason) == (4002, "bye")


def test_the_routes_filters_run_on_the_handshake(proxy: int) -> None:
    """The handshake reaches the server with the route's header and its own intact."""
    with open_client(proxy, "/ws/headers") as client:
        fields = json.loads(client.recv(timeout=TIMEOUT))
        client.send("after the headers")
        assert client.recv(timeout=TIMEOUT) == "after the headers"
        sent_key = (
            client.request.headers["Sec-WebSocket-Key"] if client.request else None
        )

    def values(name: str) -> list[str]:
        return [v for n, v in fields if n.lower() == name.lower()]

    assert values("X-Through") == ["edgeproxy"]
    assert values("Upgrade") == ["websocket"]
    assert values("Sec-WebSocket-Key") == [sent_key]
    assert values("Sec-WebSocket-Version") == ["13"]


def test_an_upgrade_on_a_plain_route_is_not_passed_through(proxy: int) -> None:
    """On a route without websocket the server never sees Upgrade: no 101."""
    with pytest.raises(InvalidStatus) as refused:
        open_client(proxy, "/plain")
    response = refused.value.response
    assert response.status_code == 200
    assert response.body == NO_UPGRADE_ANSWER.encode()
    assert "Upgrade" not in response.headers


def test_a_handshake_rejected_upstream_reaches_the_client_as_is(proxy: int) -> None:
    """A 403 instead of a 101 reaches the client as that 403 HTTP response."""
    with pytest.raises(InvalidStatus) as refused:
        open_client(proxy, "/ws/reject")
    response = refused.value.response
    assert response.status_code == 403
    assert response.body == REJECT_ANSWER.encode()


def test_a_client_that_vanishes_ends_the_upstream_connection(proxy: int) -> None:
    """A client reset mid-tunnel: the proxy ends the server's connection too."""
    name = uuid.uuid4().hex
    with open_client(proxy, f"/ws/echo?id={name}") as client:
        client.send("hello")
        assert client.recv(timeout=TIMEOUT) == "hello"
        # SO_LINGER 0: closing sends a reset, no close frame, no FIN.
        client.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        client.close_socket()
    assert close_report(proxy, name) == {"closed": True, "code": None, "reason": None}


def test_a_server_that_vanishes_ends_the_client_connection(proxy: int) -> None:
    """The server aborting its connection mid-tunnel ends the client's connection."""
    with open_client(proxy, "/ws/echo") as client:
        client.send("drop")
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is None


def test_subprotocol_and_compression_are_negotiated_end_to_end(proxy: int) -> None:
    """Sec-WebSocket-Protocol and permessage-deflate cross the proxy both ways."""
    message = "compressible " * 100_000
    with connect(
        f"ws://127.0.0.1:{proxy}/ws/echo",
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        max_size=None,
        compression="deflate",
        subprotocols=[Subprotocol("other.v2"), Subprotocol("echo.v1")],
        ping_interval=None,
    ) as client:
        assert client.subprotocol == "echo.v1"
        assert client.response is not None
        extensions = client.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate")
        client.send(message)
        assert client.recv(timeout=TIMEOUT) == message


def masked_text_frame(text: str) -> bytes:
    """One short client-to-server text frame, masked as RFC 6455 requires."""
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def read_exactly(connection: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``connection``, or fail at EOF."""
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize(
    ("connection_field", "upgrade_field"),
    [
        ("Upgrade", "websocket"),
        ("keep-alive, Upgrade", "websocket"),
        ("upgrade", "WebSocket"),
    ],
)
def test_a_raw_handshake_with_a_frame_in_the_same_write_is_served(
    proxy: int, connection_field: str, upgrade_field: str
) -> None:
    """Browser-style fields; a frame sent right behind the handshake is not lost."""
    head = (
        "GET /ws/echo HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{proxy}\r\n"
        f"Connection: {connection_field}\r\n"
        f"Upgrade: {upgrade_field}\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy), timeout=TIMEOUT) as raw:
        raw.sendall(head + masked_text_frame("early bird"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = raw.recv(1)
            assert chunk, f"EOF after {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 101 ")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in answer
        assert read_exactly(raw, 2) == bytes([0x81, len(b"early bird")])
        assert read_exactly(raw, len(b"early bird")) == b"early bird"


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


PUSH_LIMIT = 192 * MIB
RSS_GROWTH_LIMIT = 48 * MIB


def test_a_client_that_reads_nothing_is_held_back_not_buffered(
    shared_proxy: tuple[EdgeproxyProcess, int],
) -> None:
    """Back-pressure crosses the tunnel: a non-reading client stalls, RSS stays flat."""
    process, port = shared_proxy
    head = (
        "GET /ws/echo HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Connection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    # A zero mask leaves the payload as it is: no per-byte work here.
    frame = bytes([0x82, 0xFF]) + MIB.to_bytes(8, "big") + bytes(4) + bytes(MIB)
    before = rss(process.process.pid)
    pushed = 0
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(head)
        answer = raw.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101 ")
        raw.settimeout(3.0)
        try:
            while pushed < PUSH_LIMIT:
                raw.sendall(frame)
                pushed += len(frame)
        except TimeoutError:
            pass
        grown = rss(process.process.pid) - before
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert pushed < PUSH_LIMIT, "nothing held the client back"
    assert grown < RSS_GROWTH_LIMIT, f"the proxy grew by {grown} bytes"
    assert_no_failure_logged(process)


async def exchange_concurrently(port: int, count: int) -> list[str]:
    """Open ``count`` connections at once, talk on all, close all; the problems seen."""

    async def opened(index: int) -> AsyncClientConnection:
        return await async_connect(
            f"ws://127.0.0.1:{port}/ws/echo?n={index}",
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            compression=None,
            ping_interval=None,
        )

    async def talk(index: int, client: AsyncClientConnection) -> None:
        messages: list[str | bytes] = [f"hello {index}", os.urandom(index), "bye"]
        for message in messages:
            await client.send(message)
        for message in messages:
            echoed = await client.recv()
            if echoed != message:
                raise AssertionError(f"connection {index}: {echoed!r} != {message!r}")

    results = await asyncio.gather(
        *(opened(i) for i in range(count)), return_exceptions=True
    )
    clients = [c for c in results if isinstance(c, AsyncClientConnection)]
    problems = [repr(r) for r in results if isinstance(r, BaseException)]
    if len(clients) == count:
        talked = await asyncio.gather(
            *(talk(i, c) for i, c in enumerate(clients)), return_exceptions=True
        )
        problems += [repr(r) for r in talked if isinstance(r, BaseException)]
    closed = await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    problems += [repr(r) for r in closed if isinstance(r, BaseException)]
    return problems


def test_many_concurrent_connections_through_one_process(proxy: int) -> None:
    """500 tunnels open at once through one process each echo their messages."""
    raise_file_limit(FILE_LIMIT)
    started = time.monotonic()
    problems = asyncio.run(
        asyncio.wait_for(exchange_concurrently(proxy, CONCURRENT), CONCURRENT_DEADLINE)
    )
    assert problems == [], f"{len(problems)} problems, first: {problems[:5]}"
    assert time.monotonic() - started < CONCURRENT_DEADLINE


TIMED_ROUTES = """websocket_idle_timeout = 1s

[route:short]
path_prefix = /short
upstream = wsapp
websocket = yes
websocket_idle_timeout = 0s
websocket_max_lifetime = 2s
"""


@pytest.fixture
def timed_proxy(echo_port: int, start_edgeproxy: Any) -> Iterator[int]:
    """A proxy whose /ws route has a 1 s idle timeout, /short a 2 s lifetime."""
    port = free_port()
    config = proxy_config(port, echo_port, TIMED_ROUTES).replace(
        "routes = ws, plain", "routes = ws, short, plain"
    )
    process = start_edgeproxy(config, port)
    yield port
    assert_no_failure_logged(process)


def test_an_idle_tunnel_is_closed_by_the_proxy(timed_proxy: int) -> None:
    """With websocket_idle_timeout = 1s, a silent tunnel ends both sides in ~1 s."""
    name = uuid.uuid4().hex
    with open_client(timed_proxy, f"/ws/echo?id={name}") as client:
        client.send("one message, then silence")
        assert client.recv(timeout=TIMEOUT) == "one message, then silence"
        silent_since = time.monotonic()
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
        idle_for = time.monotonic() - silent_since
    assert 0.8 <= idle_for <= 2.5
    # The upstream connection ended too (without a close frame: an abort).
    assert close_report(timed_proxy, name)["closed"] is True


def test_a_busy_tunnel_outlives_the_idle_timeout(timed_proxy: int) -> None:
    """Traffic every 0.3 s keeps a tunnel with a 1 s idle timeout open past 2.5 s."""
    with open_client(timed_proxy, "/ws/echo") as client:
        until = time.monotonic() + 2.5
        count = 0
        while time.monotonic() < until:
            client.send(f"tick {count}")
            assert client.recv(timeout=TIMEOUT) == f"tick {count}"
            count += 1
            # Real time must pass for the proxy's real timer.
            time.sleep(0.3)
        client.send("still open")
        assert client.recv(timeout=TIMEOUT) == "still open"


def test_a_tunnel_ends_at_its_max_lifetime_even_when_busy(timed_proxy: int) -> None:
    """With websocket_max_lifetime = 2s, a busy tunnel is ended at about 2 s."""
    with open_client(timed_proxy, "/short/echo") as client:
        opened = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - opened < 10:
                client.send("tick")
                assert client.recv(timeout=TIMEOUT) == "tick"
                time.sleep(0.2)
        lived = time.monotonic() - opened
    assert 1.8 <= lived <= 3.5
