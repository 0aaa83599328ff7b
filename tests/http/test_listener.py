"""Tests for edgeproxy.http.listener: a listener's settings, routes and scheme."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from edgeproxy.config.loader import parse_config
from edgeproxy.config.model import ListenerConfig
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.listener import http_listener_factory, server_settings
from edgeproxy.http.server import HTTPServerProtocol
from edgeproxy.http.settings import ServerSettings
from edgeproxy.registry import discover
from edgeproxy.snapshot import SnapshotHolder, build_snapshot
from edgeproxy.testing import environment
from tests.http.test_proxy import Client, Upstreams

CONFIG = """
[listener:public]
protocol = http
endpoint = tcp:8080
routes = site
{keys}

[listener:internal]
protocol = http
endpoint = tcp:8081
routes = admin

[route:site]
path_prefix = /
upstream = web

[route:admin]
path_prefix = /
upstream = backoffice

[upstream:web]
servers = 10.0.0.1:80

[upstream:backoffice]
servers = 10.0.0.9:80
"""
REGISTRY = discover()


class Listeners:
    """The http listeners of CONFIG on a MemoryReactorClock."""

    def __init__(self, keys: str = "") -> None:
        self.reactor = MemoryReactorClock()
        snapshot = build_snapshot(
            parse_config(CONFIG.format(keys=keys)), REGISTRY, environment(self.reactor)
        )
        self.holder = SnapshotHolder(snapshot)
        self.config = snapshot.config
        self.connections = ConnectionPool(self.reactor)
        self.upstreams = Upstreams(self.reactor)

    def client(self, listener: ListenerConfig | str) -> Client:
        """A client connected to ``listener`` (a name or a changed config)."""
        if isinstance(listener, str):
            listener = self.config.listeners[listener]
        factory = http_listener_factory(
            self.holder, listener, self.reactor, self.connections
        )
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, HTTPServerProtocol)
        return Client(protocol)


GET = b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"


@pytest.mark.parametrize(
    ("key", "field", "expected"),
    [
        ("max_head_size = 8KB", "max_head_size", 8 * 1024),
        ("max_header_count = 20", "max_field_count", 20),
        ("max_uri_length = 2KB", "max_target_length", 2 * 1024),
        ("max_body_size = 10MB", "max_body_size", 10 * 1024 * 1024),
        ("head_timeout = 5s", "head_timeout", 5.0),
        ("body_timeout = 7s", "body_timeout", 7.0),
        ("keepalive_timeout = 2m", "keep_alive_timeout", 120.0),
        ("send_timeout = 250ms", "send_timeout", 0.25),
    ],
)
def test_listener_keys_become_server_settings(
    key: str, field: str, expected: float
) -> None:
    """Each http listener key sets its server setting; the others keep defaults."""
    listener = parse_config(CONFIG.format(keys=key)).listeners["public"]
    plain = parse_config(CONFIG.format(keys="")).listeners["public"]
    changed: dict[str, Any] = {field: expected}
    assert server_settings(listener) == dataclasses.replace(
        server_settings(plain), **changed
    )


def test_listener_defaults_match_the_documented_ones() -> None:
    """A listener without limit keys gets the configuration's documented defaults."""
    listener = parse_config(CONFIG.format(keys="")).listeners["public"]
    assert server_settings(listener) == ServerSettings(
        max_head_size=16 * 1024,
        max_field_count=100,
        max_target_length=8 * 1024,
        max_body_size=1024 * 1024,
        head_timeout=60.0,
        body_timeout=60.0,
        keep_alive_timeout=75.0,
        send_timeout=60.0,
    )


def test_each_listener_uses_its_own_routes() -> None:
    """The same request goes where each listener's routes send it."""
    listeners = Listeners()
    listeners.client("public").send(GET)
    listeners.client("internal").send(GET)
    assert [c[:2] for c in listeners.upstreams.connects()] == [
        ("10.0.0.1", 80),
        ("10.0.0.9", 80),
    ]


@pytest.mark.parametrize(
    ("endpoint", "scheme"),
    [
        ("tcp:8080", b"http"),
        ("tcp6:8080", b"http"),
        ("unix:/run/edgeproxy.sock", b"http"),
        ("ssl:8443:privateKey=key.pem", b"https"),
    ],
)
def test_scheme_follows_the_endpoint(endpoint: str, scheme: bytes) -> None:
    """A TLS endpoint makes requests https for forwarding fields; others http."""
    listeners = Listeners()
    listener = dataclasses.replace(
        listeners.config.listeners["public"], endpoint=endpoint
    )
    listeners.client(listener).send(GET)
    sent = listeners.upstreams.accept().received()
    assert b"\r\nX-Forwarded-Proto: " + scheme + b"\r\n" in sent


def test_listener_limits_apply_to_its_requests() -> None:
    """A listener's max_uri_length is enforced on its connections."""
    listeners = Listeners("max_uri_length = 16")
    client = listeners.client("public")
    client.send(b"GET /" + b"a" * 20 + b" HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    assert client.take().startswith(b"HTTP/1.1 414 ")
    assert listeners.upstreams.connects() == []


def test_listener_head_timeout_applies() -> None:
    """A listener's head_timeout answers a slow head with 408."""
    listeners = Listeners("head_timeout = 3s")
    client = listeners.client("public")
    client.send(b"GET / HTTP/1.1\r\n")
    listeners.reactor.advance(3)
    assert client.take().startswith(b"HTTP/1.1 408 ")
