"""Reloading a running edgeproxy: SIGHUP and POST /reload, without dropping anything."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import EdgeproxyProcess, free_port, wait_for_port
from tests.integration.http_client import (
    ClientConnection,
    OriginProcess,
    get,
    request_bytes,
)

CONFIG = """
[edgeproxy]
admin = tcp:{admin}:interface=127.0.0.1

[listener:web]
protocol = http
endpoint = tcp:{web}:interface=127.0.0.1
routes = all

[route:all]
upstream = app

[upstream:app]
servers = {servers}
max_fails = 0
"""


@pytest.fixture
def origins(tmp_path: Path) -> Iterator[tuple[OriginProcess, OriginProcess]]:
    """Two origins, a and b."""
    a = OriginProcess("a", tmp_path / "a.log")
    b = OriginProcess("b", tmp_path / "b.log")
    yield a, b
    a.stop()
    b.stop()


def admin(port: int, method: str, path: str) -> tuple[int, object]:
    """Call the admin API; return the status and the JSON body."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def served_by(port: int) -> str:
    """Which origin answers a new request."""
    return get(port, b"/echo").json()["server"]  # type: ignore[no-any-return]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds, or fail."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.05)


def test_sighup_applies_a_new_config_without_closing_connections(
    tmp_path: Path, origins: tuple[OriginProcess, OriginProcess]
) -> None:
    """A SIGHUP reroutes new requests, opens new listeners, keeps open connections."""
    a, b = origins
    ports = {"admin": free_port(), "web": free_port()}
    config = tmp_path / "edgeproxy.ini"
    config.write_text(CONFIG.format(servers=a.address, **ports))
    proxy = EdgeproxyProcess(config, ports["web"])
    try:
        assert served_by(ports["web"]) == "a"
        with ClientConnection(ports["web"]) as kept:
            kept.send(request_bytes(b"GET", b"/echo", b"a.example"))
            assert kept.read_response().json()["server"] == "a"
            extra = free_port()
            config.write_text(
                CONFIG.format(servers=b.address, **ports)
                + f"\n[listener:more]\nprotocol = http\n"
                f"endpoint = tcp:{extra}:interface=127.0.0.1\nroutes = all\n"
            )
            proxy.process.send_signal(signal.SIGHUP)
            eventually(lambda: served_by(ports["web"]) == "b")
            wait_for_port(extra, proxy.process)
            assert served_by(extra) == "b"
            # The connection opened before the reload is still served.
            kept.send(request_bytes(b"GET", b"/echo", b"a.example"))
            assert kept.read_response().status == 200
        assert "configuration reloaded" in proxy.log_text()
    finally:
        proxy.stop()


def test_a_broken_config_is_refused_and_the_running_one_kept(
    tmp_path: Path, origins: tuple[OriginProcess, OriginProcess]
) -> None:
    """POST /reload with a bad file answers 409, logs why, and changes nothing."""
    a, _ = origins
    ports = {"admin": free_port(), "web": free_port()}
    config = tmp_path / "edgeproxy.ini"
    config.write_text(CONFIG.format(servers=a.address, **ports))
    proxy = EdgeproxyProcess(config, ports["web"])
    try:
        config.write_text(
            CONFIG.format(servers=a.address, **ports) + "fail_timeout = 30x\n"
        )
        status, body = admin(ports["admin"], "POST", "/reload")
        assert status == 409
        assert body == {
            "reloaded": False,
            "error": "the configuration was refused: see the log",
        }
        assert "[upstream:app] fail_timeout: '30x' is not a duration" in (
            proxy.log_text()
        )
        assert served_by(ports["web"]) == "a"
    finally:
        proxy.stop()


def test_server_state_survives_a_reload(
    tmp_path: Path, origins: tuple[OriginProcess, OriginProcess]
) -> None:
    """A server disabled at run time stays disabled after a reload keeps it."""
    a, b = origins
    ports = {"admin": free_port(), "web": free_port()}
    config = tmp_path / "edgeproxy.ini"
    servers = f"{a.address}, {b.address}"
    config.write_text(CONFIG.format(servers=servers, **ports))
    proxy = EdgeproxyProcess(config, ports["web"])
    try:
        path = f"/upstreams/app/servers/{a.address}/disable"
        assert admin(ports["admin"], "POST", path)[0] == 200
        config.write_text(
            CONFIG.format(servers=servers, **ports) + "balance = weighted\n"
        )
        assert admin(ports["admin"], "POST", "/reload") == (200, {"reloaded": True})
        _, status = admin(ports["admin"], "GET", "/status")
        servers_state = {
            s["key"]: s["status"]
            for s in status["upstreams"]["app"]["servers"]  # type: ignore[index]
        }
        assert servers_state == {a.address: "disabled", b.address: "up"}
        assert {served_by(ports["web"]) for _ in range(6)} == {"b"}
    finally:
        proxy.stop()
