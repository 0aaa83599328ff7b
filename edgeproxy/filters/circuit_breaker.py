"""
The ``circuit_breaker`` filter: stop sending requests to an upstream that keeps failing.

Options (each optional)::

    [filter:users_breaker]
    plugin = circuit_breaker
    failure_threshold = 5          ; failures in a row that open the breaker
    failure_rate = 50%             ; or: this share of failures over `window`
    window = 10s                   ; (only with failure_rate)
    min_requests = 20              ; (only with failure_rate)
    failure_statuses = 500-599     ; statuses and ranges that count as failures
    open_for = 30s                 ; how long an open breaker refuses requests
    half_open_requests = 1         ; probes let through at once when half-open
    open_status = 503              ; the status of the refusal

With neither ``failure_threshold`` nor ``failure_rate`` the breaker opens on 5
failures in a row; with both, either one opens it.  The state machine is
:mod:`edgeproxy.core.circuit`.

A response's status tells a failure: one of ``failure_statuses``, or 502, 503
or 504 whoever made them (edgeproxy answers these when the upstream cannot be
reached, has no healthy server or is too slow, and they are failures whatever
``failure_statuses`` says).  A request refused by the breaker itself is not an
outcome.

Each filter keeps one breaker per route, keyed by the route's name: routes
that share a ``[filter:NAME]`` section do not trip each other.  To break per
upstream, give the routes of an upstream one route each, or one section per
upstream.  A refusal is a local answer with ``open_status`` and a
``Retry-After`` of the whole seconds left until the breaker lets a probe
through (1 when half-open and every probe place is taken).  State changes are
logged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count
from typing import Any

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.config.values import parse_int, parse_list
from edgeproxy.core.circuit import (
    CircuitBreaker,
    CircuitPolicy,
    CircuitState,
    CircuitTransition,
    Permit,
    Refusal,
)
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.answers import local_answer
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_options, parse_positive_duration
from edgeproxy.plugin_environment import PluginEnvironment

GATEWAY_FAILURES = frozenset({502, 503, 504})
"""Statuses that always count as failures: the upstream could not answer."""

DEFAULT_FAILURE_STATUSES = frozenset(range(500, 600))
"""What ``failure_statuses`` is when not given: every 5xx."""

_note_keys = count(1)


@dataclass(frozen=True)
class _Admitted:
    """What a request let through keeps until its response."""

    breaker: CircuitBreaker
    permit: Permit


@implementer(IFilter)
class CircuitBreakerFilter:
    """
    Refuses requests while the breaker of their route is open.

    :param policy: when the breakers open and how they recover.
    :param reactor: provides ``IReactorTime``: the breakers' clock.
    :param failure_statuses: the response statuses that count as failures
        (besides :data:`GATEWAY_FAILURES`).
    :param open_status: the status of the refusal.
    """

    log = Logger()

    def __init__(
        self,
        policy: CircuitPolicy,
        reactor: Any,
        failure_statuses: frozenset[int] = DEFAULT_FAILURE_STATUSES,
        open_status: int = 503,
    ) -> None:
        self.policy = policy
        self.failure_statuses = failure_statuses | GATEWAY_FAILURES
        self.open_status = open_status
        self._reactor = reactor
        self._breakers: dict[str | None, CircuitBreaker] = {}
        # A key of its own, so that two breaker filters on a route keep apart.
        self._note = f"circuit_breaker.{next(_note_keys)}"

    def __repr__(self) -> str:
        return f"<CircuitBreakerFilter {len(self._breakers)} routes>"

    def state(self, route: str | None) -> CircuitState:
        """The state of ``route``'s breaker (closed for a route not seen yet)."""
        breaker = self._breakers.get(route)
        return breaker.state if breaker is not None else CircuitState.CLOSED

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | None:
        """Refuse the request if its route's breaker is open; else let it pass."""
        breaker = self._breakers.get(context.route)
        if breaker is None:
            breaker = CircuitBreaker(self.policy, self._logger_for(context.route))
            self._breakers[context.route] = breaker
        decision = breaker.admit(self._reactor.seconds())
        if isinstance(decision, Refusal):
            return local_answer(
                request,
                self.open_status,
                "the circuit breaker is open",
                [(b"Retry-After", b"%d" % max(1, math.ceil(decision.retry_after)))],
            )
        context.notes[self._note] = _Admitted(breaker, decision)
        return None

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Count the response's status as the outcome of a request let through."""
        admitted = context.notes.pop(self._note, None)
        if not isinstance(admitted, _Admitted):
            # This filter refused the request itself: that is no outcome.
            return
        admitted.breaker.record(
            admitted.permit,
            response.status in self.failure_statuses,
            self._reactor.seconds(),
        )

    def _logger_for(self, route: str | None) -> Callable[[CircuitTransition], None]:
        def log_transition(transition: CircuitTransition) -> None:
            emit = (
                self.log.warn if transition.new is CircuitState.OPEN else self.log.info
            )
            emit(
                "circuit breaker of route {route} {old} -> {new}: {reason}",
                route=route,
                old=transition.old.value,
                new=transition.new.value,
                reason=transition.reason,
            )

        return log_transition


