"""
The client side of a proxied request: every answer, relayed or made here,
goes out through the response filters that ran on the request.

:class:`ResponseRelay` is the base of
:class:`~edgeproxy.http.proxy.ProxiedRequest`, which holds the state it
reads; it adds no call to the request's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from edgeproxy.core.context import RequestContext
from edgeproxy.core.framing import BodyFraming
from edgeproxy.core.message import LocalResponse, ResponseHead
from edgeproxy.core.response_framing import UnframedFields
from edgeproxy.core.rewrite import rewrite_locations
from edgeproxy.errors import NoServerAvailable, UpstreamError
from edgeproxy.http.body import BodyStream
from edgeproxy.http.cache_exchange import BodySource, CacheExchange
from edgeproxy.http.filter_chain import filter_failed, run_response_filters
from edgeproxy.http.local_answers import error_response
from edgeproxy.http.server_exchange import ServerExchange
from edgeproxy.http.upstream_attempt import UpstreamAttempt
from edgeproxy.snapshot import Route

if TYPE_CHECKING:
    from edgeproxy.http.proxy import ProxyRequestHandler

# The proxy's log lines keep the namespace they always had.
log = Logger(namespace="edgeproxy.http.proxy")


class ResponseRelay:
    """Answers the client of a proxied request, through its response filters."""

    __slots__ = (
        "cache",
        "context",
        "exchange",
        "handler",
        "host",
        "ran",
        "route",
    )

    handler: ProxyRequestHandler
    exchange: ServerExchange
    context: RequestContext
    route: Route | None
    host: bytes | None
    ran: int
    cache: CacheExchange | None

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

    def _rewrite_locations(self, head: ResponseHead, attempt: UpstreamAttempt) -> None:
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
