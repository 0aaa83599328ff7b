"""Tests for edgeproxy.filters.circuit_breaker: the circuit_breaker filter."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs
from zope.interface.verify import verifyObject

from edgeproxy.core.circuit import CircuitState
from edgeproxy.core.message import LocalResponse, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.circuit_breaker import (
    CircuitBreakerFilter,
    circuit_breaker_factory,
    parse_statuses,
)
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import (
    environment,
    make_request,
    run_request_hook,
    run_response_hook,
)


def build(
    options: dict[str, str],
) -> tuple[CircuitBreakerFilter, MemoryReactorClock]:
    """A breaker filter on a clock of its own."""
    clock = MemoryReactorClock()
    return circuit_breaker_factory.build(options, environment(clock)), clock


def exchange(
    breaker: CircuitBreakerFilter, status: int, route: str = "api"
) -> LocalResponse | None:
    """
    Send one request through the filter; if it passes, answer it with ``status``.

    Returns the filter's refusal, which also goes through the response hook as
    the proxy sends it.
    """
    context, request = make_request(route=route)
    refusal = run_request_hook(breaker, context, request)
    response = ResponseHead(
        refusal.status if refusal is not None else status,
        b"",
        refusal.headers if refusal is not None else None,
    )
    run_response_hook(breaker, context, response)
    return refusal


def test_provides_interfaces() -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, circuit_breaker_factory)
    assert verifyObject(IFilter, build({})[0])


def test_opens_waits_and_recovers() -> None:
    """Five failures open it; refusals count down; a good probe closes it."""
    breaker, clock = build({})
    for _ in range(5):
        assert exchange(breaker, 500) is None
    refusal = exchange(breaker, 200)
    assert refusal is not None
    assert refusal.status == 503
    assert refusal.headers.get(b"Retry-After") == b"30"
    clock.advance(10.5)
    refusal = exchange(breaker, 200)
    assert refusal is not None
    assert refusal.headers.get(b"Retry-After") == b"20"
    clock.advance(19.5)
    assert exchange(breaker, 200) is None
    assert breaker.state("api") is CircuitState.CLOSED


def test_half_open_refusal_is_not_an_outcome() -> None:
    """The breaker's own 503 to a request beside the probe does not reopen it."""
    breaker, clock = build({"failure_threshold": "1", "open_for": "5s"})
    exchange(breaker, 502)
    clock.advance(5)
    context, request = make_request(route="api")
    assert run_request_hook(breaker, context, request) is None
    refusal = exchange(breaker, 200)
    assert refusal is not None
    assert refusal.headers.get(b"Retry-After") == b"1"
    assert breaker.state("api") is CircuitState.HALF_OPEN
    run_response_hook(breaker, context, ResponseHead(204))
    assert breaker.state("api") is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("options", "status", "opens"),
    [
        ({}, 500, True),
        ({}, 599, True),
        ({}, 404, False),
        ({}, 429, False),
        ({"failure_statuses": "429, 500-503"}, 429, True),
        ({"failure_statuses": "429, 500-503"}, 501, True),
        ({"failure_statuses": "429, 500-503"}, 500, True),
        ({"failure_statuses": "429"}, 500, False),
        # Gateway failures count whatever failure_statuses says.
        ({"failure_statuses": "429"}, 502, True),
        ({"failure_statuses": "429"}, 503, True),
        ({"failure_statuses": "429"}, 504, True),
    ],
)
def test_failure_statuses(options: dict[str, str], status: int, opens: bool) -> None:
    """A response's status decides whether it is a failure."""
    breaker, _ = build({"failure_threshold": "1", **options})
    exchange(breaker, status)
    assert (exchange(breaker, 200) is not None) is opens


def test_routes_have_breakers_of_their_own() -> None:
    """One route's failures leave another route of the same filter alone."""
    breaker, _ = build({"failure_threshold": "2"})
    exchange(breaker, 500, route="a")
    exchange(breaker, 500, route="a")
    assert exchange(breaker, 200, route="a") is not None
    assert exchange(breaker, 200, route="b") is None
    assert breaker.state("b") is CircuitState.CLOSED


