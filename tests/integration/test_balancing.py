"""
Balancing through a real ``twistd edgeproxy``: how each strategy spreads
requests over real origins.

This module also holds the harness that test_health_failover.py shares: an
:class:`Origin` on a port it keeps (so that a test can kill it and start it
again on that port), a :class:`Proxy` with its admin API, and the fixtures
that start both.  Every process is ended by its PID.  Each origin answers with
``X-Origin: NAME``, which tells a test which server served a request.
"""

from __future__ import annotations

import functools
import http.client
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.integration.conftest import (
    EdgeproxyProcess,
    free_port,
    stop,
    wait_for_port,
)
from tests.integration.http_client import (
    ORIGIN_SCRIPT,
    ClientConnection,
    Response,
    exchange,
    get,
    request_bytes,
)

CONFIG = """
[edgeproxy]
admin = tcp:{admin}:interface=127.0.0.1

[listener:web]
protocol = http
endpoint = tcp:{web}:interface=127.0.0.1
routes = site

[route:site]
upstream = app

[upstream:app]
servers = {servers}
{keys}
"""


class Origin:
    """
    A ``servers/origin.py`` process on a port of its own, which it keeps.

    It is started at once; :meth:`wait_until_listening` waits for its port
    (so that several origins start side by side).
    """

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(ORIGIN_SCRIPT), str(self.port), self.name, self.log],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_until_listening(self) -> None:
        """Wait until the origin accepts connections (it is ended if it fails to)."""
        try:
            wait_for_port(self.port, self.process)
        except AssertionError:
            stop(self.process)
            raise

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the server's entry in ``servers`` and its key."""
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Die at once (SIGKILL), as a crashed server does."""
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill`)."""
        stop(self.process)
        self.process = self._spawn()
        self.wait_until_listening()

    def signal(self, number: int) -> None:
        """Send signal ``number`` (SIGSTOP, SIGCONT) to the process if it runs."""
        if self.process.poll() is None:
            os.kill(self.process.pid, number)

    def stop(self) -> None:
        """End the process (a stopped one is continued first, so that it can end)."""
        self.signal(signal.SIGCONT)
        stop(self.process)


@dataclass
class Proxy:
    """A running edgeproxy: its web and admin ports, and its origins by key."""

    web: int
    admin: int
    names: dict[str, str] = field(default_factory=dict)

    def served_by(self, connection: ClientConnection, cookie: bytes = b"") -> str:
        """Send one GET on ``connection``; the name of the origin that answered."""
        return origin_of(self.request(connection, cookie=cookie))

    def request(
        self,
        connection: ClientConnection,
        target: bytes = b"/echo",
        headers: Sequence[tuple[bytes, bytes]] = (),
        cookie: bytes = b"",
    ) -> Response:
        """Send one GET on ``connection`` and read its answer."""
        fields = [*headers, (b"Cookie", cookie)] if cookie else list(headers)
        connection.send(request_bytes(b"GET", target, headers=fields))
        return connection.read_response()

    def servers(self) -> dict[str, dict[str, Any]]:
        """``GET /status``: the servers of upstream ``app``, by origin name."""
        document = self._admin("GET", "/status")
        return {
            self.names[server["key"]]: server
            for server in document["upstreams"]["app"]["servers"]
        }

    def set_admin_state(self, origin: Origin, action: str) -> dict[str, Any]:
        """``POST .../drain|disable|enable`` for ``origin``; the server's new state."""
        path = f"/upstreams/app/servers/{origin.address}/{action}"
        answer: dict[str, Any] = self._admin("POST", path)
        return answer

    def _admin(self, method: str, path: str) -> Any:
        response = exchange(self.admin, request_bytes(method.encode(), path.encode()))
        assert response.status == 200, response
        return response.json()

    def wait_for(self, name: str, status: str, timeout: float = 5.0) -> float:
        """Wait until ``/status`` shows origin ``name`` as ``status``; the seconds."""
        return eventually(lambda: self.servers()[name]["status"] == status, timeout)


StartOrigins = Callable[..., list[Origin]]
"""``start_origins("a", "b")``: origins named a and b, running."""


class StartProxy(Protocol):
    """The ``start_proxy`` fixture's function."""

    def __call__(
        self, origins: Sequence[Origin], keys: str, servers: str = ""
    ) -> Proxy:
        """
        Start edgeproxy with one upstream ``app`` over ``origins``.

        :param keys: more lines of the ``[upstream:app]`` section.
        :param servers: the ``servers`` value with ``{}`` for each origin's
            address (to add parameters); by default the addresses in order.
        """


