"""
An exchange with no client: for the requests the cache makes on its own.

A background revalidation goes through the proxy's upstream path like any
request, so it needs a :class:`~edgeproxy.http.server_exchange.ServerExchange`;
:func:`detached_exchange` makes one whose connection drops everything.
"""

from __future__ import annotations

from twisted.internet.interfaces import IProtocol, IPushProducer

from edgeproxy.core.framing import NO_BODY, RequestFraming
from edgeproxy.core.message import RequestHead
from edgeproxy.http.server_exchange import ServerExchange


class _Nowhere:
    """The connection of a background request's exchange: nothing goes anywhere."""

    def write(self, data: bytes) -> None:
        """Drop ``data``."""

    def http_date(self) -> bytes:
        """No date needed."""
        return b""

    def may_persist(self) -> bool:
        """Nothing persists."""
        return False

    def response_started(
        self, exchange: ServerExchange, producer: IPushProducer | None
    ) -> None:
        """Nothing to pace."""

    def response_finished(self, exchange: ServerExchange, keep_alive: bool) -> None:
        """Nothing to go on with."""

    def response_aborted(self, exchange: ServerExchange) -> None:
        """Nothing to drop."""

    def request_body_paused(self, paused: bool) -> None:
        """There is no request body."""

    def protocols_switched(self, protocol: IProtocol) -> None:
        """Never asked for."""


def detached_exchange(
    request: RequestHead, client_host: str, client_port: int, now: float
) -> ServerExchange:
    """An exchange with no client, for a request the cache makes on its own."""
    framing = RequestFraming(NO_BODY, keep_alive=False, expects_continue=False)
    exchange = ServerExchange(
        _Nowhere(),
        request,
        framing,
        client_host=client_host,
        client_port=client_port,
        received_at=now,
        upgrade=False,
    )
    exchange.request_complete = True
    return exchange
