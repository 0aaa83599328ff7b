"""The context a request (or a TCP connection) carries through edgeproxy."""

from __future__ import annotations

from edgeproxy.core.message import Headers, RequestHead


class RequestContext:
    """
    What filters and balancing strategies know about one request or connection.

    :ivar client_host: the real client address (after the trusted-proxy rules).
    :ivar client_port: the client's port.
    :ivar route: the name of the matched route, or ``None`` (TCP, or not routed yet).
    :ivar request: the request head, or ``None`` for a TCP connection.
    :ivar consumer: the identity an authentication filter established, or ``None``.
    :ivar upstream: the server (``host:port``) the request was last sent to,
        or ``None`` before one (and for answers made without one).
    :ivar started: when the request started, in the reactor's seconds.
    :ivar response_headers: fields to add to the response sent to the client
        (a strategy setting a sticky cookie, a filter adding a rate-limit header).
    :ivar notes: free space where a filter keeps per-request values for itself
        and later filters; keys should be namespaced by the filter's name.
    """

    __slots__ = (
        "client_host",
        "client_port",
        "consumer",
        "notes",
        "request",
        "response_headers",
        "route",
        "started",
        "upstream",
    )

    def __init__(
        self,
        client_host: str,
        client_port: int = 0,
        request: RequestHead | None = None,
        route: str | None = None,
        started: float = 0.0,
    ) -> None:
        self.client_host = client_host
        self.client_port = client_port
        self.request = request
        self.route = route
        self.started = started
        self.consumer: str | None = None
        self.upstream: str | None = None
        self.response_headers = Headers()
        self.notes: dict[str, object] = {}

    def __repr__(self) -> str:
        return (
            f"RequestContext({self.client_host!r}, route={self.route!r}, "
            f"consumer={self.consumer!r})"
        )
