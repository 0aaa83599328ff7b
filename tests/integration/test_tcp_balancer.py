"""The TCP balancer as a user runs it: real servers behind twistd edgeproxy."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import free_port, stop, wait_for_port

ECHO = Path(__file__).resolve().parent / "servers" / "tcp_echo.py"
TIMEOUT = 60.0

StartServer = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start server processes on loopback; every one is ended by its PID after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str, port: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started.append(process)
        wait_for_port(port, process)
        return process

    yield start
    for process in started:
        stop(process)


@pytest.fixture
def start_balancer(start_edgeproxy: Any) -> Iterator[Callable[[str, int], Any]]:
    """start_edgeproxy, also closing each process's stderr pipe once it has ended."""
    started: list[Any] = []

    def start(config: str, port: int) -> Any:
        process = start_edgeproxy(config, port)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        process.process.stderr.close()


def start_echo(start_server: StartServer, banner: str = "") -> tuple[int, Any]:
    """An echo server (tests/integration/servers/tcp_echo.py) on a free port."""
    port = free_port()
    arguments = [str(port), banner] if banner else [str(port)]
    return port, start_server(sys.executable, str(ECHO), *arguments, port=port)


def balancer_config(port: int, servers: list[int]) -> str:
    """A config with one tcp listener on ``port`` over ``servers``."""
    listed = ", ".join(f"127.0.0.1:{server}" for server in servers)
    return (
        "[listener:tcp]\n"
        "protocol = tcp\n"
        f"endpoint = tcp:{port}:interface=127.0.0.1\n"
        "upstream = backends\n"
        "[upstream:backends]\n"
        f"servers = {listed}\n"
        "balance = round_robin\n"
        "max_fails = 1\n"
        "fail_timeout = 60s\n"
    )


def connect(port: int) -> socket.socket:
    """A client connection to the balancer, with a bounded timeout."""
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def read_until(connection: socket.socket, end: bytes) -> bytes:
    """Read until the bytes received end with ``end`` (or EOF)."""
    data = b""
    while not data.endswith(end):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_redis_through_the_balancer(
    start_server: StartServer, start_balancer: Any
) -> None:
    """A real redis-server answers PING, SET and GET through the splice."""
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    redis_port = free_port()
    start_server(
        redis,
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        port=redis_port,
    )
    port = free_port()
    start_balancer(balancer_config(port, [redis_port]), port)
    with connect(port) as client:
        client.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert read_until(client, b"\r\n") == b"+PONG\r\n"
        client.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        assert read_until(client, b"\r\n") == b"+OK\r\n"
        client.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
        assert read_until(client, b"value\r\n") == b"$5\r\nvalue\r\n"


def test_bulk_data_both_ways_arrives_intact(
    start_server: StartServer, start_balancer: Any
) -> None:
    """64 MiB up and the same 64 MiB echoed back, with half-close at the end."""
    echo_port, _ = start_echo(start_server)
    port = free_port()
    start_balancer(balancer_config(port, [echo_port]), port)
    sent = hashlib.sha256()
    errors: list[BaseException] = []
    block_size, blocks = 1024 * 1024, 64

    with connect(port) as client:

        def send() -> None:
            try:
                for _ in range(blocks):
                    block = os.urandom(block_size)
                    sent.update(block)
                    client.sendall(block)
                # Our FIN must cross the splice for the echo server to finish.
                client.shutdown(socket.SHUT_WR)
            except OSError as error:
                errors.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        received = hashlib.sha256()
        total = 0
        while chunk := client.recv(1024 * 1024):
            received.update(chunk)
            total += len(chunk)
        sender.join(TIMEOUT)
    assert errors == []
    assert total == block_size * blocks
    assert received.hexdigest() == sent.hexdigest()


def test_a_killed_server_is_skipped_for_new_connections(
    start_server: StartServer, start_balancer: Any
) -> None:
    """After one server dies, every new connection reaches one of the others."""
    servers = [start_echo(start_server, name) for name in ("a", "b", "c")]
    port = free_port()
    edgeproxy = start_balancer(balancer_config(port, [p for p, _ in servers]), port)

    def banner() -> bytes:
        with connect(port) as client:
            return read_until(client, b"\n")

    assert {banner() for _ in range(3)} == {b"a\n", b"b\n", b"c\n"}
    dead_port, dead = servers[1]
    stop(dead)
    seen = [banner() for _ in range(6)]
    assert set(seen) == {b"a\n", b"c\n"}
    assert f"127.0.0.1:{dead_port}" in edgeproxy.log_text()
    assert "Traceback" not in edgeproxy.log_text()
