"""What one access-log line says about one request."""

from __future__ import annotations

CLIENT_CLOSED = 499
"""The status logged when the client left before any response (as nginx does)."""


class AccessRecord:
    """
    The facts of one request, as the access log writes them.

    Byte strings are as received; the formats escape them.

    :ivar client: the real client address (after the trusted-proxy rules).
    :ivar peer: the address of the connection's other end.
    :ivar method: the request method, or ``b""`` when no request line was read.
    :ivar target: the request target as the client sent it.
    :ivar version: ``b"1.1"`` or ``b"1.0"`` (``b""`` with no request line).
    :ivar status: the status sent, or :data:`CLIENT_CLOSED`.
    :ivar body_bytes: bytes of response body sent.
    :ivar duration: seconds from the request head to the end of the response.
    :ivar host: the ``Host`` field, or ``None``.
    :ivar referer: the ``Referer`` field, or ``None``.
    :ivar user_agent: the ``User-Agent`` field, or ``None``.
    :ivar route: the matched route's name, or ``None``.
    :ivar upstream: the server (``host:port``) that was asked last, or ``None``.
    :ivar consumer: the identity an authentication filter set, or ``None``.
    :ivar request_id: the ``request_id`` filter's identity, or ``None``.
    :ivar reason: why edgeproxy answered itself, or ``None`` when the
        upstream answered.
    """

    __slots__ = (
        "body_bytes",
        "client",
        "consumer",
        "duration",
        "host",
        "method",
        "peer",
        "reason",
        "referer",
        "request_id",
        "route",
        "status",
        "target",
        "upstream",
        "user_agent",
        "version",
    )

    def __init__(
        self,
        *,
        client: str,
        peer: str,
        method: bytes,
        target: bytes,
        version: bytes,
        status: int,
        body_bytes: int = 0,
        duration: float = 0.0,
        host: bytes | None = None,
        referer: bytes | None = None,
        user_agent: bytes | None = None,
        route: str | None = None,
        upstream: str | None = None,
        consumer: str | None = None,
        request_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.client = client
        self.peer = peer
        self.method = method
        self.target = target
        self.version = version
        self.status = status
        self.body_bytes = body_bytes
        self.duration = duration
        self.host = host
        self.referer = referer
        self.user_agent = user_agent
        self.route = route
        self.upstream = upstream
        self.consumer = consumer
        self.request_id = request_id
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f"<AccessRecord {self.client} {self.method!r} {self.target!r} "
            f"{self.status}>"
        )
