"""
A tcp listener's limits, end to end: connection caps, allow/deny, timeouts.

Clients come from different loopback addresses (127.0.0.1, 127.0.0.2, ...)
to stand for different hosts.  Real processes on loopback; every socket
operation is bounded, and waits are measured against the configured times.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration import test_tcp_proxy_protocol
from tests.integration.test_tcp_balancer import StartServer, start_echo
from tests.integration.test_tcp_proxy_protocol import Client, Listener, StartListener

start_server = test_tcp_proxy_protocol.start_server
start_listener = test_tcp_proxy_protocol.start_listener

PING = b"ping"


def served(client: Client) -> bool:
    """Whether ``client`` gets its bytes echoed (not closed or reset)."""
    try:
        client.send(PING)
        return client.read(len(PING)) == PING
    except ConnectionError:
        return False


def served_within(port: int, seconds: float, source: str = "127.0.0.1") -> None:
    """Fail unless a new connection from ``source`` is served within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        with Client(port, source) as client:
            if served(client):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"no connection was served within {seconds} s")
        time.sleep(0.05)


def test_max_connections_closes_the_excess_at_once(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """max_connections = 2: a third client is closed; the two keep working."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([echo_port], max_connections="2")
    with Client(listener.port) as first, Client(listener.port, "127.0.0.2") as second:
        assert served(first)
        assert served(second)
        with Client(listener.port, "127.0.0.3") as third:
            assert third.wait_closed() < 1.0
        assert served(first)
        assert served(second)
        first.close()
        # The slot is freed once edgeproxy has seen the close.
        served_within(listener.port, 3.0)
    assert "refused 127.0.0.3" in listener.process.log_text()
    assert "(max_connections)" in listener.process.log_text()


def test_max_connections_per_ip_leaves_other_addresses_alone(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """max_connections_per_ip = 1: a second client of one address is closed only."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([echo_port], max_connections_per_ip="1")
    with Client(listener.port) as first:
        assert served(first)
        with Client(listener.port) as second:
            assert second.wait_closed() < 1.0
        with Client(listener.port, "127.0.0.2") as other:
            assert served(other)
        assert served(first)
    assert "(max_connections_per_ip)" in listener.process.log_text()


def reload_config(listener: Listener) -> None:
    """Reload edgeproxy's (unchanged) configuration: POST /reload on the admin API."""
    url = f"http://127.0.0.1:{listener.admin_port}/reload"
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read()) == {"reloaded": True}


@pytest.mark.parametrize("cap", ["max_connections", "max_connections_per_ip"])
def test_connection_caps_hold_across_a_reload(
    cap: str, start_server: StartServer, start_listener: StartListener
) -> None:
    """A reload keeps counting the connections already open against the cap."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([echo_port], **{cap: "1"})
    with Client(listener.port) as first:
        assert served(first)
        reload_config(listener)
        with Client(listener.port) as second:
            assert not served(second)
        assert served(first)


def test_allow_and_deny_judge_the_client_address(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """Only allowed addresses are served, and deny wins over allow."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener(
        [echo_port], allow="127.0.0.2, 127.0.0.3", deny="127.0.0.3"
    )
    for refused in ("127.0.0.1", "127.0.0.3"):
        with Client(listener.port, refused) as client:
            assert client.wait_closed() < 1.0, refused
    with Client(listener.port, "127.0.0.2") as client:
        assert served(client)
    log = listener.process.log_text()
    assert log.count("denied by allow/deny") == 2


def test_idle_timeout_closes_a_quiet_tunnel_only(
    start_server: StartServer, start_listener: StartListener
) -> None:
    """idle_timeout = 1s: traffic keeps the tunnel open; a second of none ends it."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([echo_port], idle_timeout="1s")
    with Client(listener.port) as client:
        for _ in range(4):
            assert served(client)
            time.sleep(0.4)
        assert served(client)
        assert 0.8 <= client.wait_closed(within=4.0) <= 2.5
    assert "Traceback" not in listener.process.log_text()


@pytest.fixture
def unanswering_port() -> Iterator[int]:
    """
    A port on 127.0.0.1 that never answers a SYN.

    A listening socket with a backlog of 0 takes one connection into its
    accept queue; nobody accepts it, so the queue stays full and Linux drops
    every later SYN: the connect neither succeeds nor is refused.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            with socket.socket() as probe:
                probe.settimeout(0.3)
                try:
                    probe.connect(("127.0.0.1", port))
                except TimeoutError:
                    yield port
                    return
            pytest.skip("this kernel answers SYNs beyond a full accept queue")


def test_connect_timeout_gives_up_on_a_silent_server(
    unanswering_port: int, start_listener: StartListener
) -> None:
    """connect_timeout = 500ms: with no other server, the client is then closed."""
    listener = start_listener([unanswering_port], connect_timeout="500ms")
    with Client(listener.port) as client:
        client.send(PING)
        assert 0.4 <= client.wait_closed(within=4.0) <= 2.0
    assert f"connect to 127.0.0.1:{unanswering_port}" in listener.process.log_text()


def test_connect_timeout_moves_on_to_the_next_server(
    unanswering_port: int, start_server: StartServer, start_listener: StartListener
) -> None:
    """After connect_timeout the next server serves the client that waited."""
    echo_port, _ = start_echo(start_server)
    listener = start_listener([unanswering_port, echo_port], connect_timeout="500ms")
    waits = []
    for _ in range(2):
        started = time.monotonic()
        with Client(listener.port) as client:
            assert served(client)
        waits.append(time.monotonic() - started)
    # One of the two met the silent server first (max_fails = 1 spares the other).
    assert 0.4 <= max(waits) <= 2.0
    assert f"connect to 127.0.0.1:{unanswering_port}" in listener.process.log_text()
