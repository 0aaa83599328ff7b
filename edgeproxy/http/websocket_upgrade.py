"""
The WebSocket passthrough of an ``http`` route: spotting an upgrade request,
and joining the client and the upstream connection once the server answered
``101 Switching Protocols``.
"""

from __future__ import annotations

from typing import Any

from edgeproxy.config.model import RouteConfig
from edgeproxy.core.message import RequestHead, ResponseHead
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.http.upstream_attempt import UpstreamAttempt
from edgeproxy.tunnel import EndReason, Tunnel


def is_websocket_upgrade(request: RequestHead) -> bool:
    """Whether ``request`` asks to upgrade to WebSocket (RFC 6455 4.1)."""
    return any(
        token.strip().lower() == b"websocket"
        for value in request.headers.get_all(b"upgrade")
        for token in value.split(b",")
    )


def open_tunnel(
    reactor: Any,
    config: RouteConfig,
    exchange: ServerExchange,
    head: ResponseHead,
    attempt: UpstreamAttempt,
    client_gone: bool,
) -> None:
    """
    Join the client and the upstream connection after a 101 (``head``).

    The tunnel, not the HTTP exchange, decides when the server is done with:
    ``attempt`` is accounted when the tunnel closes, failed if the server
    reset it.  If the client is gone, the upstream connection is closed.
    """
    connection = attempt.connection
    assert connection is not None
    tunnel = Tunnel(
        reactor,
        idle_timeout=config.websocket_idle_timeout or None,
        max_lifetime=config.websocket_max_lifetime or None,
        on_close=lambda stats: attempt.account(
            failed=stats.reason is EndReason.SERVER_RESET
        ),
    )
    if client_gone:
        connection.close()
        attempt.account(failed=False)
        return
    exchange.switch_protocols(head, tunnel.client)
    connection.switch_protocols(tunnel.server)
