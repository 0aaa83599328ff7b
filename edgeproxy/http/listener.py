"""The ``protocol = http`` listener: a protocol factory over the proxy glue."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IProtocolFactory

from edgeproxy.access_log.sink import AccessLog
from edgeproxy.config.model import ListenerConfig
from edgeproxy.http.access import ExchangeLogger
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.proxy import ProxyRequestHandler
from edgeproxy.http.server import HTTPServerFactory
from edgeproxy.http.settings import ServerSettings
from edgeproxy.snapshot import SnapshotHolder
from edgeproxy.tls import TLSServerSettings, is_tls_endpoint, tls_server_factory


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


def tls_settings(listener: ListenerConfig) -> TLSServerSettings | None:
    """How ``listener`` terminates TLS itself, or ``None`` when it does not."""
    if not listener.tls_certificates:
        return None
    return TLSServerSettings(
        listener.tls_certificates, listener.tls_min_version, listener.tls_ciphers
    )


def http_listener_factory(
    holder: SnapshotHolder,
    listener: ListenerConfig,
    reactor: Any,
    connections: ConnectionPool,
    access_log: AccessLog | None = None,
) -> IProtocolFactory:
    """
    The protocol factory of one ``http`` listener, behind TLS when it has
    ``tls_certificates``; ``access_log`` gets a record of each request.

    :raises ValueError: when a certificate cannot be served (the loader
        reported it already, unless the file changed since).
    """
    tls = tls_settings(listener)
    secure = tls is not None or is_tls_endpoint(listener.endpoint)
    scheme = b"https" if secure else b"http"
    handler = ProxyRequestHandler(holder, listener.name, scheme, reactor, connections)
    access = ExchangeLogger(access_log, reactor) if access_log is not None else None
    factory = HTTPServerFactory(reactor, handler, server_settings(listener), access)
    if tls is None:
        return factory
    return tls_server_factory(tls, factory, reactor)
