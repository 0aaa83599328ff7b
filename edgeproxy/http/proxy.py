"""
The reverse-proxy glue: one request from the client to an upstream and back.

For each request the :class:`ProxyRequestHandler` takes the current snapshot
once, then: routes the request, runs the route's request filters, picks a
server from the route's pool, sends the request on a pooled connection, and
relays the response through the response filters.  Connection failures (and,
for idempotent requests whose body was not sent, resets before any response
byte) are retried on other servers; errors become short 502, 503 and 504
answers with a log line.

On a route with a cache, the request goes to a
:class:`~edgeproxy.http.cache_exchange.CacheExchange` after its request
filters (so authentication applies to answers from the cache): it answers
from the store or tells this request what to send upstream, and every answer,
stored or not, goes out through the response filters.  ``PURGE`` is answered
here: 405 on a route without a cache, 403 from clients outside the cache's
``purge_from``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from edgeproxy.core.client_address import real_client_address
from edgeproxy.core.context import RequestContext
from edgeproxy.core.framing import BodyFraming
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.core.request_fields import upstream_request_headers
from edgeproxy.core.response_fields import (
    client_response_fields,
    client_response_headers,
)
from edgeproxy.core.response_framing import UnframedFields
from edgeproxy.core.rewrite import redirect_response, rewrite_locations, rewrite_target
from edgeproxy.core.routing import effective_host_and_target
from edgeproxy.errors import GatewayTimeout, NoServerAvailable, UpstreamError
from edgeproxy.http.body import BodyStream
from edgeproxy.http.cache_exchange import (
    BodySource,
    CacheExchange,
    detached_exchange,
    purge_answer,
)
from edgeproxy.http.client import HTTPClientProtocol, NothingReceived, UpstreamResponse
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.filter_chain import (
    filter_failed,
    run_request_filters,
    run_response_filters,
)
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.snapshot import Route, SnapshotHolder, UpstreamTarget
from edgeproxy.tunnel import EndReason, Tunnel
from edgeproxy.upstream.server import UpstreamServer

log = Logger()

_NO_KEYS: frozenset[str] = frozenset()
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

_REASONS = {
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def is_websocket_upgrade(request: RequestHead) -> bool:
    """Whether ``request`` asks to upgrade to WebSocket (RFC 6455 4.1)."""
    return any(
        token.strip().lower() == b"websocket"
        for value in request.headers.get_all(b"upgrade")
        for token in value.split(b",")
    )


def error_response(status: int) -> LocalResponse:
    """The short answer for an upstream error."""
    return LocalResponse.text(status, _REASONS.get(status, "Error"))


class ProxyRequestHandler:
    """
    Serves the requests of one ``http`` listener.

    :param holder: the holder of the current snapshot.
    :param listener: the listener's name (which route table to use).
    :param scheme: ``b"https"`` for a TLS listener, else ``b"http"``.
    :param connections: the process's upstream connection pool.
    """

    def __init__(
        self,
        holder: SnapshotHolder,
        listener: str,
        scheme: bytes,
        reactor: Any,
        connections: ConnectionPool,
    ) -> None:
        self.holder = holder
        self.listener = listener
        self.scheme = scheme
        self.reactor = reactor
        self.connections = connections

    def request_received(self, exchange: ServerExchange) -> None:
        """Proxy one request."""
        ProxiedRequest(self, exchange).start()


class _Attempt:
    """One try of a request on one server, accounted to the pool exactly once."""

    __slots__ = (
        "connected",
        "connection",
        "done",
        "head_at",
        "request",
        "reused",
        "server",
        "started",
        "tunnelled",
    )

    def __init__(
        self, request: ProxiedRequest, server: UpstreamServer, started: float
    ) -> None:
        self.request = request
        self.server = server
        self.started = started
        self.connected = False
        self.reused = False
        self.done = False
        self.tunnelled = False
        self.head_at: float | None = None
        self.connection: HTTPClientProtocol | None = None

    def released(self, kept: bool) -> None:
        """The pool took the connection back: the attempt is over (unless tunnelled)."""
        if not self.tunnelled:
            self.request._account(self, failed=False)


class ProxiedRequest:
    """The life of one request through the proxy."""

    __slots__ = (
        "attempt",
        "cache",
        "context",
        "exchange",
        "filtered_host",
        "fresh_connection",
        "gone",
        "handler",
        "host",
        "last_error",
        "pending",
        "ran",
        "received_host",
        "retries_left",
        "route",
        "sending",
        "snapshot",
        "stale_retry_done",
        "target",
        "tried",
        "upstream_request",
        "websocket",
    )

    def __init__(self, handler: ProxyRequestHandler, exchange: ServerExchange) -> None:
        self.handler = handler
        self.exchange = exchange
        self.snapshot = handler.holder.current
        self.route: Route | None = None
        self.target: UpstreamTarget | None = None
        self.host: bytes | None = None
        self.context = RequestContext(
            exchange.client_host,
            exchange.client_port,
            exchange.request,
            # The head's arrival: the same call stack, so no clock read.
            started=exchange.received_at,
        )
        self.ran = 0
        self.tried: set[str] = set()
        self.retries_left = 0
        self.stale_retry_done = False
        # What to cancel if the client goes: a connect, or a request sent
        # (with its attempt, dropped when it ends: it refers back to us).
        self.pending: Deferred[Any] | None = None
        self.sending: HTTPClientProtocol | None = None
        self.attempt: _Attempt | None = None
        self.last_error: UpstreamError | None = None
        # The Host a request filter set, to send upstream instead of the
        # client's (which X-Forwarded-Host still reports).
        self.filtered_host: bytes | None = None
        self.received_host: bytes | None = None
        self.fresh_connection = False
        self.gone = False
        self.websocket = False
        self.cache: CacheExchange | None = None
        # What goes upstream when it is not the client's request as it is
        # (the cache's conditional or unconditional version of it).
        self.upstream_request: RequestHead | None = None
        exchange.on_client_gone = self._client_gone
        exchange.context = self.context

    # --- request side ------------------------------------------------------

    def start(self) -> None:
        """Route the request and run its filters."""
        request = self.exchange.request
        try:
            self.host, request.target = effective_host_and_target(request)
        except ValueError as error:
            self.exchange.send_local(LocalResponse.text(400, f"Bad Request: {error}"))
            return
        table = self.snapshot.route_tables[self.handler.listener]
        route = table.match(request, self.host)
        if route is None:
            self.exchange.send_local(
                LocalResponse.text(404, "Not Found: no route serves this request")
            )
            return
        self.route = route
        self.context.route = route.name
        self.context.client_host = real_client_address(
            self.exchange.client_host,
            request.headers,
            route.specs.forwarding.trusted_proxies,
        )
        self.websocket = (
            self.exchange.upgrade
            and route.config.websocket
            and is_websocket_upgrade(request)
        )
        if not route.filters:
            # Nothing to wait for: straight on (the server protocol's own
            # guard would answer an exception differently).
            self._proceed_guarded(None)
            return
        self.received_host = request.headers.get(b"host")
        run_request_filters(route.filters, self.context, request, self._filtered)

    def _filtered(self, answer: LocalResponse | None, ran: int) -> None:
        self.ran = ran
        if self.gone:
            return
        self._proceed_guarded(answer)

    def _proceed_guarded(self, answer: LocalResponse | None) -> None:
        """:meth:`_proceed`, answering 500 if it raises (see :meth:`_guarded`)."""
        try:
            self._proceed(answer)
        except Exception:
            self._step_failed()

    def _guarded(self, step: Callable[[], None]) -> None:
        """
        Run ``step``, answering 500 if it raises.

        Code after a filter's Deferred, or in a retry, runs outside the server
        protocol's own safety net: answer here, or the client would wait
        forever.
        """
        try:
            step()
        except Exception:
            self._step_failed()

    def _step_failed(self) -> None:
        """Log the exception being handled and answer 500."""
        log.failure("proxying a request failed")
        self.exchange.send_local(LocalResponse.text(500, "Internal Server Error"))

    def _proceed(self, answer: LocalResponse | None) -> None:
        assert self.route is not None
        route = self.route
        if answer is not None:
            # The filter that answered is the last one that ran.
            name = route.config.filters[self.ran - 1]
            reason = (
                f"filter {name}: {answer.reason}" if answer.reason else f"filter {name}"
            )
            self.respond_local(answer, reason)
            return
        specs = route.specs
        request = self.exchange.request
        if specs.redirect is not None:
            self.respond_local(
                redirect_response(specs.redirect, request, self.host), "redirect"
            )
            return
        if request.method == b"PURGE":
            self.respond_local(
                purge_answer(
                    route.cache,
                    self.context.client_host,
                    self.handler.scheme,
                    self.host or b"",
                    request.target,
                )
            )
            return
        # An Upgrade is a tunnel to be, never an answer to keep.
        cache = None if self.exchange.upgrade else route.cache
        if cache is None:
            target = route.target_for(self.context)
            if target is None:
                self.respond_local(error_response(503), "no server available")
                return
            self.target = target
        public_target = request.target
        rewrite = specs.rewrite
        if (
            rewrite.pattern
            or rewrite.strip_prefix
            or rewrite.add_prefix
            or public_target[:1] != b"/"
        ):
            request.target = rewrite_target(rewrite, public_target)
        if self.ran:
            # Only a request filter can have changed the Host.
            host = request.headers.get(b"host")
            if host != self.received_host:
                self.filtered_host = host
        if cache is not None:
            self.cache = CacheExchange(
                cache,
                self,
                RequestHead(request.method, public_target, request.headers),
                upstream_target=request.target,
                scheme=self.handler.scheme,
                host=self.host or b"",
                reactor=self.handler.reactor,
                wait_limit=max(
                    (t.connections.client.first_byte_timeout for t in route.targets),
                    default=0.0,
                ),
            )
            self.cache.start()
            return
        assert self.target is not None
        self.retries_left = self.target.retries
        self.try_server()

    def forward(self, head: RequestHead) -> None:
        """Send ``head`` upstream instead of the client's request (for the cache)."""
        assert self.route is not None
        self.upstream_request = head
        if self.target is None:
            self.target = self.route.target_for(self.context)
            if self.target is None:
                self.fail(NoServerAvailable("the route has no upstream"))
                return
        self.tried.clear()
        self.last_error = None
        self.retries_left = self.target.retries
        self.try_server()

    def fetch_in_background(self, head: RequestHead, cache: CacheExchange) -> None:
        """Send ``head`` upstream for ``cache`` alone: no client waits for it."""
        now = self.handler.reactor.seconds()
        exchange = detached_exchange(
            head, self.exchange.client_host, self.exchange.client_port, now
        )
        background = ProxiedRequest(self.handler, exchange)
        background.route = self.route
        background.host = self.host
        background.received_host = self.received_host
        background.filtered_host = self.filtered_host
        background.context.route = self.context.route
        background.context.client_host = self.context.client_host
        background.cache = cache
        cache.client = background
        background.forward(head)

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
        attempt = _Attempt(self, server, now)
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
        self, result: tuple[HTTPClientProtocol, bool], attempt: _Attempt
    ) -> None:
        self._send(result[0], result[1], attempt)

    def _send(
        self, connection: HTTPClientProtocol, reused: bool, attempt: _Attempt
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

    # --- ResponseReceiver, for the request sent ----------------------------

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

    def _client_gone(self) -> None:
        self.gone = True
        body = self.exchange.body
        if (
            self.cache is not None
            and self.cache.client_gone()
            and (body is None or body.complete)
        ):
            return  # the fetch fills the cache for others: let it finish
        if self.pending is not None:
            self.pending.cancel()
        elif self.sending is not None and self.attempt is not None:
            connection, self.sending = self.sending, None
            attempt, self.attempt = self.attempt, None
            connection.cancel_request()
            self._abandoned(attempt)

    # --- upstream outcomes -------------------------------------------------

    def _account(self, attempt: _Attempt, failed: bool) -> None:
        if attempt.done:
            return
        attempt.done = True
        target = self.target
        assert target is not None
        now = self.handler.reactor.seconds()
        # Strategies learn the time to the response head (IBalancingStrategy):
        # a long download is not a slow server.
        until = attempt.head_at if attempt.head_at is not None else now
        target.pool.finished(attempt.server, now, until - attempt.started, failed)

    def _failed(self, failure: Failure, attempt: _Attempt) -> None:
        self.pending = None
        if failure.check(CancelledError) or self.gone:
            self._abandoned(attempt)
            return
        error = failure.value
        if not isinstance(error, UpstreamError):
            log.failure("proxying a request failed", failure)
            self._account(attempt, failed=True)
            self.fail(None)
            return
        body = self.exchange.body
        replayable = body is None or not body.started
        if (
            isinstance(error, NothingReceived)
            and attempt.reused
            and replayable
            and not self.stale_retry_done
        ):
            # The server closed a kept-alive connection as we reused it: not
            # the server's failure; try once more on a fresh connection.
            self._account(attempt, failed=False)
            self.stale_retry_done = True
            self.fresh_connection = True
            self.tried.discard(attempt.server.key)
            self._retry()
            return
        self._account(attempt, failed=True)
        retriable = replayable and (
            not attempt.connected
            or (
                self.exchange.request.method in IDEMPOTENT
                and not isinstance(error, GatewayTimeout)
            )
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

    def _abandoned(self, attempt: _Attempt) -> None:
        """The attempt ended because the client went away (or it was cancelled)."""
        self._account(attempt, failed=False)
        if self.cache is not None:
            self.cache.failed()

    def _retry(self) -> None:
        self._guarded(self.try_server)

    def _retry_status(self, response: UpstreamResponse, attempt: _Attempt) -> bool:
        """
        Try another server when the answer's status is one of ``retry_on``.

        Only for idempotent requests whose body can be sent again, while
        retries are left; the answer is dropped unread (its connection with it).
        """
        target = self.target
        body = self.exchange.body
        if (
            target is None
            or response.head.status not in target.retry_on
            or self.retries_left <= 0
            or self.exchange.request.method not in IDEMPOTENT
            or not (body is None or not body.started)
        ):
            return False
        # Account first: dropping the connection releases it, which would
        # account the attempt as a success.
        self._account(attempt, failed=True)
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
        return True

    def _responded(self, response: UpstreamResponse, attempt: _Attempt) -> None:
        attempt.head_at = self.handler.reactor.seconds()
        route = self.route
        assert route is not None
        head = response.head
        if self._retry_status(response, attempt):
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
            self._open_tunnel(head, attempt)

        def broken() -> None:
            self._account(attempt, failed=False)
            if attempt.connection is not None:
                attempt.connection.close()
            self.exchange.send_local(filter_failed())

        run_response_filters(route.filters, self.ran, self.context, head, send, broken)

    def _rewrite_locations(self, head: ResponseHead, attempt: _Attempt) -> None:
        """Make the upstream's own URLs in ``head`` public (``location_rewrite``)."""
        assert self.route is not None
        authorities = [attempt.server.authority]
        if self.host is not None:
            authorities.append(self.host)
        head.headers = rewrite_locations(
            head.headers,
            self.route.specs.location,
            upstream_authorities=authorities,
            public_scheme=self.handler.scheme,
            public_host=self.host,
        )

    def deliver(
        self,
        head: ResponseHead,
        framing: BodyFraming,
        body: BodySource | None,
        unframed: UnframedFields | None = None,
    ) -> None:
        """
        Answer the client with ``head`` and ``body`` through the response filters.

        :param unframed: the head's fields are stripped of framing fields (see
            :meth:`ServerExchange.send_response`), which saves a pass when
            they go out unchanged.
        """
        route = self.route
        assert route is not None
        added = self.context.response_headers.pairs
        if added:
            # Whatever was added is looked at again when the head is framed.
            head.headers.pairs.extend(added)
            unframed = None
        if not self.ran and (body is None or isinstance(body, BodyStream)):
            self.exchange.send_response(head, framing, body, unframed=unframed)
            return

        def send() -> None:
            exchange = self.exchange
            if body is None or isinstance(body, BodyStream):
                exchange.send_response(head, framing, body)
                return
            exchange.send_head(head, framing, body)
            if not exchange.closed:
                body.start(exchange)

        def broken() -> None:
            if body is not None:
                body.stopProducing()
            self.exchange.send_local(filter_failed())

        run_response_filters(route.filters, self.ran, self.context, head, send, broken)

    def _open_tunnel(self, head: ResponseHead, attempt: _Attempt) -> None:
        """Join the client and the upstream connection after a 101."""
        route = self.route
        assert route is not None and attempt.connection is not None
        config = route.config
        tunnel = Tunnel(
            self.handler.reactor,
            idle_timeout=config.websocket_idle_timeout or None,
            max_lifetime=config.websocket_max_lifetime or None,
            on_close=lambda stats: self._account(
                attempt, failed=stats.reason is EndReason.SERVER_RESET
            ),
        )
        if self.gone:
            attempt.connection.close()
            self._account(attempt, failed=False)
            return
        self.exchange.switch_protocols(head, tunnel.client)
        attempt.connection.switch_protocols(tunnel.server)

    # --- answers made here -------------------------------------------------

    def fail(self, error: UpstreamError | None) -> None:
        """Answer with the status the error calls for (502 by default)."""
        if self.cache is not None and self.cache.failed():
            return
        status = error.status if error is not None else 502
        if error is not None and isinstance(error, NoServerAvailable):
            log.warn(
                "{route}: no server available: {reason}",
                route=self.context.route,
                reason=error.reason,
            )
        reason = error.reason if error is not None else "the request failed here"
        self.respond_local(error_response(status), reason)

    def respond_local(self, answer: LocalResponse, reason: str | None = None) -> None:
        """
        Send an answer made here, through the response filters that ran.

        :param reason: the access log's reason, instead of the answer's own.
        """
        route = self.route
        # A filter may hand out one answer object for every request: copy.
        head = ResponseHead(answer.status, b"", answer.headers.copy())
        head.headers.pairs.extend(self.context.response_headers.pairs)
        reason = reason or answer.reason

        def send() -> None:
            self.exchange.send_local(
                LocalResponse(head.status, answer.body, head.headers, reason)
            )

        if route is None or self.ran == 0:
            send()
            return

        def broken() -> None:
            self.exchange.send_local(filter_failed())

        run_response_filters(route.filters, self.ran, self.context, head, send, broken)
