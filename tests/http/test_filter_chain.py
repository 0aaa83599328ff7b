"""Tests for edgeproxy.http.filter_chain: order, local answers, Deferreds, failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer
from zope.interface.verify import verifyObject

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.http.filter_chain import (
    filter_failed,
    run_request_filters,
    run_response_filters,
)
from edgeproxy.interfaces import IFilter
from edgeproxy.testing import make_request

if TYPE_CHECKING:
    from tests.http.conftest import LogCapture

Outcome = LocalResponse | Deferred[LocalResponse | None] | Exception | None
ResponseOutcome = Deferred[None] | Exception | None


@implementer(IFilter)
class ScriptedFilter:
    """A filter whose hooks return (or raise) what it was given, and log calls."""

    def __init__(
        self,
        name: str,
        calls: list[str],
        on_request: Outcome = None,
        on_response: ResponseOutcome = None,
    ) -> None:
        self.name = name
        self.calls = calls
        self.request_outcome = on_request
        self.response_outcome = on_response

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | Deferred[LocalResponse | None] | None:
        self.calls.append(f"request {self.name}")
        request.headers.add(b"X-Passed", self.name)
        if isinstance(self.request_outcome, Exception):
            raise self.request_outcome
        return self.request_outcome

    def on_response(
        self, context: RequestContext, response: ResponseHead
    ) -> Deferred[None] | None:
        self.calls.append(f"response {self.name}")
        response.headers.add(b"X-Passed", self.name)
        if isinstance(self.response_outcome, Exception):
            raise self.response_outcome
        return self.response_outcome


class RequestResult:
    """What ``done`` was called with, if it was (and how often)."""

    def __init__(self) -> None:
        self.calls: list[tuple[LocalResponse | None, int]] = []

    def __call__(self, answer: LocalResponse | None, ran: int) -> None:
        self.calls.append((answer, ran))


class ResponseResult:
    """Counts the ``done`` and ``on_error`` calls of a response chain."""

    def __init__(self) -> None:
        self.done = 0
        self.errors = 0

    def finished(self) -> None:
        self.done += 1

    def failed(self) -> None:
        self.errors += 1


def run_requests(
    filters: list[ScriptedFilter], start: int = 0
) -> tuple[RequestResult, RequestHead]:
    """Run the request chain; return what ``done`` heard and the request."""
    context, request = make_request()
    result = RequestResult()
    run_request_filters(filters, context, request, result, start)
    return result, request


def run_responses(
    filters: list[ScriptedFilter], ran: int
) -> tuple[ResponseResult, ResponseHead]:
    """Run the response chain over the first ``ran`` filters."""
    context, _ = make_request()
    response = ResponseHead(200)
    result = ResponseResult()
    run_response_filters(
        filters, ran, context, response, result.finished, result.failed
    )
    return result, response


def test_scripted_filter_provides_ifilter() -> None:
    """The fake used here is a real IFilter."""
    assert verifyObject(IFilter, ScriptedFilter("a", []))


def test_filter_failed_is_a_500() -> None:
    """A broken filter's request is answered 500, saying a filter failed."""
    answer = filter_failed()
    assert answer.status == 500
    assert b"filter" in answer.body


# --- requests -------------------------------------------------------------------


def test_request_hooks_run_in_order() -> None:
    """Every request hook runs, in order; done hears no answer and the count."""
    calls: list[str] = []
    filters = [ScriptedFilter(name, calls) for name in "abc"]
    result, request = run_requests(filters)
    assert calls == ["request a", "request b", "request c"]
    assert result.calls == [(None, 3)]
    assert request.headers.get_all(b"X-Passed") == [b"a", b"b", b"c"]


def test_no_filters_is_done_at_once() -> None:
    """An empty chain calls done at once with nothing ran."""
    result, _ = run_requests([])
    assert result.calls == [(None, 0)]


def test_local_answer_stops_the_request_chain() -> None:
    """A hook's answer ends the chain; ran counts the answering filter."""
    calls: list[str] = []
    answer = LocalResponse.text(403, "no")
    filters = [
        ScriptedFilter("a", calls),
        ScriptedFilter("b", calls, on_request=answer),
        ScriptedFilter("c", calls),
    ]
    result, _ = run_requests(filters)
    assert calls == ["request a", "request b"]
    assert result.calls == [(answer, 2)]


def test_start_skips_the_filters_before_it() -> None:
    """With start, the chain resumes from that filter."""
    calls: list[str] = []
    filters = [ScriptedFilter(name, calls) for name in "abc"]
    result, _ = run_requests(filters, start=2)
    assert calls == ["request c"]
    assert result.calls == [(None, 3)]


