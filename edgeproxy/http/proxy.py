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

The request's life is one object, :class:`ProxiedRequest`, whose methods are
grouped by idea in its bases (no call is added to the request's path): the
request side is here, the upstream tries are
:class:`~edgeproxy.http.upstream_tries.UpstreamTries` (the retry policy is
:mod:`edgeproxy.http.upstream_attempt`), the answers to the client are
:class:`~edgeproxy.http.response_relay.ResponseRelay`, and the WebSocket
passthrough is :mod:`edgeproxy.http.websocket_upgrade`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from edgeproxy.core.client_address import real_client_address
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead
from edgeproxy.core.rewrite import redirect_response, rewrite_target
from edgeproxy.core.routing import effective_host_and_target
from edgeproxy.errors import NoServerAvailable, UpstreamError
from edgeproxy.http.cache_exchange import CacheExchange, detached_exchange, purge_answer
from edgeproxy.http.client import HTTPClientProtocol
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.filter_chain import run_request_filters
from edgeproxy.http.local_answers import error_response, filter_answer_reason
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.http.upstream_attempt import UpstreamAttempt
from edgeproxy.http.upstream_tries import UpstreamTries
from edgeproxy.http.websocket_upgrade import is_websocket_upgrade
from edgeproxy.snapshot import Route, SnapshotHolder, UpstreamTarget


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


class ProxiedRequest(UpstreamTries):
    """The life of one request through the proxy."""

    # The rest of its state is declared by its bases, which read it.
    __slots__ = ("received_host", "snapshot")

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
        # (with its attempt, dropped when it ends).
        self.pending: Deferred[Any] | None = None
        self.sending: HTTPClientProtocol | None = None
        self.attempt: UpstreamAttempt | None = None
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

    def _proceed(self, answer: LocalResponse | None) -> None:
        assert self.route is not None
        route = self.route
        if answer is not None:
            # The filter that answered is the last one that ran.
            name = route.config.filters[self.ran - 1]
            self.respond_local(answer, filter_answer_reason(name, answer))
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
