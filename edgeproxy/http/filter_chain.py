"""
Running a route's filters: requests in order, responses in reverse.

A hook that answers at once costs one call; one that returns a ``Deferred``
makes the rest of the chain wait for it.  A hook that raises (or fails) turns
into a 500 for its own request, logged, and never reaches the process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.interfaces import IFilter

log = Logger()

RequestDone = Callable[[LocalResponse | None, int], None]
ResponseDone = Callable[[], None]


def filter_failed() -> LocalResponse:
    """The answer for a request whose filter broke."""
    return LocalResponse.text(500, "Internal Server Error: a filter failed")


def run_request_filters(
    filters: Sequence[IFilter],
    context: RequestContext,
    request: RequestHead,
    done: RequestDone,
    start: int = 0,
) -> None:
    """
    Run ``filters[start:]`` on ``request``, then call ``done(answer, ran)``.

    ``answer`` is the local answer that stopped the chain, or ``None``;
    ``ran`` is how many filters ran (their response hooks run for the answer).
    """
    index = start
    while index < len(filters):
        current = filters[index]
        index += 1
        try:
            result = current.on_request(context, request)
        except Exception:
            log.failure("filter {filter!r} failed on a request", filter=current)
            done(filter_failed(), index)
            return
        if isinstance(result, Deferred):
            result.addCallbacks(
                _request_resumed,
                _request_failed,
                callbackArgs=(filters, context, request, done, index),
                errbackArgs=(current, done, index),
            )
            return
        if result is not None:
            done(result, index)
            return
    done(None, index)


def _request_resumed(
    answer: LocalResponse | None,
    filters: Sequence[IFilter],
    context: RequestContext,
    request: RequestHead,
    done: RequestDone,
    index: int,
) -> None:
    if answer is not None:
        done(answer, index)
    else:
        run_request_filters(filters, context, request, done, index)


def _request_failed(
    failure: Failure, current: IFilter, done: RequestDone, index: int
) -> None:
    log.failure("filter {filter!r} failed on a request", failure, filter=current)
    done(filter_failed(), index)


def run_response_filters(
    filters: Sequence[IFilter],
    ran: int,
    context: RequestContext,
    response: ResponseHead,
    done: ResponseDone,
    on_error: Callable[[], None],
) -> None:
    """
    Run the response hooks of the first ``ran`` filters, last first.

    Calls ``done()`` at the end, or ``on_error()`` (and no more hooks) when a
    hook raises or fails.
    """
    index = ran
    while index > 0:
        index -= 1
        current = filters[index]
        try:
            result = current.on_response(context, response)
        except Exception:
            log.failure("filter {filter!r} failed on a response", filter=current)
            on_error()
            return
        if isinstance(result, Deferred):

            def resumed(_: object, index: int = index) -> None:
                run_response_filters(filters, index, context, response, done, on_error)

            def failed(failure: Failure, current: IFilter = current) -> None:
                log.failure(
                    "filter {filter!r} failed on a response", failure, filter=current
                )
                on_error()

            result.addCallbacks(resumed, failed)
            return
    done()
