"""
From an HTTP exchange to its access record.

A listener with an enabled :class:`~edgeproxy.access_log.sink.AccessLog` sets
:func:`log_exchange` as each exchange's ``on_end``; a request refused before
it became an exchange (a malformed head, a timeout) is logged with
:func:`log_refusal`.
"""

from __future__ import annotations

from typing import Any

from edgeproxy.access_log.record import CLIENT_CLOSED, AccessRecord
from edgeproxy.access_log.sink import AccessLog
from edgeproxy.filters.request_id import NOTE as REQUEST_ID_NOTE
from edgeproxy.http.server_exchange import ServerExchange


def exchange_record(exchange: ServerExchange, now: float) -> AccessRecord:
    """The access record of ``exchange``, over at ``now`` (reactor seconds)."""
    request = exchange.request
    headers = request.headers
    context = exchange.context
    request_id = context.notes.get(REQUEST_ID_NOTE) if context is not None else None
    status = exchange.status
    reason = exchange.reason
    if not status:
        status = CLIENT_CLOSED
        reason = reason or "the client closed the connection"
    return AccessRecord(
        client=context.client_host if context is not None else exchange.client_host,
        peer=exchange.client_host,
        method=request.method,
        target=request.target,
        version=request.version,
        status=status,
        body_bytes=exchange.body_bytes,
        duration=max(0.0, now - exchange.received_at),
        host=headers.get(b"host"),
        referer=headers.get(b"referer"),
        user_agent=headers.get(b"user-agent"),
        route=context.route if context is not None else None,
        upstream=context.upstream if context is not None else None,
        consumer=context.consumer if context is not None else None,
        request_id=request_id if isinstance(request_id, str) else None,
        reason=reason,
    )


class ExchangeLogger:
    """
    Logs each exchange it is given as ``on_end``.

    :param access_log: where records go.
    :param reactor: the clock (``seconds()``) of durations and timestamps.
    """

    __slots__ = ("_access_log", "_reactor")

    def __init__(self, access_log: AccessLog, reactor: Any) -> None:
        self._access_log = access_log
        self._reactor = reactor

    @property
    def enabled(self) -> bool:
        """Whether records are observed now."""
        return self._access_log.enabled

    def log_exchange(self, exchange: ServerExchange) -> None:
        """Log ``exchange``, which is over."""
        now = self._reactor.seconds()
        self._access_log.log(exchange_record(exchange, now), now)

    def log_refusal(self, client: str, status: int, reason: str) -> None:
        """Log a request refused before its head could be read whole."""
        record = AccessRecord(
            client=client,
            peer=client,
            method=b"",
            target=b"",
            version=b"",
            status=status,
            reason=reason,
        )
        self._access_log.log(record, self._reactor.seconds())
