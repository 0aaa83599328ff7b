"""
The access log of a real ``twistd edgeproxy`` before a real origin.

One line per request in the file ``access_log`` names: a proxied request with
its route, server, consumer and request id; a filter's refusal with the
filter's name and reason; a malformed request.  A reload (``SIGHUP``) opens the
file again, as ``logrotate`` needs, and switches to the JSON format when the
configuration says so.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.integration.http_client import exchange
from tests.integration.test_gateway_auth import running_gateway

CONFIG = """
[edgeproxy]
access_log = logs/access.log
{format_line}

[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = api

[route:api]
path_prefix = /
upstream = app
filters = ids, partners

[upstream:app]
servers = {origin}

[filter:ids]
plugin = request_id

[filter:partners]
plugin = api_key
key_from = header:X-API-Key
keys = acme:acme-key-0001
"""


def lines_of(path: Path, count: int) -> list[bytes]:
    """The first ``count`` lines of ``path``, once it has them (5 s at most)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} has fewer than {count} lines")


def test_requests_refusals_and_rotation_are_logged(tmp_path: Path) -> None:
    """Each request is one line, with who answered and why; SIGHUP reopens."""
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "access.log"
    with running_gateway(tmp_path, CONFIG, format_line="") as gateway:
        served = gateway.get(b"/orders?page=2", [(b"X-API-Key", b"acme-key-0001")])
        assert served.status == 200
        refused = gateway.refused(b"/orders")
        assert refused.status == 401
        garbage = exchange(gateway.port, b"GET /a b c\r\n\r\n")
        assert garbage.status == 400
        first, second, third = lines_of(log, 3)

        request_id = served.header(b"X-Request-ID")
        assert request_id is not None
        assert first.startswith(b"127.0.0.1 - acme [")
        assert b'"GET /orders?page=2 HTTP/1.1" 200 ' in first
        assert b" route=api upstream=" + gateway.origin.address.encode() in first
        assert b" rid=" + request_id + b" reason=-" in first

        assert b'"GET /orders HTTP/1.1" 401 ' in second
        assert b' reason="filter partners: ' in second
        assert b" upstream=- " in second
        assert refused.header(b"X-Request-ID") in second

        assert b'] "-" 400 ' in third

        # logrotate: move the file away, switch the format, then SIGHUP.
        log.rename(log.with_suffix(".log.1"))
        config = tmp_path / "edgeproxy.ini"
        config.write_text(
            config.read_text().replace(
                "access_log = logs/access.log\n",
                "access_log = logs/access.log\naccess_log_format = json\n",
            )
        )
        os.kill(gateway.process.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "configuration reloaded" not in gateway.process.log_text():
            assert time.monotonic() < deadline, gateway.process.log_text()
            time.sleep(0.05)
        again = gateway.get(b"/after", [(b"X-API-Key", b"acme-key-0001")])
        assert again.status == 200
        [line] = lines_of(log, 1)
        document = json.loads(line)
        assert (document["target"], document["status"]) == ("/after", 200)
        assert document["consumer"] == "acme"
        assert document["request_id"] == again.header(b"X-Request-ID").decode()
        assert len(log.with_suffix(".log.1").read_bytes().splitlines()) == 3


TCP_CONFIG = """
[edgeproxy]
access_log = tcp.log

[listener:raw]
protocol = tcp
endpoint = tcp:{port}:interface=127.0.0.1
upstream = app
deny = 10.0.0.0/8

[upstream:app]
servers = {origin}
"""


def test_tcp_connections_are_logged_when_they_close(tmp_path: Path) -> None:
    """A TCP connection's line names the listener, server, bytes and end."""
    log = tmp_path / "tcp.log"
    with running_gateway(tmp_path, TCP_CONFIG) as gateway:
        request = b"GET /tcp HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
        response = exchange(gateway.port, request)
        assert response.status == 200
        # One line is the start-up probe's connection (no bytes); the two
        # may close in either order.
        lines = lines_of(log, 2)
    [probe] = [line for line in lines if line.endswith(b' 0 0 end="closed"')]
    [line] = [line for line in lines if line is not probe]
    address = gateway.origin.address.encode()
    assert line.startswith(b"127.0.0.1:")
    assert b"] raw " + address + b" " in line
    assert b" %d " % len(request) in line
    assert line.endswith(b' end="closed"')
