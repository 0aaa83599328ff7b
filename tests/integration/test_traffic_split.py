"""
Traffic splits through a real ``twistd edgeproxy``: ``upstream = stable 90%,
canary 10%`` over two real origins (named ``stable`` and ``canary``, each
answering with ``X-Origin: NAME``), by weight, sticky by a header, overridden
by a header, and counted in the admin ``/status`` document.  Every process is
ended by its PID.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import EdgeproxyProcess, free_port, wait_for_port
from tests.integration.http_client import (
    ClientConnection,
    OriginProcess,
    Response,
    exchange,
    request_bytes,
)

CONFIG = """
[edgeproxy]
admin = tcp:{admin}:interface=127.0.0.1

[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = weighted, sticky, override

[route:weighted]
path_prefix = /weighted/
strip_prefix = /weighted
upstream = stable 90%, canary 10%

[route:sticky]
path_prefix = /sticky/
strip_prefix = /sticky
upstream = stable 90%, canary 10%
split_key = header:X-User

[route:override]
path_prefix = /override/
strip_prefix = /override
upstream = stable 90%, canary 10%
split_key = header:X-User
split_override = header:X-Canary

[upstream:stable]
servers = {stable}

[upstream:canary]
servers = {canary}
"""

CONNECTIONS = 4
"""Keep-alive client connections the bulk test spreads its requests over."""

PIPELINE = 50
"""Requests sent on a connection before their responses are read."""


@dataclass
class SplitGateway:
    """edgeproxy splitting three routes between the stable and canary origins."""

    port: int
    admin: int

    def splits(self) -> dict[str, dict[str, int]]:
        """The ``splits`` counters of ``GET /status``, by route."""
        response = exchange(self.admin, request_bytes(b"GET", b"/status"))
        assert response.status == 200, response
        document: dict[str, Any] = response.json()
        counts: dict[str, dict[str, int]] = document["splits"]
        return counts


def origin_of(response: Response) -> str:
    """The name of the origin that answered."""
    assert response.status == 200, response
    name = response.header(b"X-Origin")
    assert name is not None, response
    return name.decode()


def send_all(port: int, requests: Sequence[bytes]) -> list[str]:
    """
    Send ``requests`` on one keep-alive connection, ``PIPELINE`` at a time;
    the origin that answered each, in order.
    """
    served: list[str] = []
    with ClientConnection(port) as connection:
        for start in range(0, len(requests), PIPELINE):
            batch = requests[start : start + PIPELINE]
            connection.send(b"".join(batch))
            served += [origin_of(connection.read_response()) for _ in batch]
    return served


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SplitGateway]:
    """The stable and canary origins and edgeproxy splitting between them."""
    directory = tmp_path_factory.mktemp("split")
    with ExitStack() as running:
        stable = OriginProcess("stable", directory / "stable.log")
        running.callback(stable.stop)
        canary = OriginProcess("canary", directory / "canary.log")
        running.callback(canary.stop)
        port, admin = free_port(), free_port()
        config = directory / "edgeproxy.ini"
        config.write_text(
            CONFIG.format(
                port=port, admin=admin, stable=stable.address, canary=canary.address
            )
        )
        process = EdgeproxyProcess(config, port)
        running.callback(process.stop)
        wait_for_port(admin, process.process)
        yield SplitGateway(port, admin)
    assert "Traceback" not in process.log_text(), process.log_text()


def test_weighted_split_over_10000_requests(gateway: SplitGateway) -> None:
    """10,000 keep-alive requests split 90/10 (within 1 %), as /status counts them."""
    total = 10_000
    request = request_bytes(b"GET", b"/weighted/status/200")
    per_connection = total // CONNECTIONS
    results: list[list[str]] = [[] for _ in range(CONNECTIONS)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = send_all(gateway.port, [request] * per_connection)
        except BaseException as error:  # reported by the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    served = Counter(name for result in results for name in result)
    assert sum(served.values()) == total
    assert abs(served["canary"] / total - 0.10) <= 0.01, served
    assert abs(served["stable"] / total - 0.90) <= 0.01, served
    # Without a split_key the shares are exact, not just close.
    assert served == {"stable": 9000, "canary": 1000}
    assert gateway.splits()["weighted"] == dict(served)


def user_requests(route: bytes, users: Sequence[str], rounds: int) -> list[bytes]:
    """``rounds`` GETs per user (``X-User: NAME``), the users taking turns."""
    return [
        request_bytes(b"GET", route + b"status/200", headers=[(b"X-User", u.encode())])
        for _ in range(rounds)
        for u in users
    ]


def sides_by_user(users: Sequence[str], served: Sequence[str]) -> dict[str, set[str]]:
    """The origins that served each user, from :func:`user_requests`' answers."""
    sides: dict[str, set[str]] = {user: set() for user in users}
    for index, name in enumerate(served):
        sides[users[index % len(users)]].add(name)
    return sides


def test_split_key_keeps_each_user_on_one_side(gateway: SplitGateway) -> None:
    """With split_key = header:X-User every user always reaches the same origin."""
    users = [f"user-{n}" for n in range(1000)]
    served = send_all(gateway.port, user_requests(b"/sticky/", users, 3))
    sides = sides_by_user(users, served)
    assert all(len(names) == 1 for names in sides.values()), sides
    on_canary = sum(names == {"canary"} for names in sides.values())
    # Users, not requests, are split: about 10 % of them (the hash is fixed).
    assert 70 <= on_canary <= 130, on_canary
    assert gateway.splits()["sticky"] == dict(Counter(served))


def test_split_override_header_chooses_the_side(gateway: SplitGateway) -> None:
    """X-Canary naming an upstream wins over the user's side; other values do not."""
    users = [f"user-{n}" for n in range(200)]
    plain = send_all(gateway.port, user_requests(b"/override/", users, 1))
    sent: list[str] = list(plain)
    for value, expected in ((b"canary", "canary"), (b"stable", "stable")):
        requests = [
            request_bytes(
                b"GET",
                b"/override/status/200",
                headers=[(b"X-User", user.encode()), (b"X-Canary", value)],
            )
            for user in users
        ]
        served = send_all(gateway.port, requests)
        assert set(served) == {expected}
        sent += served
    bogus = [
        request_bytes(
            b"GET",
            b"/override/status/200",
            headers=[(b"X-User", user.encode()), (b"X-Canary", b"production")],
        )
        for user in users
    ]
    served = send_all(gateway.port, bogus)
    assert served == plain  # an unknown name leaves each user where they were
    sent += served
    assert set(plain) == {"stable", "canary"}
    assert gateway.splits()["override"] == dict(Counter(sent))
