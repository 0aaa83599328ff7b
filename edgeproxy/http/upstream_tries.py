"""
The upstream side of a proxied request: picking servers, sending the request
on a pooled connection, and what a try's outcome leads to (a relayed answer,
a retry on another server, a tunnel after a 101, or an error answer).

:class:`UpstreamTries` is the base of
:class:`~edgeproxy.http.proxy.ProxiedRequest`, which holds the state it
reads; it adds no call to the request's path.  Which failures may be retried
is :mod:`edgeproxy.http.upstream_attempt`'s.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from edgeproxy.core.message import RequestHead
from edgeproxy.core.request_fields import upstream_request_headers
from edgeproxy.core.response_fields import (
    client_response_fields,
    client_response_headers,
)
from edgeproxy.errors import NoServerAvailable, UpstreamError
from edgeproxy.http.client import HTTPClientProtocol, UpstreamResponse
from edgeproxy.http.filter_chain import filter_failed, run_response_filters
from edgeproxy.http.response_relay import ResponseRelay
from edgeproxy.http.upstream_attempt import (
    UpstreamAttempt,
    body_replayable,
    failure_retriable,
    stale_connection,
    status_retriable,
)
from edgeproxy.http.websocket_upgrade import open_tunnel
from edgeproxy.snapshot import UpstreamTarget

# The proxy's log lines keep the namespace they always had.
log = Logger(namespace="edgeproxy.http.proxy")

_NO_KEYS: frozenset[str] = frozenset()


class UpstreamTries(ResponseRelay):
    """Sends a proxied request to the servers of its target, and retries."""

    __slots__ = (
        "attempt",
        "filtered_host",
        "fresh_connection",
        "gone",
        "last_error",
        "pending",
        "retries_left",
        "sending",
        "stale_retry_done",
        "target",
        "tried",
        "upstream_request",
        "websocket",
    )

    target: UpstreamTarget | None
    tried: set[str]
    retries_left: int
    stale_retry_done: bool
    fresh_connection: bool
    pending: Deferred[Any] | None
    sending: HTTPClientProtocol | None
    attempt: UpstreamAttempt | None
    last_error: UpstreamError | None
    filtered_host: bytes | None
    upstream_request: RequestHead | None
    websocket: bool
    gone: bool

    def try_server(self) -> None:
        """Send the request to one server of the pool."""
        target = self.target
        assert target is not None
        pool = target.pool
        handler = self.handler
        now = handler.reactor.seconds()
        tried = self.tried
        try:
            server = pool.pick(
                self.context, now, frozenset(tried) if tried else _NO_KEYS
            )
        except NoServerAvailable as error:
            # After a failed try, the client hears about that failure, not
            # about there being no other server to try.
            self.fail(self.last_error or error)
            return
        tried.add(server.key)
        self.context.upstream = server.key
        attempt = UpstreamAttempt(server, pool, handler.reactor, now)
        pool.started(server, now)
        connections = handler.connections
        if not self.fresh_connection:
            idle = connections.take_idle(server, target.connections, attempt.released)
            if idle is not None:
                try:
                    self._send(idle, True, attempt)
                except Exception:
                    self._failed(Failure(), attempt)
                return
        d = connections.acquire(
            server, target.connections, attempt.released, fresh=self.fresh_connection
        )
        self.pending = d
        d.addCallback(self._connected, attempt)
        d.addErrback(self._failed, attempt)

    def _connected(
        self, result: tuple[HTTPClientProtocol, bool], attempt: UpstreamAttempt
    ) -> None:
        self._send(result[0], result[1], attempt)

    def _send(
        self, connection: HTTPClientProtocol, reused: bool, attempt: UpstreamAttempt
    ) -> None:
        """Send the request on ``connection``, for ``attempt``."""
        attempt.connected = True
        attempt.reused = reused
        attempt.connection = connection
        route = self.route
        assert route is not None
        exchange = self.exchange
        request = self.upstream_request or exchange.request
        framing = exchange.framing
        websocket = self.websocket
        # Framed in the same pass, but for a WebSocket upgrade (whose
        # Connection field the client protocol must see).
        headers = upstream_request_headers(
            request,
            route.specs.forwarding,
            peer_host=exchange.client_host,
            peer_port=exchange.client_port,
            scheme=self.handler.scheme,
            request_host=self.host,
            upstream_authority=attempt.server.authority,
            websocket=websocket,
            body=None if websocket else framing,
        )
        if self.filtered_host is not None and route.specs.forwarding.preserve_host:
            pairs = headers.pairs
            for index, (name, _) in enumerate(pairs):
                if name.lower() == b"host":
                    pairs[index] = (name, self.filtered_host)
                    break
        outgoing = RequestHead(request.method, request.target, headers, b"1.1")
        self.pending = None
        self.sending = connection
        self.attempt = attempt
        connection.send(outgoing, framing, exchange.body, self, framed=not websocket)

    def response_received(self, response: UpstreamResponse) -> None:
        """The upstream's response head arrived."""
        attempt, self.attempt = self.attempt, None
        assert attempt is not None
        self.sending = None
        try:
            self._responded(response, attempt)
        except Exception:
            self._failed(Failure(), attempt)

    def request_failed(self, error: Exception) -> None:
        """The request failed before a response head arrived."""
        attempt, self.attempt = self.attempt, None
        assert attempt is not None
        self.sending = None
        try:
            self._failed(Failure(error), attempt)
        except Exception:
            self._step_failed()

    def _failed(self, failure: Failure, attempt: UpstreamAttempt) -> None:
        self.pending = None
        if failure.check(CancelledError) or self.gone:
            self._abandoned(attempt)
            return
        error = failure.value
        if not isinstance(error, UpstreamError):
            log.failure("proxying a request failed", failure)
            attempt.account(failed=True)
            self.fail(None)
            return
        replayable = body_replayable(self.exchange.body)
        if not self.stale_retry_done and stale_connection(error, attempt, replayable):
            # Not the server's failure: try once more on a fresh connection.
            attempt.account(failed=False)
            self.stale_retry_done = True
            self.fresh_connection = True
            self.tried.discard(attempt.server.key)
            self._retry()
            return
        attempt.account(failed=True)
        retriable = failure_retriable(
            error, attempt, self.exchange.request.method, replayable
        )
        log.warn(
            "{route}: {server} failed: {reason}",
            route=self.context.route,
            server=attempt.server.key,
            reason=error.reason,
        )
        if retriable and self.retries_left > 0:
            self.retries_left -= 1
            self.last_error = error
            self._retry()
            return
        self.fail(error)

    def _abandoned(self, attempt: UpstreamAttempt) -> None:
        """The attempt ended because the client went away (or it was cancelled)."""
        attempt.account(failed=False)
        if self.cache is not None:
            self.cache.failed()

    def _retry(self) -> None:
        self._guarded(self.try_server)

    def _retry_elsewhere(
        self, response: UpstreamResponse, attempt: UpstreamAttempt
    ) -> None:
        """
        Drop an answer whose status is one of ``retry_on`` and try another server.

        The answer is dropped unread (its connection with it).
        """
        # Account first: dropping the connection releases it, which would
        # account the attempt as a success.
        attempt.account(failed=True)
        if response.body is not None:
            response.body.stopProducing()
        if attempt.connection is not None:
            attempt.connection.close()
        log.warn(
            "{route}: {server} answered {status}: trying another server",
            route=self.context.route,
            server=attempt.server.key,
            status=response.head.status,
        )
        self.retries_left -= 1
        self._retry()

    def _responded(self, response: UpstreamResponse, attempt: UpstreamAttempt) -> None:
        attempt.head_at = self.handler.reactor.seconds()
        route = self.route
        assert route is not None
        head = response.head
        exchange = self.exchange
        if status_retriable(
            head.status,
            self.target,
            self.retries_left,
            exchange.request.method,
            exchange.body,
        ):
            self._retry_elsewhere(response, attempt)
            return
        switching = head.status == 101 and self.websocket
        specs = route.specs
        if not switching and self.cache is None:
            # The usual response: its framing fields go in the same pass, and
            # Location is looked at only when the pass saw such a field.
            head.headers, unframed, locations = client_response_fields(
                head, specs.forwarding, request_method=self.exchange.request.method
            )
            if locations and specs.location.enabled:
                self._rewrite_locations(head, attempt)
            self.deliver(head, response.framing, response.body, unframed)
            return
        if switching:
            # The tunnel, not the HTTP exchange, decides when the server is
            # done with: account it when the tunnel closes.
            attempt.tunnelled = True
        head.headers = client_response_headers(
            head, specs.forwarding, upgrade_passthrough=switching
        )
        if specs.location.enabled:
            self._rewrite_locations(head, attempt)
        if not switching:
            assert self.cache is not None
            self.cache.responded(response)
            return
        head.headers.pairs.extend(self.context.response_headers.pairs)

        def send() -> None:
            open_tunnel(
                self.handler.reactor, route.config, exchange, head, attempt, self.gone
            )

        def broken() -> None:
            attempt.account(failed=False)
            if attempt.connection is not None:
                attempt.connection.close()
            self.exchange.send_local(filter_failed())

        run_response_filters(route.filters, self.ran, self.context, head, send, broken)
