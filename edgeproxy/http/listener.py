"""The ``protocol = http`` listener: a protocol factory over the proxy glue."""

from __future__ import annotations

from typing import Any

from edgeproxy.config.model import ListenerConfig
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.proxy import ProxyRequestHandler
from edgeproxy.http.server import HTTPServerFactory
from edgeproxy.http.settings import ServerSettings
from edgeproxy.snapshot import SnapshotHolder

_TLS_ENDPOINTS = ("ssl:", "tls:", "le:", "lets:")


def server_settings(listener: ListenerConfig) -> ServerSettings:
    """The client-side limits and timeouts of ``listener``."""
    return ServerSettings(
        max_head_size=listener.max_head_size,
        max_field_count=listener.max_header_count,
        max_target_length=listener.max_uri_length,
        max_body_size=listener.max_body_size,
        head_timeout=listener.head_timeout,
        body_timeout=listener.body_timeout,
        keep_alive_timeout=listener.keepalive_timeout,
        send_timeout=listener.send_timeout,
    )


def http_listener_factory(
    holder: SnapshotHolder,
    listener: ListenerConfig,
    reactor: Any,
    connections: ConnectionPool,
) -> HTTPServerFactory:
    """The protocol factory of one ``http`` listener."""
    scheme = b"https" if listener.endpoint.startswith(_TLS_ENDPOINTS) else b"http"
    handler = ProxyRequestHandler(holder, listener.name, scheme, reactor, connections)
    return HTTPServerFactory(reactor, handler, server_settings(listener))