def test_failure_rate_options() -> None:
    """``failure_rate`` over ``window`` with ``min_requests`` opens the breaker."""
    breaker, clock = build(
        {"failure_rate": "50%", "window": "10s", "min_requests": "4"}
    )
    for status in (200, 500, 200):
        exchange(breaker, status)
        clock.advance(1)
    assert breaker.state("api") is CircuitState.CLOSED
    clock.advance(5)
    exchange(breaker, 500)
    assert breaker.state("api") is CircuitState.OPEN


def test_open_status_and_half_open_requests() -> None:
    """``open_status`` sets the refusal's status; ``half_open_requests`` the probes."""
    breaker, clock = build(
        {
            "failure_threshold": "1",
            "open_for": "2s",
            "half_open_requests": "2",
            "open_status": "429",
        }
    )
    exchange(breaker, 500)
    refusal = exchange(breaker, 200)
    assert refusal is not None
    assert refusal.status == 429
    assert refusal.headers.get(b"Retry-After") == b"2"
    clock.advance(2)
    probes = [make_request(route="api") for _ in range(3)]
    answers = [run_request_hook(breaker, *probe) for probe in probes]
    assert answers[:2] == [None, None]
    assert answers[2] is not None


def test_transitions_are_logged() -> None:
    """Opening is a warning naming the route; recovering is information."""
    breaker, clock = build({"failure_threshold": "1", "open_for": "1s"})
    with capturedLogs() as events:
        exchange(breaker, 503)
        clock.advance(1)
        exchange(breaker, 200)
    assert [(event["log_level"], event["old"], event["new"]) for event in events] == [
        (LogLevel.warn, "closed", "open"),
        (LogLevel.info, "open", "half-open"),
        (LogLevel.info, "half-open", "closed"),
    ]
    assert {event["route"] for event in events} == {"api"}


@pytest.mark.parametrize(
    ("text", "statuses"),
    [
        ("500", {500}),
        ("500-502, 429", {500, 501, 502, 429}),
        (" 418 ,418", {418}),
    ],
)
def test_parse_statuses(text: str, statuses: set[int]) -> None:
    """Statuses and inclusive ranges are read from a list."""
    assert parse_statuses(text) == statuses


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"failure_treshold": "5"}, "failure_treshold", "unknown option"),
        ({"failure_threshold": "0"}, "failure_threshold", "less than 1"),
        ({"failure_threshold": "many"}, "failure_threshold", "not a whole number"),
        ({"failure_rate": "0%"}, "failure_rate", "more than 0%"),
        ({"failure_rate": "120"}, "failure_rate", "at most 100%"),
        ({"failure_rate": "half"}, "failure_rate", "not a percentage"),
        ({"window": "10s"}, "window", "only applies with failure_rate"),
        ({"min_requests": "3"}, "min_requests", "only applies with failure_rate"),
        ({"failure_rate": "5", "window": "0s"}, "window", "not more than 0"),
        ({"open_for": "soon"}, "open_for", "not a duration"),
        ({"half_open_requests": "0"}, "half_open_requests", "less than 1"),
        ({"failure_statuses": "5xx"}, "failure_statuses", "not a status"),
        ({"failure_statuses": "600"}, "failure_statuses", "within 100-599"),
        ({"failure_statuses": "599-500"}, "failure_statuses", "within 100-599"),
        ({"failure_statuses": " , "}, "failure_statuses", "no status"),
        ({"open_status": "200"}, "open_status", "not a 4xx or 5xx"),
    ],
)
def test_bad_option(options: dict[str, str], key: str, fragment: str) -> None:
    """Each bad option is reported by its key."""
    with pytest.raises(OptionError) as caught:
        build(options)
    [(found_key, message)] = caught.value.problems
    assert found_key == key
    assert fragment in message


def test_every_bad_option_is_reported() -> None:
    """All the bad options of a section are reported together."""
    with pytest.raises(OptionError) as caught:
        build({"open_for": "x", "colour": "red", "window": "1s"})
    assert sorted(key for key, _ in caught.value.problems) == [
        "colour",
        "open_for",
        "window",
    ]
