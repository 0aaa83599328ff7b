"""
Rate limits shared through a real redis-server by three real edgeproxy processes.

Skipped when ``redis-server`` is not installed (Debian package redis-server).
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeproxy.core.gcra import GcraPolicy, parse_rate, to_microseconds
from edgeproxy.store.memory import MemoryStore
from edgeproxy.store.redis import GCRA_SCRIPT, GCRA_SCRIPT_SHA1
from edgeproxy.store.resp import RedisReplyError, Reply, RespParser, encode_command
from tests.integration.conftest import free_port, stop, wait_for_port

ORIGIN = Path(__file__).resolve().parent / "servers" / "rate_origin.py"
TIMEOUT = 10.0
TEN_PER_SECOND = GcraPolicy.from_rate(parse_rate("10/s"), 0)


class RedisServer:
    """A redis-server on a fixed loopback port that the test can stop and start."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (without persistence) and wait until it listens."""
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        """End it, by its PID."""
        if self.process is not None:
            stop(self.process)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running redis-server, ended after the test."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(executable)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def origin_port() -> Iterator[int]:
    """servers/rate_origin.py on a free port, ended after the test."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ORIGIN), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process)


def call(connection: socket.socket, *arguments: bytes | str | int) -> Reply:
    """Send one command on a blocking socket and read its reply."""
    connection.sendall(encode_command(*arguments))
    parser = RespParser()
    while True:
        data = connection.recv(65536)
        assert data, "Redis closed the connection"
        replies = parser.feed(data)
        if replies:
            return replies[0]


def test_the_script_on_a_real_redis(redis_server: RedisServer) -> None:
    """The GCRA script admits burst + 1, then refuses; EVALSHA finds it after EVAL."""
    policy = GcraPolicy.from_rate(parse_rate("1/m"), 2)
    interval, tolerance = policy.emission_interval, policy.burst_tolerance
    arguments = (1, "edgeproxy:test", interval, tolerance)
    with socket.create_connection(("127.0.0.1", redis_server.port), TIMEOUT) as redis:
        missing = call(redis, "EVALSHA", GCRA_SCRIPT_SHA1, *arguments)
        # The store falls back to EVAL on exactly this error.
        assert isinstance(missing, RedisReplyError)
        assert str(missing).startswith("NOSCRIPT")
        replies = [call(redis, "EVAL", GCRA_SCRIPT, *arguments)]
        replies += [
            call(redis, "EVALSHA", GCRA_SCRIPT_SHA1, *arguments) for _ in range(3)
        ]
        ttl = call(redis, "PTTL", "edgeproxy:test")
    allowed, ahead = [], []
    for reply in replies:
        assert isinstance(reply, list)
        flag, early = reply
        assert isinstance(flag, int)
        assert isinstance(early, int)
        allowed.append(flag)
        ahead.append(early)
    assert allowed == [1, 1, 1, 0]
    assert ahead[0] == 0
    for index, expected in ((1, interval), (2, 2 * interval), (3, 3 * interval)):
        # Redis's clock moved on a little between the calls.
        assert expected - 1_000_000 < ahead[index] <= expected
    assert isinstance(ttl, int)
    assert 3 * interval / 1000 - 1000 < ttl <= 3 * interval / 1000


def proxy_config(port: int, origin_port: int, redis_port: int) -> str:
    """One http listener before the origin, limited to 10/s through Redis."""
    return f"""
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = all

[route:all]
upstream = origin
filters = shared_limit

[upstream:origin]
servers = 127.0.0.1:{origin_port}

[filter:shared_limit]
plugin = rate_limit
rate = 10/s
burst = 0
store = redis://127.0.0.1:{redis_port}/0
"""


def get(port: int) -> http.client.HTTPResponse:
    """GET / through the proxy on ``port``; the response, body read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def spread(ports: list[int], count: int, seconds: float) -> tuple[list[int], int]:
    """
    ``count`` requests evenly over ``seconds``, round-robin over ``ports``.

    :return: the statuses, and how many a single in-process 10/s limiter
        (the memory store) lets through at the times they were sent.
    """
    statuses = []
    reference = MemoryStore()
    expected = 0
    start = time.monotonic()
    for index in range(count):
        pause = start + index * seconds / count - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        now = to_microseconds(time.monotonic())
        expected += reference.take("client", TEN_PER_SECOND, now).allowed
        statuses.append(get(ports[index % len(ports)]).status)
    return statuses, expected


def assert_limited(statuses: list[int], expected: int) -> None:
    """As many passed as one 10/s limit allows (give or take jitter); 429 else."""
    passed = statuses.count(200)
    assert passed + statuses.count(429) == len(statuses)
    assert expected - 2 <= passed <= expected + 1, (passed, expected)


def wait_for_log(process: Any, text: str, times: int = 1) -> None:
    """Wait until ``text`` appears ``times`` times in the process's log."""
    deadline = time.monotonic() + 20
    while process.log_text().count(text) < times:
        assert time.monotonic() < deadline, process.log_text()
        time.sleep(0.05)


def test_one_limit_shared_by_three_proxies(
    start_edgeproxy: Any, redis_server: RedisServer, origin_port: int
) -> None:
    """Three proxies enforce one 10/s limit; fail open without Redis; recover."""
    ports = [free_port() for _ in range(3)]
    proxies = [
        start_edgeproxy(proxy_config(port, origin_port, redis_server.port), port)
        for port in ports
    ]
    for proxy in proxies:
        wait_for_log(proxy, "connected to Redis at")

    statuses, expected = spread(ports, 60, 1.0)
    assert_limited(statuses, expected)  # about 10-11 pass, not 3 x 10

    time.sleep(0.2)  # back at rest
    passed = get(ports[1])
    assert passed.status == 200
    assert passed.getheader("RateLimit-Policy") == '"default";q=10;w=1'
    assert passed.getheader("RateLimit") == '"default";r=0;t=1'
    refused = get(ports[2])
    assert refused.status == 429
    assert refused.getheader("Retry-After") == "1"

    redis_server.stop()
    statuses, _ = spread(ports, 30, 0.5)
    assert statuses == [200] * 30  # fail-open
    for proxy in proxies:
        assert "the rate-limit store cannot answer" in proxy.log_text()

    redis_server.start()
    for proxy in proxies:
        wait_for_log(proxy, "connected to Redis at", times=2)
    statuses, expected = spread(ports, 30, 0.5)
    assert_limited(statuses, expected)
    assert 429 in statuses

    for proxy in proxies:
        assert "Traceback" not in proxy.log_text()