def origin_of(response: Response) -> str:
    """The name of the origin that answered ``response`` (which must be a 200)."""
    assert response.status == 200, response
    name = response.header(b"X-Origin")
    assert name is not None, response
    return name.decode()


def eventually(check: Callable[[], bool], timeout: float) -> float:
    """Wait until ``check()`` holds (polling every 20 ms); the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the condition did not hold within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - started


def longest_run(picks: Sequence[str], name: str) -> int:
    """The most picks of ``name`` in a row."""
    longest = current = 0
    for pick in picks:
        current = current + 1 if pick == name else 0
        longest = max(longest, current)
    return longest


@pytest.fixture(name="start_origins")
def origin_starter(tmp_path: Path) -> Iterator[StartOrigins]:
    """Start origins by name; every one is ended after the test."""
    started: list[Origin] = []

    def start(*names: str) -> list[Origin]:
        origins = [Origin(name, tmp_path / f"{name}.log") for name in names]
        started.extend(origins)
        for origin in origins:
            origin.wait_until_listening()
        return origins

    yield start
    for origin in started:
        origin.stop()


@pytest.fixture(name="start_proxy")
def proxy_starter(
    start_edgeproxy: Callable[[str, int], EdgeproxyProcess],
) -> Iterator[StartProxy]:
    """Start edgeproxy processes before origins; none may log a traceback."""
    started: list[EdgeproxyProcess] = []

    def start(origins: Sequence[Origin], keys: str, servers: str = "") -> Proxy:
        proxy = Proxy(free_port(), free_port())
        proxy.names = {origin.address: origin.name for origin in origins}
        entries = servers.format(*(o.address for o in origins)) if servers else None
        text = CONFIG.format(
            admin=proxy.admin,
            web=proxy.web,
            servers=entries or ", ".join(origin.address for origin in origins),
            keys=keys,
        )
        process = start_edgeproxy(text, proxy.web)
        started.append(process)
        wait_for_port(proxy.admin, process.process)
        return proxy

    yield start
    for process in started:
        log = process.log_text()
        assert "Traceback" not in log, log


def test_round_robin_takes_each_server_in_turn(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """round_robin gives 3 servers 30 keep-alive requests in turn, 10 each."""
    origins = start_origins("a", "b", "c")
    proxy = start_proxy(origins, "balance = round_robin")
    with ClientConnection(proxy.web) as connection:
        picks = [proxy.served_by(connection) for _ in range(30)]
    assert Counter(picks) == {"a": 10, "b": 10, "c": 10}
    for start in range(0, 30, 3):
        assert sorted(picks[start : start + 3]) == ["a", "b", "c"], picks


def test_weighted_shares_requests_by_weight_without_bursts(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """weighted with 5,1,1 gives 5:1:1 (within 1 of 70) with a's turns spread out."""
    origins = start_origins("a", "b", "c")
    proxy = start_proxy(origins, "balance = weighted", "{} weight=5, {}, {}")
    with ClientConnection(proxy.web) as connection:
        picks = [proxy.served_by(connection) for _ in range(70)]
    counts = Counter(picks)
    assert abs(counts["a"] - 50) <= 1 and abs(counts["b"] - 10) <= 1, counts
    # Smooth: a a b a c a a, so a never runs 5 long and b, c come once in 7.
    assert longest_run(picks, "a") <= 4, picks
    for light in ("b", "c"):
        turns = [index for index, pick in enumerate(picks) if pick == light]
        assert all(later - earlier >= 5 for earlier, later in pairwise(turns))


def test_least_conn_sends_new_requests_to_idle_servers(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """least_conn sends nothing to a server busy with a slow request."""
    origins = start_origins("a", "b", "c")
    proxy = start_proxy(origins, "balance = least_conn")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, proxy.web, b"/slow-head/2")
        eventually(
            lambda: any(s["active"] for s in proxy.servers().values()), timeout=5
        )
        busy = next(name for name, s in proxy.servers().items() if s["active"])
        with ClientConnection(proxy.web) as connection:
            picks = Counter(proxy.served_by(connection) for _ in range(20))
        assert busy not in picks, picks
        assert sorted(picks.values()) == [10, 10], picks
        assert origin_of(slow.result(timeout=10)) == busy