def parse_statuses(text: str) -> frozenset[int]:
    """Parse ``500-599, 429``: status codes and inclusive ranges of them."""
    statuses: set[int] = set()
    for item in parse_list(text):
        low, dash, high = item.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(
                f"{item!r} is not a status or a range like 500-599"
            ) from None
        if not 100 <= first <= last <= 599:
            raise ValueError(f"{item!r} is not a status or a range within 100-599")
        statuses.update(range(first, last + 1))
    if not statuses:
        raise ValueError("no status given")
    return frozenset(statuses)


def parse_percentage(text: str) -> float:
    """Parse ``50%`` or ``50``: more than 0, at most 100."""
    number = text.strip().removesuffix("%").strip()
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"{text.strip()!r} is not a percentage (write e.g. 50%)"
        ) from None
    if not 0 < value <= 100:
        raise ValueError(f"{text.strip()!r} is not more than 0% and at most 100%")
    return value


def _error_status(text: str) -> int:
    value = parse_int(text)
    if not 400 <= value <= 599:
        raise ValueError(f"{value} is not a 4xx or 5xx status")
    return value


_PARSERS: dict[str, Callable[[str], object]] = {
    "failure_threshold": lambda text: parse_int(text, minimum=1),
    "failure_rate": parse_percentage,
    "window": parse_positive_duration,
    "min_requests": lambda text: parse_int(text, minimum=1),
    "failure_statuses": parse_statuses,
    "open_for": parse_positive_duration,
    "half_open_requests": lambda text: parse_int(text, minimum=1),
    "open_status": _error_status,
}


@implementer(IPlugin, IFilterFactory)
class CircuitBreakerFilterFactory:
    """Builds :class:`CircuitBreakerFilter` from its options."""

    name = "circuit_breaker"
    description = "Refuse requests to a route whose upstream keeps failing."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> CircuitBreakerFilter:
        """Parse the options; every bad one is reported."""
        values, problems = parse_options(options, _PARSERS)
        if "failure_rate" not in options:
            problems.extend(
                (key, "only applies with failure_rate")
                for key in ("window", "min_requests")
                if key in options
            )
        if problems:
            raise OptionError(problems)
        rate = values.get("failure_rate")
        policy = CircuitPolicy(
            failure_threshold=values.get(
                "failure_threshold", 5 if rate is None else None
            ),
            failure_rate=rate,
            window=values.get("window", 10.0),
            min_requests=values.get("min_requests", 20),
            open_for=values.get("open_for", 30.0),
            half_open_requests=values.get("half_open_requests", 1),
        )
        return CircuitBreakerFilter(
            policy,
            environment.reactor,
            values.get("failure_statuses", DEFAULT_FAILURE_STATUSES),
            values.get("open_status", 503),
        )


circuit_breaker_factory = CircuitBreakerFilterFactory()
