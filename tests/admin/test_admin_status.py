"""Tests for edgeproxy.admin.status: the JSON status and runtime server control."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from edgeproxy.admin.status import admin_site
from edgeproxy.config.loader import parse_config
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.registry import discover
from edgeproxy.snapshot import SnapshotHolder, build_snapshot

CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:8080
routes = all
[route:all]
upstream = app
[upstream:app]
servers = 127.0.0.1:9001, 127.0.0.1:9002 backup
"""


def make_holder() -> tuple[SnapshotHolder, MemoryReactorClock]:
    """A holder over a small config, on a fake clock."""
    reactor = MemoryReactorClock()
    config = parse_config(CONFIG)
    snapshot = build_snapshot(config, discover(), PluginEnvironment(reactor, Path(".")))
    return SnapshotHolder(snapshot), reactor


def call(
    holder: SnapshotHolder, reactor: MemoryReactorClock, method: bytes, path: bytes
) -> tuple[int, object]:
    """Run one request through the admin site; return status and JSON body."""
    site = admin_site(holder, reactor)
    request = DummyRequest(path.lstrip(b"/").split(b"/"))
    request.method = method
    resource = site.getResourceFor(request)
    body = resource.render(request)
    return request.responseCode or 200, json.loads(body)


def test_status_lists_listeners_and_servers() -> None:
    """GET /status shows each listener and each server's state and counters."""
    holder, reactor = make_holder()
    status, body = call(holder, reactor, b"GET", b"/status")
    assert status == 200
    assert body["listeners"] == {"web": {"protocol": "http", "endpoint": "tcp:8080"}}  # type: ignore[index]
    servers = body["upstreams"]["app"]["servers"]  # type: ignore[index]
    assert [(s["key"], s["status"]) for s in servers] == [
        ("127.0.0.1:9001", "up"),
        ("127.0.0.1:9002", "up"),
    ]


def test_drain_and_enable() -> None:
    """POST .../drain takes a server out of rotation; .../enable puts it back."""
    holder, reactor = make_holder()
    status, body = call(
        holder, reactor, b"POST", b"/upstreams/app/servers/127.0.0.1:9001/drain"
    )
    assert (status, body["status"]) == (200, "draining")  # type: ignore[index]
    pool = holder.current.pools["app"]
    assert pool.server("127.0.0.1:9001").status(reactor.seconds()) == "draining"
    status, body = call(
        holder, reactor, b"POST", b"/upstreams/app/servers/127.0.0.1:9001/enable"
    )
    assert (status, body["status"]) == (200, "up")  # type: ignore[index]


def test_unknown_targets_are_404() -> None:
    """Unknown upstreams, servers and actions answer 404 with a reason."""
    holder, reactor = make_holder()
    for path in (
        b"/upstreams/nope/servers/127.0.0.1:9001/drain",
        b"/upstreams/app/servers/127.0.0.1:1/drain",
        b"/upstreams/app/servers/127.0.0.1:9001/explode",
    ):
        status, body = call(holder, reactor, b"POST", path)
        assert status == 404
        assert "error" in body  # type: ignore[operator]
