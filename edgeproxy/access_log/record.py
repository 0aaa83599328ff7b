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


class SessionRecord:
    """
    The facts of one TCP connection through a ``protocol = tcp`` listener.

    :ivar client: the client's address (the PROXY header's source, when the
        listener reads one).
    :ivar client_port: the client's port.
    :ivar listener: the listener's name.
    :ivar upstream: the server (``host:port``) the connection was spliced to,
        or ``None`` when it never was.
    :ivar bytes_in: bytes relayed from the client to the server.
    :ivar bytes_out: bytes relayed from the server to the client.
    :ivar duration: seconds from the accept to the close.
    :ivar end: how it ended: the tunnel's end (``closed``, ``client reset``,
        ``idle timeout``...) or why it was refused.
    """

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "client",
        "client_port",
        "duration",
        "end",
        "listener",
        "upstream",
    )

    def __init__(
        self,
        *,
        client: str,
        client_port: int,
        listener: str,
        upstream: str | None,
        bytes_in: int,
        bytes_out: int,
        duration: float,
        end: str,
    ) -> None:
        self.client = client
        self.client_port = client_port
        self.listener = listener
        self.upstream = upstream
        self.bytes_in = bytes_in
        self.bytes_out = bytes_out
        self.duration = duration
        self.end = end

    def __repr__(self) -> str:
        return f"<SessionRecord {self.client} {self.listener} {self.end}>"