def test_hash_on_a_header_pins_each_user_to_one_server(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """hash on header:X-User sends each of 40 users to one server, over all 3."""
    origins = start_origins("a", "b", "c")
    proxy = start_proxy(origins, "balance = hash\nbalance.key = header:X-User")
    seen: dict[str, set[str]] = {}
    with ClientConnection(proxy.web) as connection:
        for _ in range(3):
            for user in range(40):
                response = proxy.request(
                    connection, headers=[(b"X-User", b"u%d" % user)]
                )
                seen.setdefault(f"u{user}", set()).add(origin_of(response))
    assert all(len(servers) == 1 for servers in seen.values()), seen
    assert set().union(*seen.values()) == {"a", "b", "c"}, seen


def served_from(source: str, port: int) -> str:
    """A GET on a new connection from loopback address ``source``; who answered."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", "/echo", headers={"Host": "a.example"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
        return str(answer.getheader("X-Origin"))
    finally:
        connection.close()


def test_hash_on_client_ip_keeps_each_client_on_one_server(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """hash on client_ip sends every connection of a client to one server."""
    origins = start_origins("a", "b", "c")
    proxy = start_proxy(origins, "balance = hash\nbalance.key = client_ip")
    by_client = {
        f"127.0.0.{host}": {served_from(f"127.0.0.{host}", proxy.web) for _ in range(4)}
        for host in range(1, 13)
    }
    assert all(len(servers) == 1 for servers in by_client.values()), by_client
    assert len(set().union(*by_client.values())) >= 2, by_client


def test_random_two_spreads_requests_roughly_evenly(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """random_two gives each of 3 idle servers 100 +- 35 of 300 requests."""
    origins = start_origins("a", "b", "c")
    proxy = start_proxy(origins, "balance = random_two")
    with ClientConnection(proxy.web) as connection:
        picks = Counter(proxy.served_by(connection) for _ in range(300))
    assert set(picks) == {"a", "b", "c"}, picks
    assert all(65 <= count <= 135 for count in picks.values()), picks


def test_least_time_steers_away_from_a_server_that_was_slow(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """least_time sends nothing more to a server that took 0.6 s to answer."""
    # How a is made slow: SIGSTOP before the first request (the kernel still
    # accepts connections), SIGCONT 0.6 s after a request reached it.
    a, b, c = start_origins("a", "b", "c")
    proxy = start_proxy([a, b, c], "balance = least_time")
    a.signal(signal.SIGSTOP)

    def settled(request: Future[Response]) -> bool:
        return request.done() or proxy.servers()["a"]["active"] == 1

    try:
        with ThreadPoolExecutor(1) as pool:
            # A server without a response yet is tried at once, so one of the
            # first three requests (sent one at a time) goes to a and waits.
            for _ in range(3):
                stuck = pool.submit(get, proxy.web, b"/echo")
                stuck_since = time.monotonic()
                eventually(functools.partial(settled, stuck), timeout=5)
                if not stuck.done():
                    break
            assert proxy.servers()["a"]["active"] == 1
            time.sleep(max(0.0, stuck_since + 0.6 - time.monotonic()))
            a.signal(signal.SIGCONT)
            assert origin_of(stuck.result(timeout=10)) == "a"
    finally:
        a.signal(signal.SIGCONT)
    with ClientConnection(proxy.web) as connection:
        picks = Counter(proxy.served_by(connection) for _ in range(30))
    assert "a" not in picks, picks
    assert set(picks) == {"b", "c"}, picks


def sticky_cookie(response: Response) -> bytes | None:
    """The ``EP_STICKY=VALUE`` that ``response`` sets, or None."""
    for value in response.values(b"set-cookie"):
        if value.startswith(b"EP_STICKY="):
            return value.partition(b";")[0]
    return None


def test_sticky_cookie_pins_a_client_until_its_server_is_disabled(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """sticky pins by cookie; a disabled server's clients move and get a new one."""
    origins = start_origins("a", "b", "c")
    by_name = {origin.name: origin for origin in origins}
    proxy = start_proxy(origins, "balance = sticky")
    with ClientConnection(proxy.web) as connection:
        first = proxy.request(connection)
        cookie = sticky_cookie(first)
        assert cookie is not None, first.headers
        pinned = origin_of(first)
        for _ in range(10):
            response = proxy.request(connection, cookie=cookie)
            assert origin_of(response) == pinned
            assert sticky_cookie(response) is None
        state = proxy.set_admin_state(by_name[pinned], "disable")
        assert state["status"] == "disabled"
        moved = proxy.request(connection, cookie=cookie)
        new_cookie = sticky_cookie(moved)
        assert origin_of(moved) != pinned
        assert new_cookie is not None and new_cookie != cookie
        again = {proxy.served_by(connection, new_cookie) for _ in range(10)}
        assert again == {origin_of(moved)}
