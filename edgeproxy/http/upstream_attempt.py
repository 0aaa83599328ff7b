"""
One try of a request on one upstream server, and which failed tries may be
made again.

An :class:`UpstreamAttempt` reports its outcome to its pool exactly once.  The
retry policy is a set of small predicates: a request may go to another
server only while its body can be sent again (none, or not a byte of it sent
yet); a connection that was never made may always be retried, a request that
reached a server only when its method is idempotent (:data:`IDEMPOTENT`) and
the server did not time out; an answer whose status is in the target's
``retry_on`` is retried under the same conditions.
"""

from __future__ import annotations

from typing import Any

from edgeproxy.errors import GatewayTimeout, UpstreamError
from edgeproxy.http.body import BodyStream
from edgeproxy.http.client import HTTPClientProtocol, NothingReceived
from edgeproxy.snapshot import UpstreamTarget
from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import UpstreamServer

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class UpstreamAttempt:
    """
    One try of a request on one server, accounted to the pool exactly once.

    :param server: the server tried.
    :param pool: the pool ``server`` was picked from.
    :param reactor: the clock the pool's times are read on.
    :param started: when the try started.
    """

    __slots__ = (
        "connected",
        "connection",
        "done",
        "head_at",
        "pool",
        "reactor",
        "reused",
        "server",
        "started",
        "tunnelled",
    )

    def __init__(
        self, server: UpstreamServer, pool: UpstreamPool, reactor: Any, started: float
    ) -> None:
        self.server = server
        self.pool = pool
        self.reactor = reactor
        self.started = started
        self.connected = False
        self.reused = False
        self.done = False
        self.tunnelled = False
        self.head_at: float | None = None
        self.connection: HTTPClientProtocol | None = None

    def account(self, failed: bool) -> None:
        """Report the try's outcome to the pool, the first time only."""
        if self.done:
            return
        self.done = True
        now = self.reactor.seconds()
        # Strategies learn the time to the response head (IBalancingStrategy):
        # a long download is not a slow server.
        until = self.head_at if self.head_at is not None else now
        self.pool.finished(self.server, now, until - self.started, failed)

    def released(self, kept: bool) -> None:
        """The pool took the connection back: the attempt is over (unless tunnelled)."""
        if not self.tunnelled:
            self.account(failed=False)


def body_replayable(body: BodyStream | None) -> bool:
    """Whether the request's body can be sent again: none, or none of it sent."""
    return body is None or not body.started


def stale_connection(
    error: UpstreamError, attempt: UpstreamAttempt, replayable: bool
) -> bool:
    """
    Whether the server closed a kept-alive connection as ``attempt`` reused it.

    That is not the server's failure: the request may go once more, on a
    fresh connection, without spending a retry.
    """
    return isinstance(error, NothingReceived) and attempt.reused and replayable


def failure_retriable(
    error: UpstreamError, attempt: UpstreamAttempt, method: bytes, replayable: bool
) -> bool:
    """Whether the request may go to another server after ``error``."""
    return replayable and (
        not attempt.connected
        or (method in IDEMPOTENT and not isinstance(error, GatewayTimeout))
    )


def status_retriable(
    status: int,
    target: UpstreamTarget | None,
    retries_left: int,
    method: bytes,
    body: BodyStream | None,
) -> bool:
    """
    Whether an answer with ``status`` is dropped for another server's.

    Cheap for the usual answer: a status not in ``retry_on`` settles it.
    """
    return (
        target is not None
        and status in target.retry_on
        and retries_left > 0
        and method in IDEMPOTENT
        and body_replayable(body)
    )