def test_raising_request_hook_is_a_logged_500(logged: LogCapture) -> None:
    """A hook that raises stops the chain with a 500 and one logged failure."""
    calls: list[str] = []
    filters = [
        ScriptedFilter("a", calls),
        ScriptedFilter("b", calls, on_request=RuntimeError("bug")),
        ScriptedFilter("c", calls),
    ]
    result, _ = run_requests(filters)
    assert calls == ["request a", "request b"]
    [(answer, ran)] = result.calls
    assert answer is not None and answer.status == 500
    assert ran == 2
    [failure] = logged.failures()
    assert failure.check(RuntimeError)


def test_pending_deferred_holds_the_rest_of_the_chain() -> None:
    """Later hooks wait for a pending Deferred, then run once it fires with None."""
    calls: list[str] = []
    pending: Deferred[LocalResponse | None] = Deferred()
    filters = [
        ScriptedFilter("a", calls, on_request=pending),
        ScriptedFilter("b", calls),
    ]
    result, _ = run_requests(filters)
    assert calls == ["request a"]
    assert result.calls == []
    pending.callback(None)
    assert calls == ["request a", "request b"]
    assert result.calls == [(None, 2)]


def test_deferred_answer_stops_the_chain() -> None:
    """A Deferred firing with an answer ends the chain with it."""
    calls: list[str] = []
    answer = LocalResponse.text(401, "who?")
    pending: Deferred[LocalResponse | None] = Deferred()
    filters = [
        ScriptedFilter("a", calls, on_request=pending),
        ScriptedFilter("b", calls),
    ]
    result, _ = run_requests(filters)
    pending.callback(answer)
    assert calls == ["request a"]
    assert result.calls == [(answer, 1)]


def test_fired_deferreds_run_the_chain_at_once() -> None:
    """Deferreds that have fired already cost no wait: done is called at once."""
    calls: list[str] = []
    filters = [
        ScriptedFilter("a", calls, on_request=succeed(None)),
        ScriptedFilter("b", calls, on_request=succeed(None)),
        ScriptedFilter("c", calls),
    ]
    result, _ = run_requests(filters)
    assert calls == ["request a", "request b", "request c"]
    assert result.calls == [(None, 3)]


def test_failed_deferred_is_a_logged_500(logged: LogCapture) -> None:
    """A Deferred that fails stops the chain with a 500 and a logged failure."""
    calls: list[str] = []
    filters = [
        ScriptedFilter("a", calls, on_request=fail(RuntimeError("redis down"))),
        ScriptedFilter("b", calls),
    ]
    result, _ = run_requests(filters)
    assert calls == ["request a"]
    [(answer, ran)] = result.calls
    assert answer is not None and answer.status == 500
    assert ran == 1
    [failure] = logged.failures()
    assert failure.check(RuntimeError)


# --- responses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ran", "expected"),
    [
        (3, ["response c", "response b", "response a"]),
        (2, ["response b", "response a"]),
        (0, []),
    ],
)
def test_response_hooks_run_in_reverse_for_the_filters_that_ran(
    ran: int, expected: list[str]
) -> None:
    """Response hooks run last first, only for the first ``ran`` filters."""
    calls: list[str] = []
    filters = [ScriptedFilter(name, calls) for name in "abc"]
    result, _ = run_responses(filters, ran)
    assert calls == expected
    assert (result.done, result.errors) == (1, 0)


def test_pending_response_deferred_holds_the_rest() -> None:
    """A pending response hook holds the earlier filters' hooks and done."""
    calls: list[str] = []
    pending: Deferred[None] = Deferred()
    filters = [
        ScriptedFilter("a", calls),
        ScriptedFilter("b", calls, on_response=pending),
        ScriptedFilter("c", calls),
    ]
    result, response = run_responses(filters, 3)
    assert calls == ["response c", "response b"]
    assert result.done == 0
    pending.callback(None)
    assert calls == ["response c", "response b", "response a"]
    assert (result.done, result.errors) == (1, 0)
    assert response.headers.get_all(b"X-Passed") == [b"c", b"b", b"a"]


@pytest.mark.parametrize("failing", [False, True], ids=["raises", "fails"])
def test_broken_response_hook_stops_the_chain(
    logged: LogCapture, failing: bool
) -> None:
    """A response hook that raises or fails calls on_error once, and no more hooks."""
    calls: list[str] = []
    error = RuntimeError("bug")
    filters = [
        ScriptedFilter("a", calls),
        ScriptedFilter("b", calls, on_response=fail(error) if failing else error),
        ScriptedFilter("c", calls),
    ]
    result, _ = run_responses(filters, 3)
    assert calls == ["response c", "response b"]
    assert (result.done, result.errors) == (0, 1)
    assert len(logged.failures()) == 1
