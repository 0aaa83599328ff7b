"""
Failure and recovery through a real ``twistd edgeproxy``: a server killed under
load, active health checks taking a dead server out and back, backups, and a
pool with no server left.  The harness comes from test_balancing.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.integration.http_client import ClientConnection, get, request_bytes
from tests.integration.test_balancing import (
    StartOrigins,
    StartProxy,
    eventually,
    origin_starter,  # noqa: F401  (a fixture: pytest finds it by its name here)
    proxy_starter,  # noqa: F401  (a fixture: pytest finds it by its name here)
)

ACTIVE_HEALTH = """
health = http_get
health.path = /echo
health_interval = 200ms
rise = 2
fall = 2
"""
"""Active checks as fast as a test needs: down after 2 x 200 ms, up after 2 more."""


def steady_load(
    port: int, requests: int, seconds: float
) -> list[tuple[int, str | None]]:
    """``requests`` GETs spread evenly over ``seconds`` on one keep-alive connection."""
    results: list[tuple[int, str | None]] = []
    started = time.monotonic()
    connection = ClientConnection(port)
    try:
        for index in range(requests):
            time.sleep(
                max(0.0, started + index * seconds / requests - time.monotonic())
            )
            connection.send(request_bytes(b"GET", b"/echo"))
            response = connection.read_response()
            name = response.header(b"X-Origin")
            results.append((response.status, name.decode() if name else None))
            if response.header(b"Connection") == b"close":
                connection.close()
                connection = ClientConnection(port)
    finally:
        connection.close()
    return results


def test_a_server_killed_under_load_costs_no_client_an_error(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """SIGKILL of a server under 300 GETs: every GET is 200; the server is out."""
    a, b, c = start_origins("a", "b", "c")
    proxy = start_proxy([a, b, c], "max_fails = 2\nfail_timeout = 30s")
    killer = threading.Timer(1.0, a.kill)
    with ThreadPoolExecutor(3) as pool:
        loads = [pool.submit(steady_load, proxy.web, 100, 3.0) for _ in range(3)]
        killer.start()
        results = [result for load in loads for result in load.result(timeout=30)]
    killer.join()
    failed = [result for result in results if result[0] != 200]
    assert not failed, failed
    assert 0 < Counter(name for _, name in results)["a"] < 100
    servers = proxy.servers()
    assert servers["a"]["status"] == "down", servers
    assert servers["a"]["reason"] == "2 failed requests within 30s", servers
    # Retries and failures must not leak in-flight counts (least_conn reads them).
    assert [state["active"] for state in servers.values()] == [0, 0, 0], servers
    with ClientConnection(proxy.web) as connection:
        assert "a" not in {proxy.served_by(connection) for _ in range(10)}


def test_active_health_check_takes_a_dead_server_out_and_back(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """http_get every 200 ms, fall 2, rise 2: a dead server is out, then back, fast."""
    # Bound: fall (or rise) x interval = 0.4 s, plus a probe's wait for its
    # turn (one interval) and 0.6 s for a busy machine.
    a, b = start_origins("a", "b")
    proxy = start_proxy([a, b], ACTIVE_HEALTH + "max_fails = 0")
    eventually(lambda: proxy.servers()["a"]["last_check"] is not None, timeout=5)
    a.kill()
    took = proxy.wait_for("a", "down")
    assert took < 1.2, f"marked down after {took:.2f} s"
    assert proxy.servers()["a"]["reason"] == "connection refused"
    with ClientConnection(proxy.web) as connection:
        assert {proxy.served_by(connection) for _ in range(6)} == {"b"}
    a.restart()
    took = proxy.wait_for("a", "up")
    assert took < 1.2, f"back up after {took:.2f} s"
    with ClientConnection(proxy.web) as connection:
        assert Counter(proxy.served_by(connection) for _ in range(6))["a"] == 3


def test_a_backup_serves_only_while_the_primary_is_down(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """servers = a, b backup: b serves nothing, then everything, then nothing."""
    a, b = start_origins("a", "b")
    proxy = start_proxy([a, b], ACTIVE_HEALTH + "fail_timeout = 1s", "{}, {} backup")

    def picks() -> Counter[str]:
        with ClientConnection(proxy.web) as connection:
            return Counter(proxy.served_by(connection) for _ in range(20))

    assert picks() == {"a": 20}
    a.kill()
    assert picks() == {"b": 20}
    a.restart()
    proxy.wait_for("a", "up")
    assert picks() == {"a": 20}
    assert proxy.servers()["b"]["total_requests"] == 20


def test_every_server_down_is_503_at_once(
    start_origins: StartOrigins, start_proxy: StartProxy
) -> None:
    """With every server found dead by health checks, requests get 503 in < 1 s."""
    origins = start_origins("a", "b")
    proxy = start_proxy(origins, ACTIVE_HEALTH)
    for origin in origins:
        origin.kill()
    for origin in origins:
        proxy.wait_for(origin.name, "down")
    for _ in range(5):
        started = time.monotonic()
        response = get(proxy.web, b"/echo")
        took = time.monotonic() - started
        assert response.status == 503, response
        assert took < 1.0, f"503 after {took:.2f} s"
